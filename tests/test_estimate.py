"""Design-based estimates against R's survey package (fixtures from r/make_survey_fixtures.R)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.estimate import (
    Calibration,
    Design,
    DesignError,
    domain_means,
    estimate_domains,
    naive_subset_estimate,
)
from analysis.weighting import Margin, rake

FIX = Path(__file__).parent / "fixtures" / "survey_r"
R = json.loads((FIX / "survey_r.json").read_text(encoding="utf-8"))
RTOL = 1e-8


def num(v) -> float:
    """JSON number from R; R's NA / NaN arrive as strings or null."""
    return float("nan") if v is None or isinstance(v, str) else float(v)


def read_data(name: str) -> pd.DataFrame:
    df = pd.read_csv(FIX / name, dtype={"division_code": "string", "stratum": "string",
                                         "psu": "string", "stype": "string"})
    if "literate" in df.columns:  # the R script's literate01
        df["literate01"] = df["literate"].astype("string").isin(["True", "TRUE"]).astype(float)
        df["elderly"] = np.where((df["age"] >= 60) & (df["age"] <= 69), "yes", "no")
    return df


def api_margins(spec: list[dict]) -> list[Margin]:
    return [Margin(m["columns"][0], tuple(m["columns"]),
                   pd.Series(m["totals"], index=pd.Index([(v,) for v in m["levels"]],
                                                         tupleize_cols=False), dtype=float))
            for m in spec]


def demo_margins() -> list[Margin]:
    from analysis.weighting import read_census_margins
    return read_census_margins(FIX / "demo_margins.csv", ["division_urban", "sex_age", "education"])


def build_design(case: dict) -> tuple[pd.DataFrame, Design]:
    df = read_data(case["data"])
    if case["name"] == "apiclus1_raked_plain":
        df["wraked"] = R["raked_weights"]["apiclus1"]
    cal = case.get("calibration")
    if cal and cal.get("merge_first_stratum_psus"):  # the R script's single-PSU stratum
        df["psu"] = df["psu"].where(df["stratum"] != sorted(df["stratum"].unique())[0], "merged")
        cal = None
    calibration = None
    weights: str | np.ndarray = case["weights"]
    if cal:
        margins = (demo_margins() if cal.get("margins_from") else api_margins(cal["margins"]))
        d = df[case["weights"]].to_numpy(float)
        if cal["kind"] == "raking":
            res = rake(df, d, margins, max_iter=1000, tol=1e-14)
            weights = res.weights
            calibration = Calibration("raking", tuple(res.codes))
        else:
            key = "apiclus1_poststrat"
            weights = np.asarray(R["raked_weights"][key])
            calibration = Calibration("poststratify", (margins[0].codes(df),), design_weights=d)
    design = Design.from_frame(df, weights, case["strata"], case["ids"],
                               lonely_psu=case["lonely_psu"], calibration=calibration)
    return df, design


def stat_rows(case):
    for s in case["stats"]:
        yield pytest.param(case, s, id=f"{case['name']}-{s['variable']}-{s['by']}-{s['level']}")


CASES = [p for case in R["cases"] for p in stat_rows(case)]
_DESIGNS: dict[str, tuple] = {}


def design_for(case):
    if case["name"] not in _DESIGNS:
        _DESIGNS[case["name"]] = build_design(case)
    return _DESIGNS[case["name"]]


@pytest.mark.parametrize(("case", "stat"), CASES)
def test_matches_r(case, stat):
    df, design = design_for(case)
    share = stat["variable"] in ("schwide", "literate01")
    y = df[stat["variable"]].to_numpy(float)
    labels = None if stat["by"] is None else df[stat["by"]].astype("string")
    out = estimate_domains(design, y, labels, share=share).set_index("level").loc[str(stat["level"])]
    assert out["n"] == stat["n"]
    assert out["df"] == stat["df"]
    np.testing.assert_allclose(out["estimate"], stat["estimate"], rtol=RTOL)
    np.testing.assert_allclose(out["se"], stat["se"], rtol=RTOL, atol=1e-13)
    rdeff = num(stat["deff"])
    if np.isfinite(rdeff) and stat["se"] > 1e-12:
        np.testing.assert_allclose(out["deff"], stat["deff"], rtol=RTOL)
    if np.isfinite(num(stat["ci_low"])):
        np.testing.assert_allclose([out["ci_low"], out["ci_high"]],
                                   [stat["ci_low"], stat["ci_high"]], rtol=RTOL)
        glm = [num(stat.get("ci_low_glm")), num(stat.get("ci_high_glm"))]
        if 0 < glm[0] < glm[1] < 1:  # R's IRLS sometimes fails on calibrated domains (0, 0)  # svyciprop(method="logit") via IRLS: good to its glm tolerance
            np.testing.assert_allclose([out["ci_low"], out["ci_high"]],
                                       glm, rtol=1e-6)
    else:  # R: logit interval undefined at a share of 0 or 1
        assert np.isnan(out["ci_low"]) and np.isnan(out["ci_high"])


