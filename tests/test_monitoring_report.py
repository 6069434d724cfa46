"""A monitoring year end to end: `run --year 2023` on the small demo uses no data published after 2023.

The session's demo (tests/conftest.py) is copied, so its 2025 outputs stay as the other tests read them; the
run does what `python -m analysis run --year 2023 --engine offline` does (the stages up to 2023, then the
report), with the report written into the test's folder instead of reports/output.
"""

from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import pytest
from pypdf import PdfReader

from analysis.executors import LocalExecutor
from analysis.pipeline import run_pipeline
from analysis.render import render
from analysis.report_format import pct

YEAR = 2023
ZWSP = "\u200b"
TABLE = re.compile(r"((?:^\|.*\|\n)+)\n: .*? \{#(tbl-[\w-]+)\}", re.M)
YEAR_COLUMNS = ("年份", "最新年份", "完成年份", "调查年份")


@pytest.fixture(scope="module")
def monitoring(demo_pipeline, tmp_path_factory):
    d = demo_pipeline
    tmp = tmp_path_factory.mktemp("monitoring")
    processed = tmp / "processed"
    shutil.copytree(d.processed, processed)
    ran = run_pipeline(d.plan, YEAR, executor=LocalExecutor(2), processed_root=processed,
                       executed_root=tmp / "executed", echo=lambda _: None)
    files = render(d.plan, YEAR, processed_root=processed, out_dir=tmp / "out", engine="offline",
                   work_dir=tmp / "work")
    stem = files["pdf"].stem
    md = (tmp / "work" / "offline" / stem / f"{stem}.md").read_text(encoding="utf-8")
    return d.plan, processed / d.plan.city / str(YEAR), files, md, ran


def tables(md: str) -> dict[str, pd.DataFrame]:
    out = {}
    for block, label in TABLE.findall(md):
        rows = [[c.strip().replace(ZWSP, "") for c in line.strip()[1:-1].split(" | ")]
                for line in block.strip().splitlines()]
        out[label] = pd.DataFrame(rows[2:], columns=rows[0])
    return out


@pytest.mark.slow
def test_only_stages_of_years_up_to_the_monitoring_year_ran(monitoring):
    *_, ran = monitoring
    assert ran and all(int(t.year) <= YEAR for t in ran)


@pytest.mark.slow
def test_no_survey_year_after_the_monitoring_year_in_any_table(monitoring):
    _, _, _, md, _ = monitoring
    found = tables(md)
    assert "tbl-survey-years" in found and "tbl-indicators" in found
    for label, t in found.items():
        years = [int(c) for c in t.columns if re.fullmatch(r"\d{4}", c)]
        assert all(y <= YEAR for y in years), f"{label}: year columns {years}"
        for col in [c for c in t.columns if c in YEAR_COLUMNS]:
            values = [int(v) for v in t[col] if re.fullmatch(r"\d{4}", v)]
            assert all(v <= YEAR for v in values), f"{label}: {col} holds {values}"
    survey_years = [int(v) for v in found["tbl-survey-years"].iloc[:, 0] if v.isdigit()]
    assert max(survey_years) == YEAR


@pytest.mark.slow
def test_cover_is_dated_by_the_monitoring_years_data(monitoring):
    _, folder, files, _, _ = monitoring
    last = pd.read_parquet(folder / "survey_clean.parquet", columns=["interview_date"])["interview_date"].max()
    assert last.year == YEAR
    cover = re.sub(r"\s+", "", PdfReader(str(files["pdf"])).pages[0].extract_text())
    assert f"{last.year}年{last.month}月" in cover and f"（{YEAR}年）" in cover
    assert "2025年" not in re.sub(r"（?\d{4}—2025年）?", "", cover)  # the plan period is the only 2025


@pytest.mark.slow
def test_indicators_are_checked_against_their_path(monitoring):
    _, _, _, md, _ = monitoring
    t = tables(md)["tbl-indicators"]
    verdicts = t["是否达标"].tolist()
    on_path = [v for v in verdicts if re.fullmatch(rf"{YEAR}年(达到|低于)进度（应达 [\d.]+）", v)]
    assert on_path, verdicts
    assert not any("未到考核年" in v for v in verdicts)


@pytest.mark.slow
def test_completion_counts_measures_due_by_the_monitoring_year(monitoring):
    _, folder, files, _, _ = monitoring
    progress = json.loads((folder / "progress.json").read_text(encoding="utf-8"))
    measures = pd.read_parquet(folder / "progress_measures.parquet")
    assert progress["report_year"] == YEAR
    assert progress["measures_due"] == int(measures["due"].sum()) < progress["measures_total"]
    assert progress["completed_share"] == pytest.approx(100 * progress["measures_completed"] / progress["measures_due"])
    text = re.sub(r"\s+", "", "\n".join(p.extract_text() or "" for p in PdfReader(str(files["pdf"])).pages))
    assert (f"截至{YEAR}年底已到期{progress['measures_due']}项，其中已完成{progress['measures_completed']}项"
            f"（占到期措施的{pct(progress['completed_share'])}）") in text
