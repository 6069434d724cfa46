"""Evaluation of the plan's tasks and indicators from validated progress returns.

Rules (the report's methods text repeats them):
- A report for year Y is taken as of the end of Y: a 'YYYY年底' measure is due
  when Y >= YYYY; a 每年实施 measure is due for every plan year up to Y.
- Status of a measure in a year: when several co-lead units report, the least
  advanced status counts (未启动 < 推进中 < 已完成); no valid report is 未报送.
- A 'YYYY年底' measure's status as of Y is its status in the latest reported
  year <= Y; it is completed when that is 已完成 (completion 1, else 0).
- A 每年实施 measure's completion is the share of its due years that are
  已完成; it is completed when every due year is, overdue when one is not.
- Overdue: due and not completed.
"""

from __future__ import annotations

import operator

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from .plotting import save_figure, use_cjk_font

STATUS_RANK = {"未启动": 0, "推进中": 1, "已完成": 2}
DONE = "已完成"
NOT_REPORTED = "未报送"
PARTIAL = "部分年度未完成"
ANNUAL = "每年实施"
COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
KIND_ORDER = {"提升行动": 0, "重点工程": 1}


def merge_statuses(reports: pd.DataFrame, year: int) -> pd.DataFrame:
    """One status per (measure_id, year <= year): the least advanced valid status reported."""
    r = reports[reports["status"].notna() & (reports["year"] <= year)]
    if r.empty:
        return pd.DataFrame({"measure_id": pd.Series(dtype="str"), "year": pd.Series(dtype="int64"),
                             "status": pd.Series(dtype="str")})
    r = r.assign(_rank=r["status"].map(STATUS_RANK))
    out = r.sort_values("_rank").drop_duplicates(["measure_id", "year"], keep="first")
    return out[["measure_id", "year", "status"]].sort_values(["measure_id", "year"]).reset_index(
        drop=True)


def measure_progress(tasks: pd.DataFrame, statuses: pd.DataFrame, year: int,
                     period: tuple[int, int]) -> pd.DataFrame:
    """One row per measure: status as of `year`, due, completed, completion, overdue."""
    start, end = period
    by_measure = {mid: dict(zip(g["year"], g["status"], strict=True))
                  for mid, g in statuses.groupby("measure_id")}
    rows = []
    for _, t in tasks.iterrows():
        seen = {y: s for y, s in by_measure.get(t["measure_id"], {}).items() if y <= year}
        row = {
            "measure_id": t["measure_id"], "kind": t["kind"], "group_no": int(t["group_no"]),
            "group_name": t["group_name"], "task_no": int(t["task_no"]),
            "task_name": t["task_name"], "lead_units": ";".join(t["lead_units"]),
            "measure_text": t.get("measure_text", ""), "responsible_units": _units_text(t.get("responsible_units")),
            "deadline": t["deadline"],
        }
        if t["deadline"] == ANNUAL:
            due_years = list(range(start, min(year, end) + 1))
            done = sum(seen.get(y) == DONE for y in due_years)
            status_year = year if year in seen else None
            row.update(
                status=seen.get(year, NOT_REPORTED), status_year=status_year,
                years_due=len(due_years), years_reported=sum(y in seen for y in due_years),
                years_done=done, due=bool(due_years),
                completion=done / len(due_years) if due_years else np.nan,
                completed=bool(due_years) and done == len(due_years),
                year_completed=max(due_years) if due_years and done == len(due_years) else None,
            )
        else:
            dy = int(t["deadline_year"])
            last = max(seen) if seen else None
            status = seen[last] if last is not None else NOT_REPORTED
            row.update(
                status=status, status_year=last, years_due=None,
                years_reported=len(seen), years_done=None, due=year >= dy,
                completion=1.0 if status == DONE else 0.0, completed=status == DONE,
                year_completed=_first_done_year(seen) if status == DONE else None,
            )
        row["overdue"] = row["due"] and not row["completed"]
        row["reported"] = row["years_reported"] > 0
        row["category"] = category(row)
        rows.append(row)
    out = pd.DataFrame(rows)
    for c in ("status_year", "years_due", "years_done", "year_completed"):
        out[c] = pd.array(out[c], dtype="Int64")
    return out


def _units_text(units) -> str:
    if units is None or (isinstance(units, float) and np.isnan(units)):
        return ""
    return units if isinstance(units, str) else ";".join(units)


