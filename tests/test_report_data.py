"""ReportData.stale_reasons: a report is rendered only from results of one consistent run, judged by content."""

from __future__ import annotations

import json

import pandas as pd

from analysis.config import load_plan
from analysis.provenance import sha256
from analysis.report_data import ReportData

STAGES = ("01_clean", "02_weight_estimate", "03_trajectory", "04_county_gaps", "05_plan_progress")
READS = {"02_weight_estimate": ["survey_clean"], "03_trajectory": ["estimates"],
         "04_county_gaps": ["estimates", "survey_clean"], "05_plan_progress": []}
WRITES = {"01_clean": ["survey_clean"], "02_weight_estimate": ["estimates"]}


def _manifest(d, stage, year, created, inputs, outputs):
    (d / f"manifest-{stage}.json").write_text(json.dumps({
        "stage": stage, "created": created, "inputs": inputs, "outputs": outputs,
        "parameters": {}, "code_version": "x", "packages": {}}), encoding="utf-8")


def _year(base, year, stages, plan, contents, created="2026-01-01T10:00:00", plan_digest=None, read=None):
    """Manifests of `stages` for `year`: stage outputs digest `contents[file]`; readers read `read` (default: the same)."""
    d = base / plan.city / str(year)
    d.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"year": [year], "indicator": ["literate"], "domain": ["city"], "level": ["all"], "n": [900],
                  "estimate": [10.0], "se": [0.5], "suppressed": [False]}).to_parquet(d / "estimates.parquet")
    name = lambda f: f"data/processed/{plan.city}/{year}/{f}.parquet"  # noqa: E731
    seen = read or contents
    for stage in stages:
        inputs = {f"data/raw/plan/{plan.path.name}": plan_digest or sha256(plan.path)}
        inputs |= {name(f): seen[f] for f in READS.get(stage, [])}
        _manifest(d, stage, year, created, inputs, {name(f): contents[f] for f in WRITES.get(stage, [])})


def test_consistent_run_has_no_reasons_and_a_stage_that_read_old_outputs_is_named(tmp_path):
    plan = load_plan("zhanjiang")
    v1 = {"survey_clean": "a" * 64, "estimates": "b" * 64}
    _year(tmp_path, 2021, STAGES, plan, v1)
    assert ReportData(plan, 2021, processed_root=tmp_path).stale_reasons() == []

    # 01 and 02 rerun later with the same outputs (the runner then skips 03-05): still consistent
    _year(tmp_path, 2021, STAGES[:2], plan, v1, created="2026-02-01T09:00:00")
    assert ReportData(plan, 2021, processed_root=tmp_path).stale_reasons() == []

    # 02 rerun with new estimates, 03-05 not: each reader of the old estimates is named
    v2 = v1 | {"estimates": "c" * 64}
    _year(tmp_path, 2021, STAGES[:2], plan, v2)
    assert ReportData(plan, 2021, processed_root=tmp_path).stale_reasons() == [
        "03_trajectory (2021) read another version of estimates.parquet than 02_weight_estimate (2021) wrote last",
        "04_county_gaps (2021) read another version of estimates.parquet than 02_weight_estimate (2021) wrote last"]

    _year(tmp_path, 2021, STAGES, plan, v2, plan_digest="0" * 64)
    assert ReportData(plan, 2021, processed_root=tmp_path).stale_reasons() == [
        f"{s} (2021) ran with another version of {plan.path.name}" for s in STAGES]


def test_missing_report_year_stage_is_named(tmp_path):
    plan = load_plan("zhanjiang")
    _year(tmp_path, 2021, STAGES[:4], plan, {"survey_clean": "a" * 64, "estimates": "b" * 64})
    assert ReportData(plan, 2021, processed_root=tmp_path).stale_reasons() == ["no results of 05_plan_progress for 2021"]
