"""Raking and post-stratification against R's survey package, and their failure modes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.weighting import (
    Margin,
    WeightingError,
    calibrate,
    effective_n,
    kish_deff,
    margins_from_census,
    poststratify,
    rake,
    read_census_margins,
)

FIX = Path(__file__).parent / "fixtures" / "survey_r"
R = json.loads((FIX / "survey_r.json").read_text(encoding="utf-8"))
DEMO_MARGINS = ["division_urban", "sex_age", "education"]


def api_margins() -> list[Margin]:
    case = next(c for c in R["cases"] if c["name"] == "apiclus1_raked")
    return [Margin(m["columns"][0], tuple(m["columns"]),
                   pd.Series(m["totals"], index=pd.Index([(v,) for v in m["levels"]],
                                                         tupleize_cols=False), dtype=float))
            for m in case["calibration"]["margins"]]


def demo() -> pd.DataFrame:
    return pd.read_csv(FIX / "demo_survey.csv", dtype={"division_code": "string", "age_group": "string"})


def test_rake_matches_r_api():
    df = pd.read_csv(FIX / "apiclus1.csv")
    res = rake(df, "pw", api_margins(), max_iter=1000, tol=1e-14)
    np.testing.assert_allclose(res.weights, R["raked_weights"]["apiclus1"], rtol=1e-8)


def test_rake_matches_r_demo():
    df = demo()
    margins = read_census_margins(FIX / "demo_margins.csv", DEMO_MARGINS)
    res = rake(df, "design_weight", margins, max_iter=1000, tol=1e-14)
    np.testing.assert_allclose(res.weights, R["raked_weights"]["demo"], rtol=1e-8)


def test_poststratify_matches_r():
    df = pd.read_csv(FIX / "apiclus1.csv")
    res = poststratify(df, "pw", api_margins()[0])
    np.testing.assert_allclose(res.weights, R["raked_weights"]["apiclus1_poststrat"], rtol=1e-12)


def test_rake_reproduces_margins_and_diagnostics():
    df = demo()
    margins = read_census_margins(FIX / "demo_margins.csv", DEMO_MARGINS)
    settings_ = {"method": "rake", "margins": DEMO_MARGINS, "bounds": (0.2, 5.0), "trim": None,
                 "max_iter": 100, "tol": 1e-8, "poststrata": "division_urban"}
    res, diag = calibrate(df, margins, settings_)
    assert diag["converged"] and diag["max_margin_gap"] < 1e-8
    table = pd.DataFrame(diag["margins_before_after"])
    np.testing.assert_allclose(table["after"], table["census"], rtol=1e-8)
    assert not np.allclose(table["before"], table["census"], rtol=1e-3)
    f = res.weights / df["design_weight"].to_numpy()
    assert f.min() >= 0.2 - 1e-12 and f.max() <= 5.0 + 1e-12
    w = res.weights
    assert diag["kish_deff"] == pytest.approx(len(w) * (w**2).sum() / w.sum() ** 2)
    assert diag["effective_n"] == pytest.approx(len(w) / diag["kish_deff"])


def test_poststratify_by_plan_leaves_other_margins_off():
    df = demo()
    margins = read_census_margins(FIX / "demo_margins.csv", DEMO_MARGINS)
    settings_ = {"method": "poststratify", "margins": DEMO_MARGINS, "bounds": None, "trim": None,
                 "max_iter": 100, "tol": 1e-8, "poststrata": "division_urban"}
    _, diag = calibrate(df, margins, settings_)
    table = pd.DataFrame(diag["margins_before_after"])
    du = table[table["margin"] == "division_urban"]
    np.testing.assert_allclose(du["after"], du["census"], rtol=1e-12)
    assert diag["method"] == "poststratify"


def test_tight_bounds_fail_with_a_clear_error():
    df = demo()
    margins = read_census_margins(FIX / "demo_margins.csv", DEMO_MARGINS)
    with pytest.raises(WeightingError, match=r"did not converge in 50 iterations: margin \w+ cell"):
        rake(df, "design_weight", margins, bounds=(0.95, 1.05), max_iter=50)


def test_trim_caps_weights():
    df = demo()
    margins = read_census_margins(FIX / "demo_margins.csv", DEMO_MARGINS)
    free = rake(df, "design_weight", margins, max_iter=200).weights
    cap = 0.8 * free.max() / free.mean()
    with pytest.raises(WeightingError):  # a cap that binds everywhere cannot meet margins
        rake(df, "design_weight", margins, trim=1.0, max_iter=30)
    res = rake(df, "design_weight", margins, trim=cap, max_iter=500)
    assert res.weights.max() <= cap * res.weights.mean() * (1 + 1e-9)


def test_margin_input_errors():
    df = demo()
    census = pd.read_csv(FIX / "demo_margins.csv", dtype={"division_code": "string",
                                                         "population": float})
    bad = census.copy()
    bad.loc[bad["margin"] == "education", "population"] *= 1.1
    with pytest.raises(WeightingError, match="raking needs equal totals"):
        margins_from_census(bad, DEMO_MARGINS)
    dup = pd.concat([census, census.iloc[[0]]])
    with pytest.raises(WeightingError, match="lists cell .* twice"):
        margins_from_census(dup, DEMO_MARGINS)
    margins = margins_from_census(census, DEMO_MARGINS)
    df.loc[7, "education"] = "博士"
    with pytest.raises(WeightingError, match="row 7 has .*博士"):
        rake(df, "design_weight", margins)


def test_kish_and_effective_n():
    w = np.array([1.0, 1.0, 2.0, 4.0])
    assert kish_deff(w) == pytest.approx(4 * 22 / 64)
    assert effective_n(w) == pytest.approx(64 / 22)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), shift=st.floats(0.5, 2.0))
def test_raking_property(seed, shift):
    """Any consistent pair of margins is met; a sample already on the margins is left alone."""
    rng = np.random.default_rng(seed)
    n = 300
    df = pd.DataFrame({"a": rng.choice(["x", "y", "z"], n), "b": rng.choice(["u", "v"], n),
                       "d": rng.uniform(1, 3, n)})
    ta = pd.Series([100.0 * shift, 200.0, 300.0], index=pd.Index([("x",), ("y",), ("z",)],
                                                                 tupleize_cols=False))
    tb_total = ta.sum()
    tb = pd.Series([tb_total * 0.3, tb_total * 0.7], index=pd.Index([("u",), ("v",)],
                                                                     tupleize_cols=False))
    margins = [Margin("a", ("a",), ta), Margin("b", ("b",), tb)]
    res = rake(df, "d", margins, max_iter=500, tol=1e-10)
    for m, t in ((margins[0], ta), (margins[1], tb)):
        got = np.bincount(m.codes(df), weights=res.weights, minlength=len(t))
        np.testing.assert_allclose(got, t.to_numpy(), rtol=1e-9)
    again = rake(df, res.weights, margins, max_iter=5, tol=1e-9)
    np.testing.assert_allclose(again.weights, res.weights, rtol=1e-8)


# ---------------------------------------------------------------- reading the census margins file

GBK = Path(__file__).parent / "fixtures" / "weighting" / "demo_margins-gbk.csv"


def test_gbk_margins_read_like_utf8():
    from analysis.weighting import read_census_table

    utf8 = read_census_margins(FIX / "demo_margins.csv", DEMO_MARGINS)
    gbk = read_census_margins(GBK, DEMO_MARGINS)
    for a, b in zip(utf8, gbk, strict=True):
        assert a.name == b.name and list(a.totals.index) == list(b.totals.index)
        np.testing.assert_array_equal(a.totals.to_numpy(), b.totals.to_numpy())
    table = read_census_table(GBK)
    assert table.attrs["encoding"] == "gbk"
    assert set(table.loc[table["margin"] == "division_urban", "urban_rural"]) == {"城镇", "乡村"}
    assert table["division_code"].dtype == "string" and table["population"].dtype == float
    # blank cells of margins that do not use a column are missing, not ""
    assert table.loc[table["margin"] == "education", "division_code"].isna().all()


def test_bad_population_names_file_line_column_and_value(tmp_path):
    lines = (FIX / "demo_margins.csv").read_text(encoding="utf-8").splitlines()
    lines[5] = lines[5].replace(lines[5].split(",")[6], "约3万")
    bad = tmp_path / "margins.csv"
    bad.write_text("\n".join(lines) + "\n", encoding="gbk")
    with pytest.raises(WeightingError, match=r"margins\.csv: line 6 \(data row 4\), column 'population': "
                                             r"value '约3万'"):
        read_census_margins(bad, DEMO_MARGINS)


def test_undecodable_margins_name_the_line(tmp_path):
    data = (FIX / "demo_margins.csv").read_bytes().replace("乡村".encode(), b"\xff\xfe\xfa", 1)
    bad = tmp_path / "margins.csv"
    bad.write_bytes(data)  # the bytes are neither UTF-8 nor GBK/GB18030
    with pytest.raises(WeightingError, match=r"margins\.csv: line 3 .*encoding not recognised"):
        read_census_margins(bad, DEMO_MARGINS)


def test_missing_margins_file_and_column(tmp_path):
    with pytest.raises(WeightingError, match="census margins file not found"):
        read_census_margins(tmp_path / "none.csv", DEMO_MARGINS)
    (tmp_path / "m.csv").write_text("margin,division_code,pop\ndivision_urban,440802,5\n", encoding="utf-8")
    with pytest.raises(WeightingError, match=r"m\.csv: missing column\(s\) \['population'\]"):
        read_census_margins(tmp_path / "m.csv", DEMO_MARGINS)