def _first_done_year(seen: dict[int, str]) -> int | None:
    """The first year from which the measure is reported 已完成 without a later step back."""
    years = sorted(seen)
    first = None
    for y in years:
        if seen[y] == DONE:
            first = y if first is None else first
        else:
            first = None
    return first


def measure_evidence(reports: pd.DataFrame, year: int) -> pd.DataFrame:
    """Per measure: the evidence (佐证材料) named in its latest reported year <= year, from every reporting unit."""
    cols = ["measure_id", "evidence", "evidence_year"]
    if "evidence" not in reports:
        return pd.DataFrame(columns=cols)
    r = reports[(reports["year"] <= year) & reports["evidence"].notna()]
    r = r[r["evidence"].astype(str).str.strip() != ""]
    if r.empty:
        return pd.DataFrame(columns=cols)
    last = r[r["year"] == r.groupby("measure_id")["year"].transform("max")]
    out = last.groupby("measure_id").agg(evidence=("evidence", lambda e: "；".join(dict.fromkeys(map(str, e)))),
                                         evidence_year=("year", "max")).reset_index()
    return out[cols]


def category(row: dict) -> str:
    """One label a measure, so that the labels add up to the number of measures:
    已完成; 部分年度未完成 (每年实施, some due year not done); else the status as of
    the report year (推进中, 未启动, 未报送)."""
    if row["completed"]:
        return DONE
    if not row["reported"]:
        return NOT_REPORTED
    if row["deadline"] == ANNUAL:
        return PARTIAL
    return row["status"]


CATEGORY_COLUMNS = {DONE: "n_completed", "推进中": "n_in_progress", "未启动": "n_not_started",
                    "部分年度未完成": "n_partial", NOT_REPORTED: "n_not_reported"}


def _summarise(df: pd.DataFrame) -> dict:
    n = len(df)
    counts = df["category"].value_counts() if n else pd.Series(dtype="int64")
    return {
        "n_measures": n,
        "n_due": int(df["due"].sum()),
        **{col: int(counts.get(cat, 0)) for cat, col in CATEGORY_COLUMNS.items()},
        "completed_share": 100 * df["completed"].mean() if n else np.nan,
        "mean_completion": 100 * df["completion"].mean() if n else np.nan,
        "n_overdue": int(df["overdue"].sum()),
    }


def completion_by_group(progress: pd.DataFrame) -> pd.DataFrame:
    """Completion per action (提升行动) and project (重点工程). Shares in percent."""
    rows = [{"kind": k, "group_no": g, "group_name": name, **_summarise(df)}
            for (k, g, name), df in progress.groupby(["kind", "group_no", "group_name"])]
    out = pd.DataFrame(rows)
    out["_k"] = out["kind"].map(KIND_ORDER)
    return out.sort_values(["_k", "group_no"]).drop(columns="_k").reset_index(drop=True)


def completion_by_unit(tasks: pd.DataFrame, reports: pd.DataFrame, year: int,
                       period: tuple[int, int], units: list[str],
                       returned: set[str]) -> pd.DataFrame:
    """Completion per lead unit, from that unit's own reports (co-led measures count for each)."""
    rows = []
    for u in units:
        mine = tasks[tasks["lead_units"].map(lambda us, u=u: u in us)]
        st = merge_statuses(reports[reports["unit"] == u], year)
        prog = measure_progress(mine, st, year, period)
        rows.append({"unit": u, "returned": u in returned, **_summarise(prog)})
    return pd.DataFrame(rows)


def annual_by_year(progress_tasks: pd.DataFrame, statuses: pd.DataFrame, year: int,
                   period: tuple[int, int]) -> pd.DataFrame:
    """Per plan year up to `year`: how many 每年实施 measures were 已完成 that year."""
    start, end = period
    annual = progress_tasks[progress_tasks["deadline"] == ANNUAL]["measure_id"]
    st = statuses[statuses["measure_id"].isin(annual)]
    rows = []
    for y in range(start, min(year, end) + 1):
        s = st[st["year"] == y].set_index("measure_id")["status"].reindex(annual).fillna(
            NOT_REPORTED)
        n = len(s)
        rows.append({
            "year": y, "n_measures": n, "n_done": int((s == DONE).sum()),
            "n_in_progress": int((s == "推进中").sum()), "n_not_started": int((s == "未启动").sum()),
            "n_not_reported": int((s == NOT_REPORTED).sum()),
            "done_share": 100 * (s == DONE).mean() if n else np.nan,
        })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- indicators