def test_domain_is_not_naive_subset():
    """A domain keeps the full design's PSUs: its SE differs from that of the subset data."""
    df = read_data("apiclus1.csv")
    design = Design.from_frame(df, "pw", None, "dnum")
    dom = estimate_domains(design, df["api00"].to_numpy(float), df["stype"]).set_index("level")
    sub = naive_subset_estimate(df, df["stype"] == "H", "api00", "pw", None, "dnum")
    assert dom.loc["H", "estimate"] == pytest.approx(sub["estimate"].iloc[0], rel=1e-12)
    # fewer PSUs in the subset (districts without high schools drop out) change the SE
    assert abs(dom.loc["H", "se"] / sub["se"].iloc[0] - 1) > 0.01
    assert dom.loc["H", "df"] == sub["df"].iloc[0]  # R's degf of a domain counts its own PSUs


def test_lonely_psu_rules():
    df = read_data("apiclus2.csv")
    y = df["api00"].to_numpy(float)
    with pytest.raises(DesignError, match="single PSU"):
        Design.from_frame(df, "pw", "st", "dnum", lonely_psu="fail")
    with pytest.raises(DesignError, match="lonely_psu must be one of"):
        Design.from_frame(df, "pw", "st", "dnum", lonely_psu="drop")
    se = {rule: domain_means(Design.from_frame(df, "pw", "st", "dnum", lonely_psu=rule), y)["se"][0]
          for rule in ("certainty", "remove", "adjust", "average")}
    assert se["certainty"] == se["remove"]
    assert se["adjust"] > se["certainty"]  # the lonely PSU now adds variance
    assert se["average"] > se["certainty"]


def test_design_errors_name_the_problem():
    df = read_data("apiclus1.csv")
    df.loc[3, "dnum"] = None
    with pytest.raises(DesignError, match="'dnum' is missing in row 3"):
        Design.from_frame(df, "pw", None, "dnum")
    df = read_data("apiclus1.csv")
    df.loc[5, "pw"] = -1.0
    with pytest.raises(DesignError, match="row 5"):
        Design.from_frame(df, "pw", None, "dnum")


def test_simulated_coverage():
    """Logit intervals of a two-stage design cover the true share about 95% of the time."""
    rng = np.random.default_rng(7)
    strata, psus, m = 10, 6, 15
    hits, reps = 0, 200
    for _ in range(reps):
        s = np.repeat(np.arange(strata), psus * m)
        p = np.repeat(np.arange(strata * psus), m)
        eff = rng.normal(0, 0.5, strata * psus)[p]
        y = (rng.random(len(p)) < 1 / (1 + np.exp(-(-1.0 + eff)))).astype(float)
        df = pd.DataFrame({"stratum": s, "psu": p, "w": 1.0, "y": y})
        out = estimate_domains(Design.from_frame(df, "w"), y, share=True)
        # truth: the mean of the superpopulation share over PSU effects
        hits += out["ci_low"][0] <= TRUE_SHARE <= out["ci_high"][0]
    assert 0.90 <= hits / reps <= 0.99


def _true_share() -> float:
    z = np.random.default_rng(0).normal(0, 0.5, 2_000_000)
    return float(np.mean(1 / (1 + np.exp(-(-1.0 + z)))))


TRUE_SHARE = _true_share()


def test_disclosure_flags():
    from analysis.disclosure import flag_cells, publishable
    t = pd.DataFrame({"n": [10, 100, 100, 29, 30], "estimate": [0.2, 0.2, 0.0, 0.5, 0.5],
                      "se": [0.01, 0.08, 0.0, 0.2, 0.15]})
    t["cv"] = t["se"] / t["estimate"]
    out = flag_cells(t, min_n=30, max_cv=0.3)
    assert out["suppressed"].tolist() == [True, True, True, True, False]
    assert out["suppress_reason"].tolist() == ["n<30", "cv>0.3", "cv undefined", "n<30; cv>0.3", ""]
    pub = publishable(out)
    assert pub["estimate"].isna().tolist() == [True, True, True, True, False]
    assert pub["n"].tolist() == t["n"].tolist()


