"""The report's tables in its language, built from results as saved in data/processed.

Each function takes the saved result (a parquet table or a JSON dict) and the
language; headers and row labels come from analysis/vocabulary.py, names of
the city's divisions, groups, lead units and actions from the plan file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .config import Plan
from .vocabulary import (
    TERMS,
    capitalise,
    check_lang,
    division_names,
    domain_label,
    level_label,
    plan_word,
    term,
)

INEQUALITY_MEASURES = ("range", "cv", "mean_abs_gap")

ROW_DECIMALS = "row_decimals"
"""A table's attrs key: decimals per row, for tables whose rows hold different quantities (indicators x years);
report_format.md_table and the workbook honour it. Defined here so stage notebooks that build tables do not
depend on the report's formatting module."""


def headers(table: pd.DataFrame, lang: str, extra: dict[str, str] | None = None) -> pd.DataFrame:
    """Rename code columns to their header in `lang` (vocabulary 'header'); `extra` for built headers."""
    names = {c: term("header", c, lang) for c in table.columns if c in TERMS["header"]}
    return table.rename(columns={**names, **(extra or {})})


def level_rank(plan: Plan, domain: str, level: Any) -> tuple[int, float, str]:
    """A level's place in its domain's natural order: divisions in the plan's (admin-code) order, key groups as
    the plan lists them, age bands by their lower bound, survey categories (education from 小学及以下 up) as the
    vocabulary lists them; unknown levels last, by name."""
    import re

    level = str(level)
    if domain in ("division", "divisions"):
        order = [str(d["code"]) for d in plan.divisions]
    elif domain in ("key_group", "key_groups"):
        order = [str(g["id"]) for g in plan.settings.literacy.key_groups]
    elif domain == "age_group":
        m = re.match(r"\d+", level)
        return (0, float(m.group()) if m else math.inf, level)
    else:
        order = list(TERMS["level"])
    return (0, float(order.index(level)), level) if level in order else (1, math.inf, level)


def natural_order(table: pd.DataFrame, plan: Plan, domain: str = "domain", level: str = "level",
                  year: str | None = "year") -> pd.DataFrame:
    """Rows in natural order: domains as the vocabulary lists them (city first), then levels (`level_rank`),
    then years ascending."""
    rank = {d: i for i, d in enumerate(TERMS["domain"])}
    key = pd.DataFrame({"d": table[domain].map(rank).fillna(len(rank)),
                        "l": [level_rank(plan, d, lv) for d, lv in zip(table[domain], table[level], strict=True)]},
                       index=table.index)
    if year is not None and year in table:
        key["y"] = table[year].astype(int)
    order = sorted(table.index, key=lambda i: tuple(key.loc[i]))
    return table.loc[order]


def yes_no(flag: Any, lang: str) -> str:
    return term("yes_no", "yes" if bool(flag) else "no", lang)


def domain_table(estimates: pd.DataFrame, plan: Plan, lang: str, indicator: str = "literate",
                 year: int | None = None) -> pd.DataFrame:
    """One indicator by group (estimates.parquet rows), suppressed cells blanked with the reason in a note.

    For one year (named in the caption) the table has no year column.
    """
    from .disclosure import publishable

    t = estimates[estimates["indicator"] == indicator]
    if year is not None:
        t = t[t["year"] == year]
    t = natural_order(publishable(t), plan)
    value = "estimate_pct" if indicator.startswith(("literate", "level_")) else "estimate_score"
    suppressed = t["suppressed"].astype(bool).to_numpy()
    out = pd.DataFrame({
        "year": t["year"].to_numpy(),
        "domain": [domain_label(d, lang) for d in t["domain"]],
        "level": [level_label(plan, d, lv, lang) for d, lv in zip(t["domain"], t["level"], strict=True)],
        "n": t["n"].to_numpy(), value: t["estimate"].round(2).to_numpy(), "se": t["se"].round(2).to_numpy(),
        "ci_low": t["ci_low"].round(2).to_numpy(), "ci_high": t["ci_high"].round(2).to_numpy(),
        "deff": t["deff"].round(2).to_numpy(), "n_eff": t["n_eff"].round(0).to_numpy(),
        "cv": t["cv"].round(3).to_numpy(),
        "note": np.where(suppressed, f"{term('word', 'suppressed', lang)}{'：' if lang == 'zh' else ': '}"
                         + t["suppress_reason"].astype(str), ""),
    })
    if year is not None:
        out = out.drop(columns="year")
    return headers(out, lang)


