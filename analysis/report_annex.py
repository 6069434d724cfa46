"""Report tables of issue 11's content: the indicator table with the one verdict, and the annex of measures.

The generic layout helpers stay in report_tables.py; this module builds on them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from . import report_tables as tables
from .config import Plan
from .verdict import HEADLINE_INDICATOR, Thresholds, verdict_label
from .vocabulary import plan_word, term


def indicator_table(ind: pd.DataFrame, specs: list[dict[str, Any]], traj: dict[str, Any], lang: str,
                    thresholds: Thresholds | None = None) -> pd.DataFrame:
    """The numeric indicators (report_tables.progress_indicator_table, indicators x years) with one judgement each:
    the headline indicator's is the one verdict (analysis/verdict.py) from the target year on; an indicator not yet
    due says whether its latest value is on the path to its target."""
    return tables.progress_indicator_table(ind, specs, lang, verdicts=judgements(ind, traj, lang, thresholds))


def judgements(ind: pd.DataFrame, traj: dict[str, Any], lang: str,
               thresholds: Thresholds | None = None) -> dict[str, str]:
    """Indicator id -> the words of its judgement where it is not met/missed in a due year."""
    d = ind[ind["scope"] == "city"]
    out: dict[str, str] = {}
    for ind_id, part in d.groupby("indicator_id", sort=False):
        if ind_id == HEADLINE_INDICATOR and int(traj["latest_year"]) >= int(traj["target_year"]):
            out[ind_id] = verdict_label(traj, lang, thresholds)
            continue
        if part["due"].astype(bool).any():
            continue
        known = part.dropna(subset=["value"]).sort_values("year")
        if known.empty:
            continue
        last = known.iloc[-1]
        path = path_value(part, int(last["year"]), traj)
        if path is None:
            continue
        ok = last["value"] >= path if last["comparison"] in (">", ">=") else last["value"] <= path
        out[ind_id] = (f"{int(last['year'])}年{'达到' if ok else '低于'}进度（应达 {path:.1f}）" if lang == "zh"
                       else f"{'on' if ok else 'behind'} path in {int(last['year'])} (due {path:.1f})")
    return out


def path_value(rows: pd.DataFrame, year: int, traj: dict[str, Any]) -> float | None:
    """Where an indicator should be in `year` on its way to the target: the plan's implied path for the headline
    indicator, else a straight line from its first reported value to the target in the deadline year."""
    ind_id = rows["indicator_id"].iloc[0]
    if ind_id == HEADLINE_INDICATOR:
        v = (traj.get("implied_path") or {}).get(str(year))
        return None if v is None else float(v)
    try:
        deadline = int(str(rows["deadline"].iloc[0])) if "deadline" in rows else int(traj["target_year"])
    except ValueError:
        return None  # yearly indicators are due every year: no path
    known = rows.dropna(subset=["value"]).sort_values("year")
    if known.empty or deadline <= int(known["year"].iloc[0]) or year <= int(known["year"].iloc[0]):
        return None
    y0, v0, target = int(known["year"].iloc[0]), float(known["value"].iloc[0]), float(rows["target"].iloc[0])
    return v0 + (target - v0) * (year - y0) / (deadline - y0)


def measures_annex(measures: pd.DataFrame, plan: Plan, lang: str) -> pd.DataFrame:
    """All measures of the plan's annex (progress_measures.parquet): text, units, deadline, status, year completed,
    evidence, and whether overdue. The English table leaves out the annex's Chinese wording and the evidence."""
    zh = lang == "zh"
    sep = "、" if zh else "; "

    def units(text: Any) -> str:
        return sep.join(plan_word(plan, "units", u, lang) for u in str(text or "").split(";") if u)

    out = pd.DataFrame({"measure_id": measures["measure_id"].to_numpy()})
    if zh:
        out[_h("measure_text", lang)] = measures["measure_text"].fillna("").to_numpy() \
            if "measure_text" in measures else measures["task_name"].to_numpy()
    resp = measures["responsible_units"] if "responsible_units" in measures else [""] * len(measures)
    lead_word, resp_word = ("牵头：", "责任：") if zh else ("Lead: ", "Responsible: ")
    # lead and responsible units in one column, so the measure's text gets the width
    out[_h("units", lang)] = [lead_word + units(lu) + (("；" if zh else "; ") + resp_word + units(r)
                                                       if units(r) else "")
                              for lu, r in zip(measures["lead_units"], resp, strict=True)]
    out["deadline"] = [d if zh else tables._deadline_en(d) for d in measures["deadline"]]
    overdue = ("（逾期）" if zh else " (overdue)")
    out[_h("status", lang)] = [term("measure_status", c, lang, default=str(c)) + (overdue if o else "")
                               for c, o in zip(measures["category"], measures["overdue"], strict=True)]
    done = measures["year_completed"] if "year_completed" in measures else pd.Series([pd.NA] * len(measures))
    out[_h("year_completed", lang)] = ["" if pd.isna(y) else str(int(y)) for y in done]
    if zh and "evidence" in measures:
        out[_h("evidence", lang)] = measures["evidence"].fillna("").to_numpy()
    return tables.headers(out, lang)


def printed_annex(annex: pd.DataFrame, lang: str) -> pd.DataFrame:
    """The annex as printed (measures_annex keeps every column for the workbook): the measure's text with its
    units under it, and its deadline, status and year completed in one column, so the text gets the width."""
    zh = lang == "zh"
    t = annex.copy()
    unit_col, text_col = _h("units", lang), _h("measure_text", lang)
    status, done, deadline = _h("status", lang), _h("year_completed", lang), term("header", "deadline", lang)
    if text_col in t:
        t[text_col] = [f"{m}（{u}）" if zh else f"{m} ({u})" for m, u in zip(t[text_col], t[unit_col], strict=True)]
        t = t.drop(columns=unit_col)
    state = [f"{s}，{y}年" if zh and y else f"{s}, {y}" if y else s for s, y in zip(t[status], t[done], strict=True)]
    due_word = "时限：" if zh else "due "
    t[status] = [f"{s}；{due_word}{d}" if zh else f"{s}; {due_word}{d}" for s, d in zip(state, t[deadline], strict=True)]
    t = t.drop(columns=[done, deadline]).rename(columns={status: _h("progress", lang)})
    return t.rename(columns={term("header", "measure_id", lang): _h("number", lang)})


_HEADERS = {"progress": ("落实情况", "Status"), "number": ("编号", "No."), "measure_text": ("具体措施", "Measure"), "responsible_units": ("责任单位", "Responsible units"), "status": ("状态", "Status"),
            "year_completed": ("完成年份", "Year completed"), "units": ("牵头单位和责任单位", "Units"),
            "evidence": ("佐证材料", "Evidence")}


def _h(key: str, lang: str) -> str:
    zh, en = _HEADERS[key]
    return zh if lang == "zh" else en