def test_stage_table_matches_r_demo():
    """The stage's tidy table (percent, key groups) carries R's numbers for the demo year."""
    from analysis.config import load_plan
    from analysis.estimate_stage import estimate_table

    case = next(c for c in R["cases"] if c["name"] == "demo_raked")
    df, design = design_for(case)
    table = estimate_table(df, design, load_plan("zhanjiang"), 2020)
    lit = table[table["indicator"] == "literate"].set_index(["domain", "level"])
    names = {"division_code": "division", "urban_rural": "urban_rural", "education": "education",
             "occupation": "occupation", "sex": "sex", "age_group": "age_group"}
    checked = 0
    for s in case["stats"]:
        if s["variable"] != "literate01":
            continue
        if s["by"] is None:
            key = ("city", "all")
        elif s["by"] == "elderly":
            if s["level"] != "yes":
                continue
            key = ("key_group", "elderly")
        else:
            key = (names[s["by"]], str(s["level"]))
        row = lit.loc[key]
        assert row["n"] == s["n"]
        np.testing.assert_allclose([row["estimate"], row["se"]],
                                   [100 * s["estimate"], 100 * s["se"]], rtol=RTOL)
        if np.isfinite(num(s["ci_low"])):
            np.testing.assert_allclose([row["ci_low"], row["ci_high"]],
                                       [100 * s["ci_low"], 100 * s["ci_high"]], rtol=RTOL)
        checked += 1
    assert checked > 30
    assert set(table["domain"]) == {"city", "division", "urban_rural", "sex", "age_group",
                                    "education", "occupation", "key_group"}
    small = table[table["n"] < 30]
    assert small["suppressed"].all() and small["suppress_reason"].str.contains("n<30").all()


def _stage_setup(tmp_path, method: str = "rake"):
    import shutil

    import yaml

    from analysis.config import RAW, load_plan

    raw = tmp_path / "raw"
    (raw / "plan").mkdir(parents=True)
    (raw / "census").mkdir()
    plan_data = yaml.safe_load((RAW / "plan" / "zhanjiang.yml").read_text(encoding="utf-8"))
    plan_data["survey"]["weighting"]["method"] = method
    (raw / "plan" / "zhanjiang.yml").write_text(yaml.safe_dump(plan_data, allow_unicode=True),
                                                encoding="utf-8")
    plan = load_plan("zhanjiang", raw_dir=raw)
    shutil.copy(FIX / "demo_margins.csv", plan.census_margins_path)
    df = read_data("demo_survey.csv").drop(columns=["literate01", "elderly"])
    df["resp_key"] = [f"{i:064x}" for i in range(len(df))]
    df["literate"] = df["literate"].astype("string") == "True"
    out = tmp_path / "processed" / "zhanjiang" / "2020"
    out.mkdir(parents=True)
    df.to_parquet(out / "survey_clean.parquet", index=False)
    return plan, tmp_path / "processed", df


def test_run_estimate_writes_contract_outputs(tmp_path):
    from analysis.catalog import load_estimates
    from analysis.estimate_stage import COLUMNS, run_estimate

    plan, root, df = _stage_setup(tmp_path)
    res = run_estimate(plan, 2020, processed_root=root)
    out = root / "zhanjiang" / "2020"
    w = pd.read_parquet(out / "weights.parquet")
    assert list(w.columns) == ["resp_key", "design_weight", "weight"]
    # the stage stops at the plan's tolerance (1e-8 on margins), R's fixture ran to 1e-14
    np.testing.assert_allclose(w["weight"], R["raked_weights"]["demo"], rtol=1e-7)
    est = pd.read_parquet(out / "estimates.parquet")
    assert list(est.columns) == COLUMNS
    assert not est.duplicated(["year", "indicator", "domain", "level"]).any()
    r_city = next(s for c in R["cases"] if c["name"] == "demo_raked" for s in c["stats"]
                  if s["variable"] == "literate01" and s["by"] is None)
    city = est[(est["indicator"] == "literate") & (est["domain"] == "city")].iloc[0]
    np.testing.assert_allclose([city["estimate"], city["se"]],
                               [100 * r_city["estimate"], 100 * r_city["se"]], rtol=1e-7)
    # the four level shares add up to 100% in the city
    levels = est[est["indicator"].str.startswith("level_") & (est["domain"] == "city")]
    assert levels["estimate"].sum() == pytest.approx(100.0)
    diag = json.loads((out / "weighting_diagnostics.json").read_text(encoding="utf-8"))
    assert diag["converged"] and diag["method"] == "rake"
    lonely = int((df.groupby("stratum")["psu"].nunique() == 1).sum())
    assert diag["variance"]["single_psu_strata"] == lonely and diag["variance"]["lonely_psu"] == "adjust"
    assert (out / "manifest-02_weight_estimate.json").exists()
    assert (out / "figures" / "estimates_by_group.png").stat().st_size > 10_000
    stacked = load_estimates(plan, root)
    assert set(stacked["year"]) == {2020} and len(stacked) == len(est)
    assert res.literate["estimate"] == pytest.approx(city["estimate"])