def _implausible_text(threshold: str, lang: str) -> str:
    if lang == "zh":
        return threshold
    by_zh = {w["zh"]: w["en"] for w in TERMS["implausible"].values()}
    return "; ".join(by_zh.get(part, part) for part in threshold.split("；"))


def cleaning_table(summary: pd.DataFrame, lang: str) -> pd.DataFrame:
    """The cleaning summary by rule (cleaning_summary.csv): rule name, threshold, rows dropped."""
    s = summary[summary["order"].notna()] if "order" in summary else summary
    thresholds = [t if not isinstance(t, str) or t == "" else _implausible_text(t, lang)
                  for t in s["threshold"].where(s["threshold"].notna(), "")]
    out = pd.DataFrame({
        "order": s["order"].to_numpy(),
        "rule": [term("cleaning_rule", r, lang, default=lbl) for r, lbl in zip(s["rule"], s["label_zh"], strict=True)],
        "threshold": thresholds, "rows": s["n"].to_numpy(), "share_of_input": s["share_pct"].to_numpy(),
    })
    return headers(out, lang)


def division_table(sae: pd.DataFrame, plan: Plan, lang: str, p_header: str) -> pd.DataFrame:
    """Direct and model estimates by division (sae.parquet rows of one year)."""
    names = division_names(plan, lang)
    cols = ["n", "direct", "direct_se", "fh", "fh_rmse", "shrinkage", "benchmarked", "gap_to_target",
            "change_since_baseline"]
    out = sae[cols].round(2).copy()
    out.insert(0, "division", [names.get(str(c), str(c)) for c in sae["division_code"]])
    out[p_header] = sae["p_below_target"].to_numpy()
    return out.reset_index(drop=True)


def inequality_table(county: dict[str, Any], lang: str, decimals: int = 2) -> pd.DataFrame:
    """One row per (units, measure): first year, latest year and change with 95% intervals, verdict."""
    ineq = county["inequality"]
    units = {"divisions": ineq.get("divisions"), **(ineq.get("groups") or {})}
    sep = "～" if lang == "zh" else " to "
    year = "{}年" if lang == "zh" else "{}"

    def fmt(d: dict[str, Any], k: str = "value") -> str:
        lo, hi = f"{d['ci_low']:.{decimals}f}", f"{d['ci_high']:.{decimals}f}"
        return f"{d[k]:.{decimals}f}（{lo}{sep}{hi}）" if lang == "zh" else f"{d[k]:.{decimals}f} ({lo}{sep}{hi})"
    rows = []
    for key, res in units.items():
        if not res:
            continue
        for m in INEQUALITY_MEASURES:
            f, la, ch = res["first"][m], res["latest"][m], res["change"][m]
            rows.append({"units": capitalise(term("unit", key, lang, default=key)), "measure": term("measure", m, lang),
                         year.format(ineq["first_year"]): fmt(f), year.format(ineq["latest_year"]): fmt(la),
                         "change": fmt(ch, "change"), **({"p_holm": ch["p_holm"]} if "p_holm" in ch else {}),
                         "verdict": term("verdict", ch["verdict"], lang)})
    return headers(pd.DataFrame(rows), lang)


