"""Stage 05: plan progress. Returns in data/raw/progress/ -> progress tables, figures, JSON."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .config import Plan, processed_dir
from .estimate_stage import EstimateStageError, estimate_files, load_estimates_with_paths
from .jsonio import to_jsonable, write_json
from .plan_tasks import lead_units, load_tasks, load_units, tasks_path, units_path
from .progress import (
    annual_by_year,
    completion_by_group,
    completion_by_unit,
    indicator_progress,
    indicator_summary,
    measure_progress,
    merge_statuses,
    save_figures,
)
from .progress_returns import indicator_specs, read_returns, write_templates
from .provenance import write_manifest

STAGE = "05_plan_progress"
SURVEY_COLUMNS = ("year", "indicator", "domain", "level", "estimate")  # of estimates.parquet


class ProgressStageError(ValueError):
    """Stage 05 inputs are missing."""


def returns_dir(plan: Plan) -> Path:
    """Folder of the filled returns: <raw_dir>/<tasks.returns_dir> (default progress)."""
    return plan.raw_dir / plan.settings.tasks.returns_dir


def find_returns(plan: Plan) -> list[Path]:
    """Filled returns: every .xlsx under <raw_dir>/progress/ except templates and Excel lock files."""
    return sorted(p for p in returns_dir(plan).glob("*.xlsx")
                  if not p.name.startswith("~$") and not p.stem.endswith("-template"))


def require_returns(plan: Plan) -> list[Path]:
    """find_returns, or a clear error when there is none (never falls back to synthetic returns)."""
    paths = find_returns(plan)
    if not paths:
        folder = returns_dir(plan)
        raise ProgressStageError(
            f"no filled progress returns (*.xlsx, not *-template.xlsx) in {folder}"
            f"{'' if folder.is_dir() else ' (the folder does not exist)'}: put the lead units' returns "
            f"there (folder set by tasks.returns_dir in {plan.path}); for the synthetic demo run "
            f"`python -m analysis demo`, which builds demo returns marked as synthetic")
    return paths


def survey_literacy(plan: Plan, year: int, processed_root: Path | None = None
                    ) -> tuple[pd.DataFrame | None, list[Path]]:
    """City share literate per survey year <= year from stage 02's estimates, when present."""
    try:
        est, inputs = load_estimates_with_paths(plan, processed_root, up_to=year, indicator="literate",
                                                need=SURVEY_COLUMNS)
    except EstimateStageError as err:
        if estimate_files(plan, processed_root, up_to=year):
            raise ProgressStageError(str(err)) from err  # files exist but are unusable
        return None, []
    city = est[est["domain"] == "city"].drop_duplicates("year").sort_values("year")
    if city.empty:
        return None, []
    rows = pd.DataFrame({"year": city["year"].astype(int).to_numpy(),
                         "value": city["estimate"].astype(float).to_numpy()})
    used = set(rows["year"])
    return rows, [p for p in inputs if int(p.parent.name) in used]


def run_progress(plan: Plan, year: int, processed_root: Path | None = None,
                 templates: bool = True) -> dict:
    """Evaluate the returns for years <= `year`; write tables, figures, JSON and manifest.

    Returns the content of progress.json.
    """
    units = load_units(plan)
    tasks = load_tasks(plan, units)
    paths = require_returns(plan)
    ret = read_returns(paths, plan, tasks, units)
    reports = ret.measures[ret.measures["year"] <= year]
    values = ret.indicators[ret.indicators["year"] <= year]
    period = plan.period

    statuses = merge_statuses(reports, year)
    prog = measure_progress(tasks, statuses, year, period)
    by_group = completion_by_group(prog)
    leads = lead_units(tasks)
    returned = {u for u in ret.files["unit"].dropna()} if len(ret.files) else set()
    by_unit = completion_by_unit(tasks, reports, year, period, leads, returned)
    by_year = annual_by_year(tasks, statuses, year, period)
    specs = indicator_specs(plan, tasks)
    survey, survey_inputs = survey_literacy(plan, year, processed_root)
    ind = indicator_progress(specs, values, year, period, plan.divisions, survey)
    summary = indicator_summary(specs, ind, year)

    out = processed_dir(plan.city, year, processed_root)
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "progress_measures.parquet": prog,
        "progress_by_group.parquet": by_group,
        "progress_by_unit.parquet": by_unit,
        "progress_by_year.parquet": by_year,
        "progress_indicators.parquet": ind,
        "progress_problems.parquet": ret.problems,
    }
    outputs = []
    for name, df in tables.items():
        df.to_parquet(out / name, index=False)
        outputs.append(out / name)
    outputs += save_figures(out / "figures", year, by_group, by_unit, by_year, ind, specs)
    if templates:
        outputs += write_templates(plan, out / "templates")

    errors = ret.problems[ret.problems["severity"] == "error"]
    counts = {s: sum(i["status"] == s for i in summary)
              for s in ("met", "missed", "not_due", "no_data", "incomplete")}
    headline = {
        "city": plan.city,
        "report_year": year,
        "period": list(period),
        "synthetic": bool(len(ret.files) and ret.files["synthetic"].any()),
        "measures_total": len(prog),
        "measures_due": int(prog["due"].sum()),
        "measures_completed": int(prog["completed"].sum()),
        "completed_share": 100 * prog["completed"].mean(),
        "mean_completion": 100 * prog["completion"].mean(),
        "overdue_count": int(prog["overdue"].sum()),
        "overdue_measures": list(prog.loc[prog["overdue"], "measure_id"]),
        "by_kind": {k: {"n_measures": len(d), "n_completed": int(d["completed"].sum()),
                        "completed_share": 100 * d["completed"].mean(),
                        "n_overdue": int(d["overdue"].sum())}
                    for k, d in prog.groupby("kind", sort=False)},
        "annual_done_share_by_year": dict(zip(by_year["year"], by_year["done_share"],
                                              strict=True)),
        "returns": {
            "files": [str(p.name) for p in paths],
            "units_expected": leads,
            "units_returned": [u for u in leads if u in returned],
            "units_missing": [u for u in leads if u not in returned],
        },
        "problems": {
            "errors": len(errors),
            "warnings": int((ret.problems["severity"] == "warning").sum()),
            "files_with_errors": sorted(set(errors["file"])),
        },
        "indicators": summary,
        "indicators_met": counts["met"],
        "indicators_missed": counts["missed"],
        "indicators_not_due": counts["not_due"],
        "indicators_no_data": counts["no_data"] + counts["incomplete"],
        "outputs": [str(p.relative_to(out)) for p in outputs],
    }
    headline = to_jsonable(headline, 4)
    jpath = write_json(out / "progress.json", headline)
    outputs.append(jpath)
    write_manifest(
        out, STAGE,
        inputs=[plan.path, tasks_path(plan), units_path(plan), *paths, *survey_inputs],
        outputs=outputs,
        params={"city": plan.city, "year": year, "raw_dir": plan.raw_dir,
                "processed_root": processed_root, "templates": templates},
    )
    return headline