def test_run_estimate_poststratify(tmp_path):
    from analysis.estimate_stage import run_estimate

    plan, root, df = _stage_setup(tmp_path, method="poststratify")
    res = run_estimate(plan, 2020, processed_root=root)
    diag = res.diagnostics
    assert diag["method"] == "poststratify" and diag["margins"] == ["division_urban"]
    table = pd.DataFrame(diag["margins_before_after"])
    du = table[table["margin"] == "division_urban"]
    np.testing.assert_allclose(du["after"], du["census"], rtol=1e-12)


def test_run_estimate_missing_input(tmp_path):
    from analysis.catalog import MissingOutput
    from analysis.estimate_stage import run_estimate

    plan, root, _ = _stage_setup(tmp_path)
    with pytest.raises(MissingOutput, match="2021.*survey_clean.parquet not found|survey_clean.parquet not found"):
        run_estimate(plan, 2021, processed_root=root)


# ---------------------------------------------------------------- the one reader of estimates.parquet

def _write_estimates(root: Path, years, drop=()):
    from analysis.estimate_stage import COLUMNS

    for y in years:
        rows = [{"year": y, "indicator": ind, "domain": "city", "level": "all", "n": 500,
                 "estimate": 10.0 + (y - 2015) * (1 if ind == "literate" else 3), "se": 0.5, "df": 120,
                 "ci_low": 9.0, "ci_high": 11.0, "deff": 1.5, "n_eff": 333.0, "cv": 0.05,
                 "suppressed": False, "suppress_reason": ""}
                for ind in ("literate", "mean_score_total")]
        rows.append({**rows[0], "domain": "division", "level": "440802"})
        df = pd.DataFrame(rows)[COLUMNS].drop(columns=list(drop))
        out = root / "zhanjiang" / str(y)
        out.mkdir(parents=True, exist_ok=True)
        df.to_parquet(out / "estimates.parquet", index=False)


def test_load_estimates_selects_years_and_indicator(tmp_path):
    from analysis.catalog import estimate_files, load_estimates, load_estimates_with_paths
    from analysis.config import load_plan

    plan = load_plan("zhanjiang")
    _write_estimates(tmp_path, [2016, 2020, 2021, 2023, 2025])
    everything = load_estimates(plan, tmp_path)
    assert sorted(everything["year"].unique()) == [2016, 2020, 2021, 2023, 2025]
    assert everything["year"].dtype == "int64" and set(everything["level"]) == {"all", "440802"}
    lit, paths = load_estimates_with_paths(plan, tmp_path, up_to=2023, since=2018, indicator="literate")
    assert set(lit["indicator"]) == {"literate"} and sorted(lit["year"].unique()) == [2020, 2021, 2023]
    assert lit.query("domain == 'city'").set_index("year")["estimate"].to_dict() == {
        2020: 15.0, 2021: 16.0, 2023: 18.0}
    assert [int(p.parent.name) for p in paths] == [2020, 2021, 2023]
    assert list(estimate_files(plan, tmp_path, up_to=2023, since=2018).values()) == paths
    assert set(load_estimates(plan, tmp_path, [2016, 2025])["year"]) == {2016, 2025}  # old call form


def test_load_estimates_fails_clearly(tmp_path):
    from analysis.catalog import OutputError as EstimateStageError
    from analysis.catalog import load_estimates
    from analysis.config import load_plan

    plan = load_plan("zhanjiang")
    with pytest.raises(EstimateStageError, match=r"no estimates.parquet for zhanjiang in survey years <= 2025 "
                                                 r"under .*: run stage 02 first"):
        load_estimates(plan, tmp_path, up_to=2025)
    _write_estimates(tmp_path, [2020])
    with pytest.raises(EstimateStageError, match=r"2025/estimates.parquet not found: run stage 02 for 2025"):
        load_estimates(plan, tmp_path, require=[2025])
    _write_estimates(tmp_path, [2021], drop=["se", "suppressed"])
    with pytest.raises(EstimateStageError, match=r"2021/estimates.parquet: missing column\(s\) \['se', 'suppressed'\]"):
        load_estimates(plan, tmp_path)
    # a reader that needs fewer columns can say so
    few = load_estimates(plan, tmp_path, need=("year", "indicator", "domain", "level", "estimate"))
    assert sorted(few["year"].unique()) == [2020, 2021]
    # a file whose rows belong to another year (copied by hand) is refused, naming the row
    p = tmp_path / "zhanjiang" / "2023"
    p.mkdir()
    (tmp_path / "zhanjiang" / "2020" / "estimates.parquet").rename(p / "estimates.parquet")
    with pytest.raises(EstimateStageError, match=r"2023/estimates.parquet: row 0, column 'year': value 2020 "
                                                 r"in the file of survey year 2023"):
        load_estimates(plan, tmp_path, years=[2023])
