"""ReportData.stale_reasons: a report is rendered only from results of one consistent run."""

from __future__ import annotations

import json

import pandas as pd

from analysis.config import load_plan
from analysis.provenance import sha256
from analysis.report_data import ReportData


def _year(base, year, stages, plan, created, plan_digest=None):
    d = base / plan.city / str(year)
    d.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"year": [year], "indicator": ["literate"], "domain": ["city"], "level": ["all"], "n": [900],
                  "estimate": [10.0], "se": [0.5], "suppressed": [False]}).to_parquet(d / "estimates.parquet")
    for stage in stages:
        (d / f"manifest-{stage}.json").write_text(json.dumps({
            "stage": stage, "created": created[stage],
            "inputs": {f"data/raw/plan/{plan.path.name}": plan_digest or sha256(plan.path)},
            "outputs": {}, "parameters": {}, "code_version": "x", "packages": {}}), encoding="utf-8")


def test_consistent_run_has_no_reasons_and_stale_ones_are_named(tmp_path):
    plan = load_plan("zhanjiang")
    t = {"01_clean": "2026-01-01T10:00:00", "02_weight_estimate": "2026-01-01T10:01:00",
         "03_trajectory": "2026-01-01T10:05:00", "04_county_gaps": "2026-01-01T10:05:00",
         "05_plan_progress": "2026-01-01T10:05:00"}
    _year(tmp_path, 2020, ["01_clean", "02_weight_estimate"], plan, t)
    _year(tmp_path, 2021, list(t), plan, t)
    assert ReportData(plan, 2021, processed_root=tmp_path).stale_reasons() == []

    rerun = t | {"01_clean": "2026-01-02T09:00:00", "02_weight_estimate": "2026-01-02T09:01:00"}
    _year(tmp_path, 2020, ["01_clean", "02_weight_estimate"], plan, rerun)  # survey years rerun later
    reasons = ReportData(plan, 2021, processed_root=tmp_path).stale_reasons()
    assert "03_trajectory (2021) ran before the latest survey-year stage it reads" in reasons
    assert len(reasons) == 3

    _year(tmp_path, 2021, list(t), plan, t | {"01_clean": "2026-01-03T00:00:00"}, plan_digest="0" * 64)
    reasons = ReportData(plan, 2021, processed_root=tmp_path).stale_reasons()
    assert "02_weight_estimate (2021) ran before 01_clean (2021)" in reasons
    assert f"04_county_gaps (2021) ran with another version of {plan.path.name}" in reasons


def test_missing_report_year_stage_is_named(tmp_path):
    plan = load_plan("zhanjiang")
    t = {s: "2026-01-01T10:00:00" for s in ("01_clean", "02_weight_estimate", "03_trajectory", "04_county_gaps")}
    _year(tmp_path, 2021, list(t), plan, t)
    assert ReportData(plan, 2021, processed_root=tmp_path).stale_reasons() == ["no results of 05_plan_progress for 2021"]