def models_table(traj: dict[str, Any], lang: str, p_header: str) -> pd.DataFrame:
    """One row per candidate trend model: leave-one-year-out errors and its forecast for the target year."""
    rows = []
    forecast = f"{traj['target_year']}年预测（%）" if lang == "zh" else f"Forecast {traj['target_year']} (%)"
    for code, m in traj["methods"]["models"].items():
        lo, hi = m["forecast_interval"]
        rows.append({"model": term("model", code, lang), "loyo_rmse": m["loyo_rmse_pp"], "loyo_mae": m["loyo_mae_pp"],
                     **({"loyo_rms_z": m["loyo_rms_z"]} if "loyo_rms_z" in m else {}),
                     **({"tau2": m["between_year_variance"]["tau2"]} if "between_year_variance" in m else {}),
                     forecast: m["forecast"], "interval95": f"{lo:.1f}–{hi:.1f}", p_header: m["p_exceeds_target"],
                     "chosen": term("yes_no", "yes", lang) if code == traj["model_chosen"] else ""})
    return headers(pd.DataFrame(rows).round(2), lang)


def backtest_table(traj: dict[str, Any], lang: str) -> pd.DataFrame:
    """National backtest: predicted, published and error by year and model."""
    rows = []
    for code, m in (traj["methods"].get("backtest") or {}).items():
        for y, v in m["by_year"].items():
            rows.append({"model": term("model_short", code, lang), "year": int(y), "predicted": v["predicted"],
                         "published": v["published"], "error_pp": v["error_pp"],
                         "inside": yes_no(v["inside_interval"], lang)})
    return headers(pd.DataFrame(rows).round(2), lang)


def groups_table(traj: dict[str, Any], plan: Plan, lang: str) -> pd.DataFrame:
    """Per group: latest share, change a year, trend value in the target year and the gap trend.

    A gap between two levels of one block (urban-rural) is the same number on
    both rows: it is kept on the first row, named there, and blanked on the other.
    """
    rows, where = [], {}
    trend_header = (f"{traj['target_year']}年趋势值（%）" if lang == "zh"
                    else f"Trend value {traj['target_year']} (%)")
    for domain, block in traj["groups"].items():  # key groups first, as the section reads; levels in their order
        for lev, g in sorted(block["levels"].items(), key=lambda kv: level_rank(plan, domain, kv[0])):
            gap = block["gaps"].get(f"{lev}-city") or next(
                (v for k, v in block["gaps"].items() if lev in k.split("-")), {})
            last = max(g["observed"], key=int) if g["observed"] else None
            where[(domain, lev)] = len(rows)
            rows.append({"group": level_label(plan, domain, lev, lang), "latest_year": int(last) if last else None,
                         "latest_estimate": g["observed"].get(last) if last else None,
                         "avg_change": g.get("avg_change_pp_per_year"), trend_header: g.get("forecast_target_year"),
                         "gap_trend": term("gap_trend", gap["verdict"], lang) if gap.get("verdict") else None,
                         "gap_slope": gap.get("slope_pp_per_year"),
                         "explanation": term("word", "all_suppressed", lang) if g.get("note_zh") or g.get("note")
                         else ""})
    out = pd.DataFrame(rows).astype({"gap_trend": object, "gap_slope": object, "explanation": object})
    out["latest_year"] = out["latest_year"].astype("Int64")
    for domain, block in traj["groups"].items():
        for key in block.get("gaps", {}):
            a, _, b = key.partition("-")
            if (domain, a) not in where or (domain, b) not in where:
                continue  # a gap to the city: one row only
            first, second = sorted((where[(domain, a)], where[(domain, b)]))
            label_a, label_b = (level_label(plan, domain, x, lang) for x in (a, b))
            other = out.at[first, "group"]
            said = (f"差距为{label_a}减{label_b}", f"与{other}行为同一差距") if lang == "zh" else \
                (f"gap: {label_a} minus {label_b}", f"same gap as the {other} row")
            out.at[first, "explanation"] = ("；" if lang == "zh" else "; ").join(
                x for x in (out.at[first, "explanation"], said[0]) if x)
            out.at[second, "gap_trend"], out.at[second, "gap_slope"] = "", ""
            out.at[second, "explanation"] = ("；" if lang == "zh" else "; ").join(
                x for x in (out.at[second, "explanation"], said[1]) if x)
    return headers(out, lang)