INDICATOR_COLUMNS = ["indicator_id", "name_zh", "year", "scope", "level", "level_name", "value",
                     "target", "comparison", "unit", "deadline", "due", "met", "n_inputs",
                     "n_missing", "source", "note"]
MISSING_AS_NONE = "missing_counted_as_none"  # note: divisions without a report counted as not having it


def _met(value, spec) -> object:
    if value is None or pd.isna(value):
        return pd.NA
    return bool(COMPARE[spec["comparison"]](float(value), spec["target"]))


def _due(spec, y: int) -> bool:
    return spec["annual"] or y >= int(spec["deadline"])


def indicator_progress(specs: list[dict], values: pd.DataFrame, year: int,
                       period: tuple[int, int], divisions: list[dict],
                       survey: pd.DataFrame | None = None) -> pd.DataFrame:
    """Indicators against targets by year (city) and by division (division counts).

    values: validated return rows (indicator_id, division_code, year, value).
    survey: optional (year, value) rows for the survey-based indicator.
    The share of divisions counts a division without a report as not having the
    facility (a lower bound): `note` is then the code MISSING_AS_NONE and `n_missing` says how many.
    """
    start, _ = period
    years = list(range(start, year + 1))
    rows = []
    names = {str(d["code"]): d["name_zh"] for d in divisions}
    for spec in specs:
        base = {"indicator_id": spec["id"], "name_zh": spec["name_zh"], "comparison":
                spec["comparison"], "unit": spec["unit"], "deadline": str(spec["deadline"])}
        v = values[values["indicator_id"] == spec["id"]] if len(values) else values
        if spec.get("source") == "survey":
            s = survey if survey is not None else pd.DataFrame(columns=["year", "value"])
            for _, r in s[s["year"] <= year].iterrows():
                rows.append({**base, "year": int(r["year"]), "scope": "city", "level": "all",
                             "level_name": "", "value": float(r["value"]),
                             "target": spec["target"], "due": _due(spec, int(r["year"])),
                             "met": _met(r["value"], spec), "n_inputs": 1, "n_missing": 0,
                             "source": "survey", "note": ""})
            continue
        for y in years:
            vy = v[v["year"] == y]
            if spec["input"] == "count_by_division":
                counts = vy.set_index("division_code")["value"]
                for code, name in names.items():
                    c = counts.get(code, np.nan)
                    rows.append({**base, "year": y, "scope": "division", "level": code,
                                 "level_name": name, "value": c, "target": np.nan, "due": False,
                                 "met": pd.NA, "n_inputs": int(code in counts.index),
                                 "n_missing": int(code not in counts.index), "source": "return",
                                 "note": ""})
                n_rep = int(counts.index.isin(list(names)).sum())
                have = int((counts.reindex(list(names)) >= spec.get("threshold", 1)).sum())
                share = 100 * have / len(names) if n_rep else np.nan
                note = MISSING_AS_NONE if 0 < n_rep < len(names) else ""
                rows.append({**base, "year": y, "scope": "city", "level": "all",
                             "level_name": "", "value": share, "target": spec["target"],
                             "due": _due(spec, y), "met": _met(share, spec), "n_inputs": n_rep,
                             "n_missing": len(names) - n_rep, "source": "return", "note": note})
            else:
                val = float(vy["value"].iloc[0]) if len(vy) else np.nan
                rows.append({**base, "year": y, "scope": "city", "level": "all",
                             "level_name": "", "value": val, "target": spec["target"],
                             "due": _due(spec, y), "met": _met(val, spec),
                             "n_inputs": int(len(vy) > 0), "n_missing": int(len(vy) == 0),
                             "source": "return", "note": ""})
    out = pd.DataFrame(rows, columns=INDICATOR_COLUMNS)
    out["met"] = out["met"].astype("boolean")
    out["value"] = out["value"].astype("float64")
    out["target"] = out["target"].astype("float64")
    return out


