"""The coverage machinery of benchmarks/bench_coverage.py on a handful of replicates (loose checks)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import benchmarks as bm
from analysis import coverage as cv
from analysis import trajectory as tr
from analysis.config import load_plan


@pytest.fixture(scope="module")
def runs():
    plan = load_plan("zhanjiang")
    national = bm.series(bm.load_benchmarks(bm.default_path(plan.raw_dir)), "national")
    world = cv.make_world(plan, 20210601, national)
    backtest = tr.backtest(national, 2020, [int(y) for y in national.index if y > 2020])
    years = [2021, 2022, 2023, 2024, 2025]
    reps = [cv.replicate(world, years, 1000, seed, 20, backtest) for seed in (1, 2, 3)]
    return world, {k: pd.concat([r[k] for r in reps], ignore_index=True) for k in ("direct", "fh", "trend")}


def test_replicates_are_scored_against_the_truth(runs):
    world, parts = runs
    d = parts["direct"]
    city = d[d["domain"] == "city"]
    assert len(city) == 15 and set(city["year"]) == {2021, 2022, 2023, 2024, 2025}
    truth = world.truth.set_index(["year", "domain", "level"])["true_share"]
    assert (city["true_share"].to_numpy() == [truth[(y, "city", "all")] for y in city["year"]]).all()
    # independent samples: estimates differ between replicates and scatter around the truth
    assert city.groupby("year")["estimate"].nunique().min() == 3
    z = (city["estimate"] - city["true_share"]) / city["se"]
    assert np.abs(z).max() < 4.5 and np.sqrt(np.mean(z**2)) < 2.0
    assert len(parts["fh"]) == 3 * 5 * 9 and parts["fh"]["benchmarked_mse"].gt(0).all()
    assert set(parts["trend"]["ahead"]) == {1, 2}


def test_summary_is_coverage_and_relative_mse(runs):
    _, parts = runs
    s = cv.summarise(parts["direct"], parts["fh"], parts["trend"])
    # loose: with 15 surveys a 95% interval that covers under 70% of cells is broken
    for key in ("city", "division_direct", "division_fh", "groups"):
        assert 0.7 <= s[key]["coverage"] <= 1.0, (key, s[key])
    fh = parts["fh"]
    assert s["relative_mse_fh_to_direct"] == pytest.approx(
        ((fh["benchmarked"] - fh["true_share"]) ** 2).mean() / ((fh["direct"] - fh["true_share"]) ** 2).mean())
    assert s["relative_mse_fh_to_direct"] < 1.2
    assert s["division_fh"]["cells"] == len(fh)
