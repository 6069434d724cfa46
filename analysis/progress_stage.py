"""Stage 05: plan progress. Returns in data/raw/progress/ -> progress tables, figures, JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import catalog
from .config import Plan, processed_dir
from .errors import UserError
from .jsonio import to_jsonable
from .plan_tasks import lead_units, load_tasks, load_units, tasks_path, units_path
from .progress import (
    annual_by_year,
    completion_by_group,
    completion_by_unit,
    indicator_progress,
    indicator_summary,
    measure_evidence,
    measure_progress,
    merge_statuses,
    save_figures,
)
from .progress_returns import indicator_specs, read_returns, write_templates
from .provenance import write_manifest

STAGE = "05_plan_progress"
SURVEY_COLUMNS = ("year", "indicator", "domain", "level", "estimate")  # of estimates.parquet


class ProgressStageError(UserError, ValueError):
    """Stage 05 inputs are missing or unusable (the CLI shows the message, no traceback)."""


def returns_dir(plan: Plan) -> Path:
    """Folder of the filled returns: <raw_dir>/<tasks.returns_dir> (default progress)."""
    return plan.raw_dir / plan.settings.tasks.returns_dir


# Spreadsheets a unit may send instead of .xlsx; the stage cannot read them and must not skip them.
OTHER_SPREADSHEETS = (".xls", ".xlsm", ".et", ".ods", ".csv", ".wps", ".numbers")


def _is_return(p: Path) -> bool:
    return not p.name.startswith(("~$", ".")) and not p.stem.endswith("-template") and p.is_file()


def find_returns(plan: Plan) -> list[Path]:
    """Filled returns: every .xlsx (any case) in the returns folder except templates and lock files."""
    folder = returns_dir(plan)
    return sorted(p for p in folder.glob("*") if p.suffix.lower() == ".xlsx" and _is_return(p))


def unreadable_returns(plan: Plan) -> list[Path]:
    """Files in the returns folder that look like a return in another spreadsheet format."""
    folder = returns_dir(plan)
    return sorted(p for p in folder.glob("*") if p.suffix.lower() in OTHER_SPREADSHEETS and _is_return(p))


def require_returns(plan: Plan) -> list[Path]:
    """find_returns, or a clear error when there is none or a return is in a format it cannot read
    (never falls back to synthetic returns, never skips a unit's return)."""
    paths, folder = find_returns(plan), returns_dir(plan)
    if other := unreadable_returns(plan):
        names = ", ".join(p.name for p in other)
        raise ProgressStageError(
            f"progress returns folder {folder}: {len(other)} file(s) not in .xlsx format: {names}; "
            "expected every return saved as an Excel workbook (.xlsx): open it in Excel or WPS and "
            "save it again as .xlsx, or move it out of the folder")
    if not paths:
        raise ProgressStageError(
            f"no filled progress returns (*.xlsx, not *-template.xlsx) in {folder}"
            f"{'' if folder.is_dir() else ' (the folder does not exist)'}: put the lead units' returns "
            f"there (folder set by tasks.returns_dir in {plan.path}); for the synthetic demo run "
            f"`python -m analysis demo`, which builds demo returns marked as synthetic")
    return paths


def survey_literacy(plan: Plan, year: int, processed_root: Path | None = None
                    ) -> tuple[pd.DataFrame | None, list[Path]]:
    """City share literate per survey year <= year from stage 02's estimates, when present."""
    if not catalog.estimate_files(plan, processed_root, up_to=year):
        return None, []
    est, inputs = catalog.load_estimates_with_paths(plan, processed_root, up_to=year, indicator="literate",
                                                    need=SURVEY_COLUMNS)
    city = est[est["domain"] == "city"].drop_duplicates("year").sort_values("year")
    if city.empty:
        return None, []
    rows = pd.DataFrame({"year": city["year"].astype(int).to_numpy(),
                         "value": city["estimate"].astype(float).to_numpy()})
    used = set(rows["year"])
    return rows, [p for p in inputs if int(p.parent.name) in used]


@dataclass
class ProgressInputs:
    tasks: pd.DataFrame
    returns: Any  # progress_returns.Returns: measures, indicators, files, problems
    paths: list[Path]
    survey: pd.DataFrame | None
    survey_files: list[Path]


@dataclass
class ProgressResult:
    """Stage 05 for the report year: the tables, the indicator specs and the headline numbers."""

    year: int
    tables: dict[str, pd.DataFrame]
    specs: list[dict[str, Any]]
    headline: dict[str, Any]
    inputs: list[Path]
    outputs: list[Path] = field(default_factory=list)


def load_inputs(plan: Plan, year: int, processed_root: Path | None = None) -> ProgressInputs:
    """Task and unit lists, the filled returns, and the city's survey share when stage 02 ran."""
    units = load_units(plan)
    tasks = load_tasks(plan, units)
    paths = require_returns(plan)
    ret = read_returns(paths, plan, tasks, units)
    survey, survey_files = survey_literacy(plan, year, processed_root)
    return ProgressInputs(tasks, ret, paths, survey, survey_files)


def _tables(plan: Plan, year: int, inp: ProgressInputs) -> tuple[dict[str, pd.DataFrame], list[dict]]:
    ret, tasks, period = inp.returns, inp.tasks, plan.period
    reports = ret.measures[ret.measures["year"] <= year]
    values = ret.indicators[ret.indicators["year"] <= year]
    statuses = merge_statuses(reports, year)
    prog = measure_progress(tasks, statuses, year, period)
    prog = prog.merge(measure_evidence(reports, year), on="measure_id", how="left")
    prog["evidence"] = prog["evidence"].fillna("")
    prog["evidence_year"] = pd.array(prog["evidence_year"], dtype="Int64")
    returned = set(ret.files["unit"].dropna()) if len(ret.files) else set()
    specs = indicator_specs(plan, tasks)
    tables = {
        "progress_measures.parquet": prog,
        "progress_by_group.parquet": completion_by_group(prog),
        "progress_by_unit.parquet": completion_by_unit(tasks, reports, year, period, lead_units(tasks),
                                                       returned),
        "progress_by_year.parquet": annual_by_year(tasks, statuses, year, period),
        "progress_indicators.parquet": indicator_progress(specs, values, year, period, plan.divisions,
                                                          inp.survey),
        "progress_problems.parquet": ret.problems,
    }
    return tables, specs


def _headline(plan: Plan, year: int, inp: ProgressInputs, tables: dict[str, pd.DataFrame],
              summary: list[dict]) -> dict[str, Any]:
    """progress.json: codes and numbers only."""
    ret, prog = inp.returns, tables["progress_measures.parquet"]
    by_year = tables["progress_by_year.parquet"]
    leads = lead_units(inp.tasks)
    returned = set(ret.files["unit"].dropna()) if len(ret.files) else set()
    errors = ret.problems[ret.problems["severity"] == "error"]
    counts = {s: sum(i["status"] == s for i in summary)
              for s in ("met", "missed", "not_due", "no_data", "incomplete")}
    return {
        "city": plan.city, "report_year": year, "period": list(plan.period),
        "synthetic": bool(len(ret.files) and ret.files["synthetic"].any()),
        "measures_total": len(prog),
        "measures_due": int(prog["due"].sum()),
        "measures_completed": int((prog["completed"] & prog["due"]).sum()),  # over measures already due
        "measures_completed_early": int((prog["completed"] & ~prog["due"]).sum()),
        # completion counts only measures already due (a monitoring year has measures not yet due)
        "completed_share": 100 * prog.loc[prog["due"], "completed"].mean() if prog["due"].any() else None,
        "mean_completion": 100 * prog.loc[prog["due"], "completion"].mean() if prog["due"].any() else None,
        "overdue_count": int(prog["overdue"].sum()),
        "overdue_measures": list(prog.loc[prog["overdue"], "measure_id"]),
        "by_kind": {k: {"n_measures": len(d), "n_completed": int(d["completed"].sum()),
                        "completed_share": 100 * d["completed"].mean(),
                        "n_overdue": int(d["overdue"].sum())}
                    for k, d in prog.groupby("kind", sort=False)},
        "annual_done_share_by_year": dict(zip(by_year["year"], by_year["done_share"], strict=True)),
        "returns": {"files": [str(p.name) for p in inp.paths], "units_expected": leads,
                    "units_returned": [u for u in leads if u in returned],
                    "units_missing": [u for u in leads if u not in returned]},
        "problems": {"errors": len(errors),
                     "warnings": int((ret.problems["severity"] == "warning").sum()),
                     "files_with_errors": sorted(set(errors["file"]))},
        "indicators": summary,
        "indicators_met": counts["met"],
        "indicators_missed": counts["missed"],
        "indicators_not_due": counts["not_due"],
        "indicators_no_data": counts["no_data"] + counts["incomplete"],
    }


def compute(plan: Plan, year: int, inp: ProgressInputs) -> ProgressResult:
    """Measure and indicator progress as of the end of `year` (returns of later years ignored)."""
    tables, specs = _tables(plan, year, inp)
    summary = indicator_summary(specs, tables["progress_indicators.parquet"], year)
    inputs = [plan.path, tasks_path(plan), units_path(plan), *inp.paths, *inp.survey_files]
    return ProgressResult(year, tables, specs, _headline(plan, year, inp, tables, summary), inputs)


def save_outputs(plan: Plan, res: ProgressResult, processed_root: Path | None = None,
                 templates: bool = True) -> ProgressResult:
    """Tables, figures, next year's templates, progress.json and the manifest."""
    out = processed_dir(plan.city, res.year, processed_root)
    written = catalog.write_outputs(plan, STAGE, res.year, processed_root, res.tables)
    t = res.tables
    outputs = [*written.values(),
               *save_figures(out / "figures", res.year, t["progress_by_group.parquet"],
                             t["progress_by_unit.parquet"], t["progress_by_year.parquet"],
                             t["progress_indicators.parquet"], res.specs)]
    if templates:
        outputs += write_templates(plan, out / "templates")
    res.headline["outputs"] = [str(p.relative_to(out)) for p in outputs]
    res.headline = to_jsonable(res.headline, 4)
    outputs += catalog.write_outputs(plan, STAGE, res.year, processed_root,
                                     {"progress.json": res.headline}).values()
    res.outputs = outputs
    write_manifest(out, STAGE, inputs=res.inputs, outputs=outputs,
                   params={"city": plan.city, "year": res.year, "raw_dir": plan.raw_dir,
                           "processed_root": processed_root, "templates": templates})
    return res


def run_progress(plan: Plan, year: int, processed_root: Path | None = None,
                 templates: bool = True) -> ProgressResult:
    """Evaluate the returns for years <= `year`; write tables, figures, JSON and manifest."""
    # Load inputs
    inputs = load_inputs(plan, year, processed_root)
    # Process data
    result = compute(plan, year, inputs)
    # Save outputs
    return save_outputs(plan, result, processed_root, templates)