def decomposition_table(traj: dict[str, Any], lang: str) -> pd.DataFrame:
    """Composition and within-group parts of the change, by both methods."""
    d = traj.get("decomposition") or {}
    first = term("decomposition_method", d.get("method", "shift_share"), lang)
    second = term("decomposition_method", d.get("secondary_method", "oaxaca_logit"), lang)
    if "oaxaca" not in d:  # not decomposed (d["error"] says why; report_text.decomposition_sentence words it)
        return headers(pd.DataFrame(columns=["method", "part", "points"]), lang)
    ob = d["oaxaca"]
    part = {k: term("decomposition_part", k, lang) for k in ("total", "composition", "within")}
    rows = [(first, part["total"], d["total_change_pp"]), (first, part["composition"], d["composition_pp"]),
            (first, part["within"], d["within_pp"]), (second, part["composition"], ob["composition_pp"]),
            (second, part["within"], ob["within_pp"])]
    of = "其中：{}" if lang == "zh" else "of which {}"
    rows += [(second, of.format(term("factor", f, lang, default=f)), v) for f, v in ob["composition_by_factor_pp"].items()]
    return headers(pd.DataFrame(rows, columns=["method", "part", "points"]).round(2), lang)


# ---------------------------------------------------------------- progress (stage 05's tables)

def _status(category: str, lang: str) -> str:
    return term("measure_status", category, lang, default=category)


def progress_group_table(by_group: pd.DataFrame, plan: Plan, lang: str) -> pd.DataFrame:
    out = pd.DataFrame({
        "kind": [term("kind", k, lang, default=k) for k in by_group["kind"]],
        "action": [plan_word(plan, "actions", g, lang) for g in by_group["group_name"]],
        "n_measures": by_group["n_measures"], "completed": by_group["n_completed"],
        "in_progress": by_group["n_in_progress"], "not_started": by_group["n_not_started"],
        "partial": by_group["n_partial"], "not_reported": by_group["n_not_reported"],
        "overdue": by_group["n_overdue"], "completed_share": by_group["completed_share"].round(1),
        "mean_completion": by_group["mean_completion"].round(1),
    })
    return headers(out, lang)


def progress_unit_table(by_unit: pd.DataFrame, plan: Plan, lang: str) -> pd.DataFrame:
    out = pd.DataFrame({
        "lead_unit": [plan_word(plan, "units", u, lang) for u in by_unit["unit"]],
        "returned": [yes_no(r, lang) for r in by_unit["returned"]], "n_led": by_unit["n_measures"],
        "completed": by_unit["n_completed"], "overdue": by_unit["n_overdue"],
        "not_reported": by_unit["n_not_reported"], "completed_share": by_unit["completed_share"].round(1),
        "mean_completion": by_unit["mean_completion"].round(1),
    })
    return headers(out, lang)


def _comparison(c: str, lang: str) -> str:
    signs = {">=": "≥", "<=": "≤", ">": "＞", "<": "＜"} if lang == "zh" else {">=": "≥", "<=": "≤"}
    return signs.get(c, c)


