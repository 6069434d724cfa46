"""Session fixtures: the demo pipeline on small synthetic data runs once, for every test module that needs it."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest

from analysis import synth, synth_progress
from analysis.config import RAW, load_plan
from analysis.executors import LocalExecutor
from analysis.pipeline import run_pipeline
from analysis.render import render

COMMITTED_INPUTS = ("plan", "benchmarks", "census/zhanjiang-population-published.csv")


@pytest.fixture(scope="session")
def demo_pipeline(tmp_path_factory):
    """Demo inputs -> the five notebooks, in a temporary folder (never the repository's data/)."""
    tmp = tmp_path_factory.mktemp("e2e")
    raw = tmp / "raw"
    for item in COMMITTED_INPUTS:
        src = RAW / item
        if src.is_dir():
            shutil.copytree(src, raw / item)
        else:
            (raw / item).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, raw / item)
    plan = load_plan("zhanjiang", raw)
    synth.build_demo(plan, n_per_year=900)
    synth_progress.build_demo_returns(plan)
    processed = tmp / "processed"
    lines: list[str] = []
    ran = run_pipeline(plan, 2025, executor=LocalExecutor(2), processed_root=processed,
                       executed_root=tmp / "executed", echo=lines.append)
    return SimpleNamespace(plan=plan, processed=processed, ran=ran, lines=lines, tmp=tmp)


@pytest.fixture(scope="session")
def offline_report(demo_pipeline):
    """The demo report rendered offline: the files by format and the work folder."""
    d = demo_pipeline
    files = render(d.plan, 2025, processed_root=d.processed, out_dir=d.tmp / "out", engine="offline",
                   work_dir=d.tmp / "work")
    return SimpleNamespace(files=files, work=d.tmp / "work")