def indicator_summary(specs: list[dict], ind: pd.DataFrame, year: int) -> list[dict]:
    """Per indicator as of `year`: status met | missed | not_due | no_data | incomplete."""
    out = []
    for spec in specs:
        city = ind[(ind["indicator_id"] == spec["id"]) & (ind["scope"] == "city")]
        by_year = {int(r.year): (None if pd.isna(r.value) else round(float(r.value), 4))
                   for r in city.itertuples()}
        item = {"id": spec["id"], "name_zh": spec["name_zh"], "name_en": spec.get("name_en"),
                "target": spec["target"],
                "comparison": spec["comparison"], "unit": spec["unit"],
                "deadline": spec["deadline"], "owner": spec.get("owner"),
                "values_by_year": by_year}
        reported = city[city["value"].notna()]
        if spec["annual"]:
            due = city[city["due"]]
            if reported.empty:
                status = "no_data"
            elif (reported["met"] == False).any():  # noqa: E712 - nullable boolean
                status = "missed"
            elif due["value"].notna().all():
                status = "met"
            else:
                status = "incomplete"
            item.update(value=by_year.get(year), value_year=year if year in by_year else None,
                        years_met=int((reported["met"] == True).sum()),  # noqa: E712
                        years_missed=int((reported["met"] == False).sum()))  # noqa: E712
        else:
            last = reported[reported["year"] <= year]
            value = float(last["value"].iloc[-1]) if len(last) else None
            vyear = int(last["year"].iloc[-1]) if len(last) else None
            if value is None:
                status = "no_data"
            elif year < int(spec["deadline"]):
                status = "not_due"
            else:
                status = "met" if _met(value, spec) else "missed"
                if vyear != year and spec.get("source") != "survey":
                    status = "no_data"  # a stock must be reported for the deadline year
            item.update(value=value, value_year=vyear)
        item["status"] = status
        out.append(item)
    return out


# --------------------------------------------------------------------------- figures

STATUS_COLORS = {"已完成": "#2e7d32", "推进中": "#f9a825", PARTIAL: "#ef6c00", "未启动": "#c62828",
                 NOT_REPORTED: "#9e9e9e"}


def _stacked_bars(ax, labels, parts: dict[str, list[float]]):
    left = np.zeros(len(labels))
    for name, vals in parts.items():
        ax.barh(labels, vals, left=left, color=STATUS_COLORS[name], label=name)
        left += np.asarray(vals, dtype=float)
    ax.invert_yaxis()
    ax.legend(loc="upper center", fontsize=8, ncol=len(parts), bbox_to_anchor=(0.5, -0.08),
              frameon=False)


def plot_by_group(by_group: pd.DataFrame, year: int):
    """Status of measures per action/project as of the report year (counts)."""
    import matplotlib.pyplot as plt

    use_cjk_font()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(by_group) + 1.5))
    labels = [n.removeprefix("实施") for n in by_group["group_name"]]
    _stacked_bars(ax, labels, {cat: list(by_group[col]) for cat, col in CATEGORY_COLUMNS.items()})
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"各提升行动、重点工程措施完成情况（截至{year}年底，单位：项）", loc="left")
    return fig