def progress_indicator_table(ind: pd.DataFrame, specs: list[dict[str, Any]], lang: str,
                             verdicts: Mapping[str, str] | None = None) -> pd.DataFrame:
    """City-level indicators against their targets (progress_indicators.parquet): one row per indicator, one
    column per year (as a reader scans them), then the judgement at the latest year the indicator is due.

    An indicator due in several years (an annual target) says in how many it was met. `verdicts` (indicator
    id -> words) replaces the judgement of an indicator judged otherwise (the headline target's verdict).
    """
    check_lang(lang)
    d = ind[ind["scope"] == "city"]
    names = {s["id"]: capitalise(str(s.get(f"name_{lang}") or s["name_zh"])) for s in specs}
    years = sorted({int(y) for y in d["year"]})
    rows, units = [], []
    for indicator_id, part in d.groupby("indicator_id", sort=False):
        part = part.sort_values("year")
        first = part.iloc[0]
        unit = first["unit"]
        units.append(unit)
        due = part[part["due"].astype(bool)]
        if due.empty:
            judged = term("word", "not_due_year", lang)
        else:
            last = due.iloc[-1]
            judged = "—" if pd.isna(last["met"]) else term("status", "met" if last["met"] else "missed", lang)
            if len(due) > 1:
                n_met = int(due["met"].fillna(False).astype(bool).sum())
                judged += (f"（{len(due)}年中{n_met}年达标）" if lang == "zh"
                           else f" (met in {n_met} of {len(due)} years)")
        if verdicts and indicator_id in verdicts:
            judged = verdicts[indicator_id]
        notes = [(int(y), _indicator_note(n, m, lang)) for y, n, m in
                 zip(part["year"], part["note"], part["n_missing"] if "n_missing" in part else [0] * len(part),
                     strict=True)]
        row = {"indicator": names.get(indicator_id, first["name_zh"]),
               "unit_of_count": term("unit_of_count", unit, lang,
                                     default=unit if lang == "zh" or str(unit).isascii() else ""),
               "target": f"{_comparison(first['comparison'], lang)}{first['target']:g}"}
        values = dict(zip(part["year"].astype(int), part["value"], strict=True))
        row |= {str(y): values.get(y, float("nan")) for y in years}
        row["met"] = judged
        row["explanation"] = ("；" if lang == "zh" else "; ").join(
            (f"{y}年：{n}" if lang == "zh" else f"{y}: {n}") for y, n in notes if n)
        rows.append(row)
    out = pd.DataFrame(rows)
    if not out["explanation"].astype(bool).any():
        out = out.drop(columns="explanation")
    out = headers(out, lang)
    # percentages with one decimal, counts as integers: the year columns hold both (ROW_DECIMALS)
    out.attrs[ROW_DECIMALS] = [1 if u == "percent" else 0 for u in units]
    return out


def _indicator_note(note: Any, n_missing: Any, lang: str) -> str:
    """A progress_indicators note code in words ('missing_counted_as_none' with the count of divisions)."""
    if not note or pd.isna(note):
        return ""
    if note == "missing_counted_as_none":
        return (f"{int(n_missing)}个县（市、区）未报送，按未建成计" if lang == "zh"
                else f"{int(n_missing)} {'division' if int(n_missing) == 1 else 'divisions'} did not report "
                     f"(counted as having none)")
    return str(note)


def overdue_table(measures: pd.DataFrame, plan: Plan, lang: str) -> pd.DataFrame:
    """Overdue measures; the English table leaves out the annex's task wording (Chinese only)."""
    d = measures[measures["overdue"]]
    done = [f"{int(a)}/{int(b)}" if pd.notna(b) else "" for a, b in
            zip(d["years_done"].astype("Float64").fillna(0), d["years_due"], strict=True)]
    sep = "、" if lang == "zh" else "; "
    deadline = [x if lang == "zh" else _deadline_en(x) for x in d["deadline"]]
    out = pd.DataFrame({"measure_id": d["measure_id"].to_numpy()})
    if lang == "zh":
        out["task"] = d["task_name"].to_numpy()
    out["lead_unit"] = [sep.join(plan_word(plan, "units", u, lang) for u in str(units).split(";"))
                        for units in d["lead_units"]]
    out["deadline"] = deadline
    out["status_now"] = [_status(c, lang) for c in d["category"]]
    out["years_done"] = done
    return headers(out, lang)


def _deadline_en(text: str) -> str:
    """'2025年底' -> 'end of 2025', '每年实施' -> 'every year'; other wording as it is."""
    import re

    if text == "每年实施":
        return term("word", "every_year", "en")
    m = re.fullmatch(r"(\d{4})年底", str(text))
    return f"end of {m.group(1)}" if m else str(text)

