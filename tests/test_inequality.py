"""Inequality measures on hand-made values, and their bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import inequality as ineq


def test_measures_by_hand():
    v = [10.0, 12.0, 20.0]
    w = [2.0, 1.0, 1.0]
    assert ineq.value_range(v) == pytest.approx(10.0)
    # mean 14, population sd sqrt((16 + 4 + 36) / 3)
    assert ineq.coefficient_of_variation(v) == pytest.approx(np.sqrt(56 / 3) / 14)
    # weighted mean (20 + 12 + 20) / 4 = 13; gaps 3, 1, 7 weighted 0.5, 0.25, 0.25
    assert ineq.mean_abs_gap(v, w) == pytest.approx(0.5 * 3 + 0.25 * 1 + 0.25 * 7)
    m = ineq.measures(v, w)
    assert set(m) == set(ineq.MEASURES)


def test_equal_values_have_no_inequality():
    m = ineq.measures([15.0] * 5, [1, 2, 3, 4, 5])
    assert all(float(x) == pytest.approx(0.0) for x in m.values())


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(1, 99), min_size=2, max_size=12), st.floats(0.1, 10))
def test_measures_scale_and_shift(values, c):
    v = np.array(values)
    assert ineq.value_range(v * c) == pytest.approx(c * ineq.value_range(v), rel=1e-9, abs=1e-9)
    assert ineq.mean_abs_gap(v + c) == pytest.approx(ineq.mean_abs_gap(v), abs=1e-9)
    assert ineq.coefficient_of_variation(v * c) == pytest.approx(ineq.coefficient_of_variation(v), rel=1e-9, abs=1e-12)


def test_intervals_cover_and_zero_se_is_exact():
    out = ineq.inequality_with_intervals([10.0, 12.0, 20.0], [0.0, 0.0, 0.0], [2, 1, 1], n_boot=200)
    assert out["range"] == {"value": 10.0, "ci_low": 10.0, "ci_high": 10.0}
    out = ineq.inequality_with_intervals([10.0, 12.0, 20.0], [1.0, 1.0, 1.0], n_boot=2000)
    for m in ineq.MEASURES:
        assert out[m]["ci_low"] < out[m]["value"] < out[m]["ci_high"]


def test_compare_years_verdicts():
    wide = {"estimates": np.array([5.0, 15.0, 25.0]), "se": np.full(3, 0.5)}
    narrow = {"estimates": np.array([13.0, 15.0, 17.0]), "se": np.full(3, 0.5)}
    same = {"estimates": np.array([5.2, 15.0, 24.8]), "se": np.full(3, 3.0)}
    better = ineq.compare_years(wide, narrow, n_boot=1000)
    assert better["range"]["change"] == pytest.approx(-16.0)
    assert all(better[m]["verdict"] == "improved" for m in ineq.MEASURES)
    assert all(v["verdict"] == "worsened" for v in ineq.compare_years(narrow, wide, n_boot=1000).values())
    assert ineq.compare_years(wide, same, n_boot=1000)["range"]["verdict"] == "no_clear_change"


def test_group_table_drops_suppressed_and_weights():
    est = pd.DataFrame({
        "year": 2025, "indicator": "literate", "domain": "education",
        "level": ["初中", "高中", "本科及以上", "小学及以下"], "n": [300, 200, 40, 10],
        "estimate": [8.0, 15.0, 30.0, 2.0], "se": [1.0, 1.5, 5.0, 2.0],
        "suppressed": [False, False, False, True],
    })
    g = ineq.group_table(est, "education", 2025, weights={"初中": 5e5, "高中": 3e5, "本科及以上": 1e5})
    assert list(g["level"]) == ["初中", "高中", "本科及以上"]
    assert g["weight_source"].iloc[0] == "census" and g["weight"].iloc[0] == 5e5
    g = ineq.group_table(est, "education", 2025)
    assert list(g["weight"]) == [300.0, 200.0, 40.0] and g["weight_source"].iloc[0] == "sample_n"


def test_holm_adjusts_p_values_and_verdicts():
    from statsmodels.stats.multitest import multipletests

    from analysis import inequality as ineq

    big = {"estimates": np.array([10.0, 30.0, 20.0]), "se": np.array([0.5, 0.5, 0.5])}
    small = {"estimates": np.array([18.0, 22.0, 20.0]), "se": np.array([0.5, 0.5, 0.5])}
    same = {"estimates": np.array([18.0, 22.5, 20.0]), "se": np.array([2.0, 2.0, 2.0])}
    changes = [*ineq.compare_years(big, small, n_boot=2000, rng=1).values(),
               *ineq.compare_years(small, same, n_boot=2000, rng=2).values()]
    raw = [c["p_value"] for c in changes]
    ineq.holm(changes)
    np.testing.assert_allclose([c["p_holm"] for c in changes], multipletests(raw, method="holm")[1])
    assert [c["verdict"] for c in changes[:3]] == ["improved"] * 3  # a gap of 20 points shrank to 4
    assert all(c["verdict"] == "no_clear_change" for c in changes[3:])
    assert all(c["verdict_unadjusted"] in ("improved", "worsened", "no_clear_change") for c in changes)
    assert min(raw) == pytest.approx(2 / 2001)  # (count + 1) / (B + 1), two-sided
