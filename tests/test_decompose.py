"""Decomposition of the change: parts add up exactly; pure composition and pure
within-cell changes are attributed to the right part."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import decompose as dc

EDU = ["小学及以下", "初中", "高中", "大专", "本科及以上"]
AGE = ["18-29", "30-39", "40-49", "50-59", "60-69"]


def sample(seed, n=4000, edu_p=(0.3, 0.35, 0.2, 0.1, 0.05), urban=0.45, lift=0.0):
    """Respondents with literacy odds by education, age and residence, shifted by `lift`."""
    rng = np.random.default_rng(seed)
    edu = rng.choice(5, n, p=edu_p)
    age = rng.choice(5, n)
    urb = rng.random(n) < urban
    eta = -3.0 + 0.6 * edu - 0.2 * age + 0.4 * urb + lift
    return pd.DataFrame({
        "education": np.array(EDU)[edu], "age_group": np.array(AGE)[age],
        "urban_rural": np.where(urb, "城镇", "乡村"),
        "literate": rng.random(n) < 1 / (1 + np.exp(-eta)),
        "weight": rng.lognormal(0, 0.4, n),
    })


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), lift=st.floats(-0.5, 1.0),
       shift=st.floats(0.0, 0.15), n=st.integers(200, 1500))
def test_shift_share_adds_up_exactly(seed, lift, shift, n):
    a = sample(seed, n)
    b = sample(seed + 1, n, edu_p=(0.3 - shift, 0.35, 0.2, 0.1, 0.05 + shift), lift=lift)
    cells = dc.shift_share(a, b)
    total = dc.weighted_share(b) - dc.weighted_share(a)
    assert cells["composition_pp"].sum() + cells["within_pp"].sum() == pytest.approx(
        total, abs=1e-10)
    assert cells["share_a"].sum() == pytest.approx(1) and cells["share_b"].sum() == pytest.approx(1)


def _cells(rates: dict, shares: dict, scale=1000.0) -> pd.DataFrame:
    """Exact weighted data: per cell one literate and one non-literate row."""
    rows = []
    for (e, g, u), r in rates.items():
        w = shares[(e, g, u)] * scale
        rows += [{"education": e, "age_group": g, "urban_rural": u, "literate": True,
                  "weight": w * r},
                 {"education": e, "age_group": g, "urban_rural": u, "literate": False,
                  "weight": w * (1 - r)}]
    return pd.DataFrame([r for r in rows if r["weight"] > 0])


KEYS = [(e, g, u) for e in EDU[:3] for g in AGE[:2] for u in ("城镇", "乡村")]


def test_pure_composition_change_has_no_within_part():
    rng = np.random.default_rng(1)
    rates = dict(zip(KEYS, rng.uniform(0.02, 0.4, len(KEYS)), strict=True))
    sa = dict(zip(KEYS, rng.dirichlet(np.ones(len(KEYS))), strict=True))
    sb = dict(zip(KEYS, rng.dirichlet(np.ones(len(KEYS))), strict=True))
    table, summary = dc.decompose_change(_cells(rates, sa), _cells(rates, sb), 2020, 2025)
    assert summary["within_pp"] == pytest.approx(0, abs=1e-12)
    assert summary["composition_pp"] == pytest.approx(summary["total_change_pp"], abs=1e-12)
    assert summary["total_change_pp"] != pytest.approx(0, abs=1e-3)


def test_pure_within_change_has_no_composition_part():
    rng = np.random.default_rng(2)
    ra = dict(zip(KEYS, rng.uniform(0.02, 0.3, len(KEYS)), strict=True))
    rb = {k: v + 0.05 for k, v in ra.items()}
    s = dict(zip(KEYS, rng.dirichlet(np.ones(len(KEYS))), strict=True))
    _, summary = dc.decompose_change(_cells(ra, s), _cells(rb, s), 2020, 2025)
    assert summary["composition_pp"] == pytest.approx(0, abs=1e-12)
    assert summary["within_pp"] == pytest.approx(5.0, abs=1e-10)  # +5 points in every cell
    assert summary["oaxaca"]["composition_pp"] == pytest.approx(0, abs=1e-8)


def test_oaxaca_adds_up_and_attributes_education():
    a = sample(3, 6000)
    b = sample(4, 6000, edu_p=(0.15, 0.3, 0.25, 0.15, 0.15))  # only education changes
    ob = dc.oaxaca_logit(a, b)
    observed = dc.weighted_share(b) - dc.weighted_share(a)
    assert ob["total_pp"] == pytest.approx(observed, abs=1e-7)  # logit fits reproduce shares
    assert ob["composition_pp"] + ob["within_pp"] == pytest.approx(ob["total_pp"], abs=1e-12)
    by = ob["composition_by_factor_pp"]
    assert sum(by.values()) == pytest.approx(ob["composition_pp"], abs=1e-12)
    assert by["education"] > 0.8 * ob["composition_pp"] > 0
    assert abs(by["age_group"]) < 0.3 and abs(by["urban_rural"]) < 0.3


def test_cell_empty_in_one_year_keeps_the_identity():
    a = sample(5, 1500)
    b = sample(6, 1500)
    b = b[~((b["education"] == "本科及以上") & (b["urban_rural"] == "乡村"))]
    cells = dc.shift_share(a, b)
    gone = cells[(cells["education"] == "本科及以上") & (cells["urban_rural"] == "乡村")]
    assert (gone["share_b"] == 0).all() and (gone["within_pp"] == 0).all()
    assert cells["total_pp"].sum() == pytest.approx(dc.weighted_share(b) - dc.weighted_share(a),
                                                    abs=1e-10)


def test_bad_input_is_named():
    a = sample(7, 100)
    with pytest.raises(dc.DecompositionError, match=r"start year: missing columns \['weight'\]"):
        dc.shift_share(a.drop(columns="weight"), a)
    bad = a.copy()
    bad.loc[3, "weight"] = 0.0
    with pytest.raises(dc.DecompositionError, match="end year: 1 rows .* index 3"):
        dc.shift_share(a, bad)


def test_same_margins_in_both_years_leave_only_the_joint_distribution():
    """Calibrating both years to the same census margins fixes each factor's margin;
    composition can then act only through the joint distribution, and the Yun split
    (0/0) is replaced by a `joint` part."""
    keys = [(e, "30-39", u) for e in EDU[:2] for u in ("城镇", "乡村")]
    rates = dict(zip(keys, [0.30, 0.05, 0.10, 0.12], strict=True))  # interaction
    sa = dict(zip(keys, [0.3, 0.2, 0.2, 0.3], strict=True))
    sb = dict(zip(keys, [0.4, 0.1, 0.1, 0.4], strict=True))  # same margins, other joint
    _, summary = dc.decompose_change(_cells(rates, sa), _cells(rates, sb), 2020, 2025)
    assert summary["factors_fixed_by_weighting"] == ["education", "age_group", "urban_rural"]
    assert summary["within_pp"] == pytest.approx(0, abs=1e-12)
    assert summary["composition_pp"] == pytest.approx(100 * (0.1 * 0.30 - 0.1 * 0.05
                                                             - 0.1 * 0.10 + 0.1 * 0.12))
    by = summary["oaxaca"]["composition_by_factor_pp"]
    assert by["education"] == by["urban_rural"] == by["age_group"] == 0.0
    assert by["joint"] == pytest.approx(summary["oaxaca"]["composition_pp"], abs=1e-12)