def plot_by_unit(by_unit: pd.DataFrame, year: int):
    import matplotlib.pyplot as plt

    use_cjk_font()
    df = by_unit.sort_values("completed_share", ascending=False)
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(df) + 1.5))
    labels = [u if r else f"{u}（未报送）" for u, r in zip(df["unit"], df["returned"], strict=True)]
    ax.barh(labels, df["completed_share"], color="#1565c0")
    for i, (s, n, c) in enumerate(zip(df["completed_share"], df["n_measures"], df["n_completed"],
                                      strict=True)):
        ax.text(s + 1, i, f"{c}/{n}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 110)
    ax.set_xlabel("已完成措施占比（%）")
    ax.set_title(f"各牵头单位措施完成率（截至{year}年底，按本单位填报）", loc="left")
    return fig


def plot_annual(by_year: pd.DataFrame):
    import matplotlib.pyplot as plt

    use_cjk_font()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    years = by_year["year"].astype(str)
    bottom = np.zeros(len(by_year))
    for name, col in (("已完成", "n_done"), ("推进中", "n_in_progress"),
                      ("未启动", "n_not_started"), (NOT_REPORTED, "n_not_reported")):
        ax.bar(years, by_year[col], bottom=bottom, color=STATUS_COLORS[name], label=name)
        bottom += by_year[col].to_numpy(dtype=float)
    ax.set_ylabel("每年实施措施数（项）")
    ax.set_title("每年实施措施的逐年完成情况", loc="left")
    ax.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    return fig


def _target_label(spec_row) -> str:
    comp = {">=": "≥", "<=": "≤"}.get(spec_row["comparison"], spec_row["comparison"])
    return f"目标 {comp}{spec_row['target']:g}"


def plot_indicators_annual(ind: pd.DataFrame, specs: list[dict]):
    """Indicators with a target every year (e.g. people trained per year): bars and target line."""
    import matplotlib.pyplot as plt

    use_cjk_font()
    annual = [s for s in specs if s["annual"]]
    fig, axes = plt.subplots(1, max(len(annual), 1), figsize=(6 * max(len(annual), 1), 3.5),
                             squeeze=False)
    for ax, spec in zip(axes[0], annual, strict=False):
        d = ind[(ind["indicator_id"] == spec["id"]) & (ind["scope"] == "city")]
        colors = ["#2e7d32" if m is True else "#c62828" if m is False else "#9e9e9e"
                  for m in d["met"].astype(object).where(d["met"].notna(), None)]
        ax.bar(d["year"].astype(str), d["value"].fillna(0), color=colors)
        ax.axhline(spec["target"], color="black", ls="--", lw=1)
        ax.text(0.01, spec["target"], _target_label(spec), va="bottom", fontsize=8,
                transform=ax.get_yaxis_transform())
        ax.set_title(spec["name_zh"], loc="left")
        ax.set_ylabel(f"数量（{spec['unit']}）")
    return fig


def plot_indicators_stock(ind: pd.DataFrame, specs: list[dict]):
    """Counts to reach by the deadline (e.g. bases by level): yearly values and targets."""
    import matplotlib.pyplot as plt

    use_cjk_font()
    stock = [s for s in specs if not s["annual"] and s.get("source") != "survey"
             and s["input"] == "value"]
    fig, axes = plt.subplots(1, max(len(stock), 1), figsize=(3.6 * max(len(stock), 1), 3.4),
                             squeeze=False)
    for ax, spec in zip(axes[0], stock, strict=False):
        d = ind[(ind["indicator_id"] == spec["id"]) & (ind["scope"] == "city")]
        ax.plot(d["year"], d["value"], marker="o", color="#1565c0")
        ax.axhline(spec["target"], color="black", ls="--", lw=1)
        ax.scatter([int(spec["deadline"])], [spec["target"]], marker="*", s=120, color="#c62828",
                   zorder=3, label=f"{spec['deadline']}年{_target_label(spec)}")
        ax.set_title(spec["name_zh"], loc="left", fontsize=10)
        ax.set_ylabel(f"数量（{spec['unit']}）")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xticks(sorted(set(d["year"]) | {int(spec["deadline"])}))
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7, loc="lower right")
    return fig


def plot_indicators_division(ind: pd.DataFrame, specs: list[dict], year: int):
    """Per-division counts by year (a table of coloured cells) and the city share by year."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    use_cjk_font()
    div = [s for s in specs if s["input"] == "count_by_division"]
    fig, axes = plt.subplots(1, max(len(div), 1), figsize=(7.5 * max(len(div), 1), 4.6),
                             squeeze=False)
    for ax, spec in zip(axes[0], div, strict=False):
        d = ind[(ind["indicator_id"] == spec["id"]) & (ind["scope"] == "division")]
        city = ind[(ind["indicator_id"] == spec["id"]) & (ind["scope"] == "city")]
        names = list(dict.fromkeys(d["level_name"]))
        years = sorted(set(d["year"]))
        grid = d.pivot_table(index="level_name", columns="year", values="value",
                             aggfunc="first", dropna=False).reindex(index=names, columns=years)
        thr = spec.get("threshold", 1)
        state = np.where(grid.isna(), 0, np.where(grid >= thr, 2, 1))
        cmap = ListedColormap(["#e0e0e0", "#ffcdd2", "#a5d6a7"])
        ax.imshow(state, cmap=cmap, vmin=0, vmax=2, aspect="auto")
        for i in range(len(names)):
            for j in range(len(years)):
                v = grid.iat[i, j]
                ax.text(j, i, "未报送" if pd.isna(v) else f"{v:g}", ha="center", va="center",
                        fontsize=9)
        shares = city.set_index("year")["value"].reindex(years)
        ax.set_xticks(range(len(years)),
                      [f"{y}\n{'—' if pd.isna(v) else f'{v:.0f}%'}" for y, v in shares.items()])
        ax.set_yticks(range(len(names)), names)
        ax.set_title(f"各县（市、区）{spec['input_name_zh']}（{spec['input_unit']}，截至各年年底）\n"
                     f"横轴下为达到{thr:g}{spec['input_unit']}以上的县（市、区）比例，"
                     f"{spec['deadline']}年{_target_label(spec)}%", loc="left", fontsize=10)
        ax.tick_params(length=0)
    return fig


def save_figures(out_dir, year, by_group, by_unit, by_year, ind, specs) -> list:
    """Write figures/progress_*.png; returns the paths."""
    figs = {
        "progress_by_group.png": plot_by_group(by_group, year),
        "progress_by_unit.png": plot_by_unit(by_unit, year),
        "progress_annual_by_year.png": plot_annual(by_year),
        "progress_indicators_annual.png": plot_indicators_annual(ind, specs),
        "progress_indicators_stock.png": plot_indicators_stock(ind, specs),
        "progress_indicators_division.png": plot_indicators_division(ind, specs, year),
    }
    return [save_figure(fig, out_dir / name) for name, fig in figs.items()]


# --------------------------------------------------------------------------- Chinese tables

def group_table_zh(by_group: pd.DataFrame) -> pd.DataFrame:
    """progress_by_group in Chinese, for the notebook and the report."""
    return pd.DataFrame({
        "类别": by_group["kind"], "行动/工程": by_group["group_name"],
        "措施数": by_group["n_measures"], "已完成": by_group["n_completed"],
        "推进中": by_group["n_in_progress"], "未启动": by_group["n_not_started"],
        "部分年度未完成": by_group["n_partial"], "未报送": by_group["n_not_reported"],
        "逾期": by_group["n_overdue"], "完成率（%）": by_group["completed_share"].round(1),
        "平均完成度（%）": by_group["mean_completion"].round(1),
    })


def unit_table_zh(by_unit: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "牵头单位": by_unit["unit"], "已报送": by_unit["returned"].map({True: "是", False: "否"}),
        "牵头措施数": by_unit["n_measures"], "已完成": by_unit["n_completed"],
        "逾期": by_unit["n_overdue"], "未报送": by_unit["n_not_reported"],
        "完成率（%）": by_unit["completed_share"].round(1),
        "平均完成度（%）": by_unit["mean_completion"].round(1),
    })


def overdue_table_zh(measures: pd.DataFrame) -> pd.DataFrame:
    d = measures[measures["overdue"]]
    done = [f"{int(a)}/{int(b)}" if pd.notna(b) else "" for a, b in
            zip(d["years_done"].astype("Float64").fillna(0), d["years_due"], strict=True)]
    return pd.DataFrame({
        "措施编号": d["measure_id"], "主要工作任务": d["task_name"],
        "牵头单位": d["lead_units"].str.replace(";", "、"), "完成时限": d["deadline"],
        "截至报告年状态": d["category"], "已完成年数/应完成年数": done,
    }).reset_index(drop=True)


def indicator_table_zh(ind: pd.DataFrame) -> pd.DataFrame:
    """City-level indicator values by year against targets."""
    d = ind[ind["scope"] == "city"]
    met = d["met"].astype(object).map({True: "达标", False: "未达标"}).where(d["met"].notna(), "—")
    met = met.where(d["due"], "未到考核年")
    return pd.DataFrame({
        "指标": d["name_zh"], "年度": d["year"], "数值": d["value"].round(2),
        "目标": [f"{_cmp_zh(c)}{t:g}" for c, t in zip(d["comparison"], d["target"], strict=True)],
        "计量单位": d["unit"].replace({"percent": "%"}),
        "考核年": d["due"].map({True: "是", False: "否"}), "是否达标": met,
        "说明": [f"{n}个县（市、区）未报送，按未建成计" if note == MISSING_AS_NONE else ""
               for note, n in zip(d["note"], d["n_missing"], strict=True)],
    }).reset_index(drop=True)


def problems_table_zh(problems: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "文件": problems["file"], "工作表": problems["sheet"], "单元格": problems["cell"],
        "问题": problems["problem"],
        "级别": problems["severity"].map({"error": "错误", "warning": "提示"}),
    }).reset_index(drop=True)


def _cmp_zh(c: str) -> str:
    return {">=": "≥", "<=": "≤", ">": "＞", "<": "＜"}.get(c, c)


def annual_table_zh(by_year: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "年度": by_year["year"], "每年实施措施数": by_year["n_measures"],
        "已完成": by_year["n_done"], "推进中": by_year["n_in_progress"],
        "未启动": by_year["n_not_started"], "未报送": by_year["n_not_reported"],
        "完成率（%）": by_year["done_share"].round(1),
    })
