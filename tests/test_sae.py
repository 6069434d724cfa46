"""Fay–Herriot model: sae's published milk fit, simulated truth, benchmarking, the stage end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import sae
from analysis.config import RAW, load_plan

FIX = Path(__file__).parent / "fixtures" / "sae"


# ---------------------------------------------------------------- published fixture

@pytest.fixture(scope="module")
def milk():
    d = pd.read_csv(FIX / "milk.csv")
    ref = json.loads((FIX / "fay-herriot-milk.json").read_text())
    X = np.column_stack([np.ones(len(d))] + [(d["MajorArea"] == k).astype(float) for k in (2, 3, 4)])
    return sae.fit_fay_herriot(d["yi"], X, d["SD"] ** 2, method="reml"), ref


def test_milk_matches_sae_refvar_and_beta(milk):
    fit, ref = milk
    assert fit.refvar == pytest.approx(ref["refvar"], abs=1e-6)
    np.testing.assert_allclose(fit.beta, ref["beta"], atol=1e-6)


def test_milk_matches_sae_eblups_and_mses(milk):
    fit, ref = milk
    assert len(ref["eblup"]) == len(ref["mse"]) == 43
    np.testing.assert_allclose(fit.eblup, ref["eblup"], atol=1e-6)
    np.testing.assert_allclose(fit.mse, ref["mse"], atol=1e-6)


def test_milk_reml_is_the_likelihood_maximum(milk):
    """The Fisher-scoring fixed point maximises the REML log-likelihood (checked by scipy)."""
    from scipy.optimize import minimize_scalar

    d = pd.read_csv(FIX / "milk.csv")
    X = np.column_stack([np.ones(len(d))] + [(d["MajorArea"] == k).astype(float) for k in (2, 3, 4)])
    y, D = d["yi"].to_numpy(), d["SD"].to_numpy() ** 2

    def neg_reml(A):
        V = A + D
        XtVX = (X / V[:, None]).T @ X
        beta = np.linalg.solve(XtVX, (X / V[:, None]).T @ y)
        r = y - X @ beta
        return 0.5 * (np.sum(np.log(V)) + np.linalg.slogdet(XtVX)[1] + np.sum(r**2 / V))

    best = minimize_scalar(neg_reml, bounds=(1e-8, 1.0), method="bounded", options={"xatol": 1e-12})
    assert milk[0].refvar == pytest.approx(best.x, rel=1e-4)


# ---------------------------------------------------------------- simulated truth

def test_eblup_beats_direct_on_simulated_areas():
    rng = np.random.default_rng(7)
    m, A, reps = 30, 4.0, 200
    x = rng.uniform(20, 90, m)
    X = np.column_stack([np.ones(m), x])
    D = rng.uniform(2.0, 12.0, m)
    err_fh, err_dir, mse_pr = np.zeros(m), np.zeros(m), np.zeros(m)
    for _ in range(reps):
        theta = 5 + 0.12 * x + rng.normal(0, np.sqrt(A), m)
        y = theta + rng.normal(0, np.sqrt(D))
        fit = sae.fit_fay_herriot(y, X, D, method="reml")  # the Prasad–Rao MSE is REML's
        err_fh += (fit.eblup - theta) ** 2
        err_dir += (y - theta) ** 2
        mse_pr += fit.mse
    err_fh, err_dir, mse_pr = err_fh / reps, err_dir / reps, mse_pr / reps
    assert err_fh.mean() < 0.7 * err_dir.mean()
    # the gain is largest where the sampling variance is largest
    assert err_fh[D > 8].mean() / err_dir[D > 8].mean() < err_fh[D < 4].mean() / err_dir[D < 4].mean()
    # Prasad–Rao MSE tracks the empirical MSE on average
    assert mse_pr.mean() == pytest.approx(err_fh.mean(), rel=0.2)


def test_shrinkage_is_sampling_share_and_eblup_lies_between():
    rng = np.random.default_rng(3)
    m = 15
    X = np.column_stack([np.ones(m), rng.normal(size=m)])
    D = rng.uniform(0.5, 3, m)
    y = X @ [2.0, 1.0] + rng.normal(0, 1.2, m) + rng.normal(0, np.sqrt(D))
    fit = sae.fit_fay_herriot(y, X, D)
    np.testing.assert_allclose(fit.shrinkage, D / (fit.refvar + D))
    np.testing.assert_allclose(fit.eblup, fit.shrinkage * fit.synthetic + (1 - fit.shrinkage) * y)
    assert np.all(fit.mse < D + 1e-12) or fit.refvar == 0


def test_unsampled_prediction_is_the_limit_of_an_uninformative_area():
    rng = np.random.default_rng(5)
    m = 12
    X = np.column_stack([np.ones(m), rng.uniform(0, 10, m)])
    D = rng.uniform(0.5, 2, m)
    y = X @ [1.0, 0.8] + rng.normal(0, 1, m) + rng.normal(0, np.sqrt(D))
    fit = sae.fit_fay_herriot(y[1:], X[1:], D[1:])
    pred, mse = sae.predict_unsampled(fit, X[:1], X[1:], D[1:])
    D_huge = D.copy()
    D_huge[0] = 1e9
    full = sae.fit_fay_herriot(y, X, D_huge)
    assert pred[0] == pytest.approx(full.eblup[0], abs=1e-4)
    assert mse[0] == pytest.approx(full.mse[0], rel=1e-3)


def test_adjusted_reml_stays_positive_and_maximises_its_likelihood():
    from scipy.optimize import minimize_scalar

    rng = np.random.default_rng(2)
    m = 9
    X = np.column_stack([np.ones(m), rng.uniform(0, 1, m)])
    D = rng.uniform(4, 9, m)
    y = X @ [10.0, 5.0] + rng.normal(0, np.sqrt(D))          # no area effect at all
    assert sae.fit_fay_herriot(y, X, D, method="reml").refvar == 0.0
    adj = sae.fit_fay_herriot(y, X, D)
    assert adj.method == "adjusted_reml" and adj.refvar > 0
    best = minimize_scalar(lambda a: -(sae.reml_loglik(y, X, D, a) + np.log(a)), bounds=(1e-9, 200),
                           method="bounded", options={"xatol": 1e-10})
    assert adj.refvar == pytest.approx(best.x, rel=1e-3)
    with pytest.raises(sae.SAEError, match="unknown variance-component method"):
        sae.fit_fay_herriot(y, X, D, method="ml")


def test_bad_inputs_fail_clearly():
    X = np.column_stack([np.ones(4), np.arange(4.0)])
    with pytest.raises(sae.SAEError, match="positive"):
        sae.fit_fay_herriot([1, 2, 3, 4], X, [1, 0, 1, 1])
    with pytest.raises(sae.SAEError, match="rank deficient"):
        sae.fit_fay_herriot([1, 2, 3, 4], np.column_stack([X, 2 * X[:, 1]]), [1, 1, 1, 1])
    with pytest.raises(sae.SAEError, match="cannot fit"):
        sae.fit_fay_herriot([1, 2], X[:2], [1, 1])


# ---------------------------------------------------------------- benchmarking

@pytest.mark.parametrize("method", ["ratio", "difference"])
def test_benchmark_adds_up(method):
    rng = np.random.default_rng(1)
    est = rng.uniform(5, 25, 9)
    w = rng.uniform(3e5, 1.4e6, 9)
    out = sae.benchmark(est, w, 14.2, method)
    assert np.sum(w * out) / w.sum() == pytest.approx(14.2, abs=1e-10)
    # ranks are kept
    assert (np.argsort(out) == np.argsort(est)).all()


def test_prob_below():
    assert sae.prob_below(16.0, 2.0, 16.0) == pytest.approx(0.5)
    assert sae.prob_below(12.0, 2.0, 16.0) == pytest.approx(0.97725, abs=1e-5)


# ---------------------------------------------------------------- stage end to end

def test_pooled_deff_and_smoothed_variances():
    assert sae.pooled_deff([100, 300, 50], [1.0, 2.0, np.nan]) == pytest.approx((100 + 600) / 400)
    np.testing.assert_allclose(sae.smoothed_vardir([10.0, 50.0], [400, 100], 2.0),
                               [1e4 * 2 * 0.09 / 400, 1e4 * 2 * 0.25 / 100])
    with pytest.raises(sae.SAEError, match="design effect"):
        sae.pooled_deff([10], [np.nan])


def test_smoothed_fit_uses_model_shares_not_direct_ones():
    rng = np.random.default_rng(3)
    m = 30
    X = np.column_stack([np.ones(m), rng.uniform(0, 1, m)])
    n = rng.integers(200, 500, m)
    theta = X @ np.array([8.0, 10.0]) + rng.normal(0, 1.5, m)
    y = theta + rng.normal(0, np.sqrt(1e4 * 2 * theta / 100 * (1 - theta / 100) / n))
    fit, vardir = sae.fit_smoothed(y, X, n, 2.0)
    np.testing.assert_allclose(vardir, sae.smoothed_vardir(sae.fit_fay_herriot(
        y, X, sae.smoothed_vardir(X @ np.linalg.lstsq(X, y, rcond=None)[0], n, 2.0)).eblup, n, 2.0))
    assert fit.refvar > 0


def test_bootstrap_mse_of_benchmarked_estimates_matches_its_simulated_mse():
    """The bootstrap MSE of fit-and-benchmark agrees with a Monte Carlo of the same procedure."""
    rng = np.random.default_rng(5)
    m = 12
    X = np.column_stack([np.ones(m), rng.uniform(0, 1, m)])
    D = rng.uniform(2, 6, m)
    w = rng.uniform(1, 3, m)
    beta, A = np.array([10.0, 6.0]), 3.0
    mc_b, mc_e = np.zeros(m), np.zeros(m)
    R = 600
    for _ in range(R):
        theta = X @ beta + rng.normal(0, np.sqrt(A), m)
        y = theta + rng.normal(0, np.sqrt(D))
        f = sae.fit_fay_herriot(y, X, D)
        mc_e += (f.eblup - theta) ** 2 / R
        mc_b += (sae.benchmark(f.eblup, w, float(np.sum(w * y) / w.sum())) - theta) ** 2 / R
    y = X @ beta + rng.normal(0, np.sqrt(A), m) + rng.normal(0, np.sqrt(D))
    fit = sae.fit_fay_herriot(y, X, D)
    fit = sae.FayHerriotFit(**{**fit.__dict__, "refvar": A, "beta": beta})  # at the true parameters
    boot = sae.bootstrap_mse(fit, X, D, w, n_boot=600, rng=1)
    assert boot["replicates"] + boot["failed"] == 600
    np.testing.assert_allclose(boot["mse_eblup"], mc_e, rtol=0.3)
    np.testing.assert_allclose(boot["mse_benchmarked"], mc_b, rtol=0.3)
    assert np.mean(boot["mse_benchmarked"]) > 0.9 * np.mean(boot["mse_eblup"])


def make_inputs(root: Path, years=(2020, 2021, 2023, 2025), seed=11, edu_by_division=True) -> Path:
    """Contract-shaped census margins and estimates.parquet files under root; returns raw_dir."""
    raw = root / "raw"
    (raw / "plan").mkdir(parents=True)
    shutil.copy(RAW / "plan" / "zhanjiang.yml", raw / "plan" / "zhanjiang.yml")
    plan = load_plan("zhanjiang", raw)
    rng = np.random.default_rng(seed)
    codes = [str(d["code"]) for d in plan.divisions]
    pop = rng.uniform(3e5, 1.3e6, len(codes))
    urban = rng.uniform(0.3, 0.97, len(codes))
    edu = 0.15 + 0.35 * urban + rng.normal(0, 0.03, len(codes))
    old = rng.uniform(0.25, 0.4, len(codes))
    rows = []
    for c, p, u, e, o in zip(codes, pop, urban, edu, old, strict=True):
        rows += [{"margin": "division_urban", "division_code": c, "urban_rural": "城镇", "population": p * u},
                 {"margin": "division_urban", "division_code": c, "urban_rural": "乡村", "population": p * (1 - u)}]
        for g, sh in (("18-29", 0.25), ("30-39", 0.2), ("40-49", 1 - 0.45 - o), ("50-59", o * 0.6), ("60-69", o * 0.4)):
            for s in ("男", "女"):
                rows.append({"margin": "sex_age", "division_code": c, "sex": s, "age_group": g, "population": p * sh / 2})
        for lev, sh in (("小学及以下", (1 - e) * 0.4), ("初中", (1 - e) * 0.6), ("高中", e * 0.5),
                        ("大专", e * 0.3), ("本科及以上", e * 0.2)):
            rows.append({"margin": "education", "division_code": c if edu_by_division else "",
                         "education": lev, "population": p * sh})
    margins = pd.DataFrame(rows)
    margins["source"] = "synthetic"
    (raw / "census").mkdir()
    margins.to_csv(plan.census_margins_path, index=False)
    base = 2 + 14 * urban + 8 * (edu - 0.3)
    for y in years:
        truth = base + 1.1 * (y - 2020) + rng.normal(0, 0.8, len(codes))
        n = rng.integers(250, 600, len(codes))
        se = np.sqrt(truth * (100 - truth) / n * 1.6)
        direct = truth + rng.normal(0, se)
        city = float(np.sum(pop * direct) / pop.sum())
        recs = [{"domain": "city", "level": "all", "n": int(n.sum()), "estimate": city, "se": 0.8}]
        recs += [{"domain": "division", "level": c, "n": int(k), "estimate": float(d), "se": float(s)}
                 for c, k, d, s in zip(codes, n, direct, se, strict=True)]
        for dom, levels in (("urban_rural", {"城镇": 6, "乡村": -4}), ("sex", {"男": 1, "女": -1}),
                            ("education", {"小学及以下": -7, "初中": -3, "高中": 3, "大专": 9, "本科及以上": 15})):
            shrink = 1 - 0.1 * (y - 2020)  # 1.0 in 2020, 0.5 in 2025
            recs += [{"domain": dom, "level": lev, "n": 800, "estimate": city + shrink * eff, "se": 0.6}
                     for lev, eff in levels.items()]
        df = pd.DataFrame(recs)
        df.insert(0, "indicator", "literate")
        df.insert(0, "year", y)
        df["ci_low"], df["ci_high"] = df["estimate"] - 1.96 * df["se"], df["estimate"] + 1.96 * df["se"]
        df["deff"], df["n_eff"], df["cv"] = 1.6, df["n"] / 1.6, df["se"] / df["estimate"]
        df["suppressed"], df["suppress_reason"] = False, ""
        out = root / "processed" / "zhanjiang" / str(y)
        out.mkdir(parents=True)
        df.to_parquet(out / "estimates.parquet", index=False)
    return raw


@pytest.fixture(scope="module")
def stage_run(tmp_path_factory):
    from analysis.county_gaps_stage import run_county_gaps

    root = tmp_path_factory.mktemp("gaps")
    raw = make_inputs(root)
    plan = load_plan("zhanjiang", raw)
    res = run_county_gaps(plan, 2025, processed_root=root / "processed", n_boot=500)
    return plan, root, res


def test_stage_outputs_add_up(stage_run):
    plan, root, res = stage_run
    tab = pd.read_parquet(res.outputs["sae.parquet"])
    assert list(tab["division_code"]) == [str(d["code"]) for d in plan.divisions]
    for col in ("division_code", "name_zh", "n", "direct", "direct_se", "fh", "fh_mse", "fh_rmse",
                "shrinkage", "benchmarked", "gap_to_target", "change_since_baseline", "p_below_target"):
        assert tab[col].notna().all(), col
    city = pd.read_parquet(root / "processed/zhanjiang/2025/estimates.parquet").query("domain == 'city'")
    w = tab["population"]
    assert np.sum(w * tab["benchmarked"]) / w.sum() == pytest.approx(city["estimate"].iloc[0], abs=1e-9)
    np.testing.assert_allclose(tab["gap_to_target"], tab["benchmarked"] - 16.0)
    years = pd.read_parquet(res.outputs["sae_years.parquet"])
    b2020 = years.query("year == 2020").set_index("division_code")["benchmarked"]
    np.testing.assert_allclose(tab["change_since_baseline"],
                               tab["benchmarked"] - tab["division_code"].map(b2020).to_numpy())
    # nine areas and four coefficients leave little to borrow, but the median area still gains
    assert np.median(tab["fh_mse"] / tab["direct_se"] ** 2) < 1
    # smoothed sampling variances by default (pooled deff 1.6 here), the raw ones kept
    p = np.clip(tab["fh"] / 100, 1e-4, 1)
    np.testing.assert_allclose(tab["vardir"], 1e4 * 1.6 * p * (1 - p) / tab["n"], rtol=0.05)
    np.testing.assert_allclose(tab["vardir_raw"], tab["direct_se"] ** 2)
    assert tab["fh_raw"].notna().all()
    # the benchmarked estimates carry their own (bootstrap) MSE, used by the intervals
    assert (tab["benchmarked_mse"] > 0).all()
    np.testing.assert_allclose(tab["benchmarked_rmse"], np.sqrt(tab["benchmarked_mse"]))
    np.testing.assert_allclose(tab["ci_high"] - tab["benchmarked"], 1.959963984540054 * tab["benchmarked_rmse"])
    assert tab["n_areas"].eq(9).all() and tab["refvar_se"].gt(0).all()


def test_stage_json_and_maps(stage_run):
    plan, root, res = stage_run
    js = json.loads(Path(res.outputs["county_gaps.json"]).read_text(encoding="utf-8"))
    assert js["model"]["covariates"] == ["urban_share", "upper_secondary_share", "age_50plus_share"]
    # one baseline everywhere: the plan's (2020)
    assert js["inequality"]["first_year"] == 2020 == js["baseline_year"] and js["inequality"]["latest_year"] == 2025
    assert js["inequality"]["interval_method"] == "parametric_bootstrap_percentile"
    m = js["model"]
    assert m["n_areas"] == 9 and m["refvar_se"] > 0 and m["sampling_variance"] == "gvf_pooled_deff"
    assert m["pooled_deff"] == pytest.approx(1.6) and m["mse_method"] == "parametric_bootstrap_fit_and_benchmark"
    # group gaps were built to shrink from 1.0 to 0.5 of their 2020 size
    edu = js["inequality"]["groups"]["education"]
    assert edu["latest"]["range"]["value"] == pytest.approx(22 * 0.5)
    assert edu["first"]["range"]["value"] == pytest.approx(22 * 1.0)
    assert js["imbalance_improved"]["measure"] == "mean_abs_gap"
    assert js["imbalance_improved"]["by"]["education"] == "improved"
    assert js["imbalance_improved"]["measures_agree"]["education"] is True
    # Holm over every unit x measure: raw and adjusted p-values, the verdict on the adjusted one
    changes = [u["change"][k] for u in [js["inequality"]["divisions"], *js["inequality"]["groups"].values()]
               for k in ("range", "cv", "mean_abs_gap")]
    assert js["inequality"]["comparisons"] == len(changes) == 12
    for c in changes:
        assert c["p_holm"] >= c["p_value"]
        assert (c["verdict"] != "no_clear_change") == (c["p_holm"] < 0.05)
    assert {d["division_code"] for d in js["divisions_below_target"]} == set(
        pd.read_parquet(res.outputs["sae.parquet"]).query("benchmarked <= 16")["division_code"])
    figs = root / "processed/zhanjiang/2025/figures"
    assert {p.name for p in figs.glob("*.png")} == {"map_estimate.png", "map_gap.png", "map_change.png",
                                                   "map_cv.png", "map_estimate_years.png"}
    man = json.loads((root / "processed/zhanjiang/2025/manifest-04_county_gaps.json").read_text())
    assert man["stage"] == "04_county_gaps" and len(man["outputs"]) == 8


def test_stage_without_division_education_drops_that_covariate(tmp_path):
    from analysis.county_gaps_stage import division_covariates, read_margins

    raw = make_inputs(tmp_path, years=(2025,), edu_by_division=False)
    plan = load_plan("zhanjiang", raw)
    cov, unavailable = division_covariates(read_margins(plan.census_margins_path), list(plan.division_names))
    assert "upper_secondary_share" in unavailable and "upper_secondary_share" not in cov
    assert cov["urban_share"].between(0, 100).all()


def test_stage_division_without_sample_gets_synthetic_estimate(tmp_path):
    from analysis.county_gaps_stage import run_county_gaps

    raw = make_inputs(tmp_path, years=(2020, 2025))
    path = tmp_path / "processed/zhanjiang/2025/estimates.parquet"
    est = pd.read_parquet(path)
    est.loc[est["level"] == "440804", ["estimate", "se"]] = np.nan   # e.g. blanked by stage 02
    est.to_parquet(path, index=False)
    res = run_county_gaps(load_plan("zhanjiang", raw), 2025, processed_root=tmp_path / "processed", n_boot=200)
    tab = pd.read_parquet(res.outputs["sae.parquet"]).set_index("division_code")
    row = tab.loc["440804"]
    assert not row["in_sample"] and row["shrinkage"] == 1.0
    assert row["fh"] == pytest.approx(row["synthetic"])
    assert row["fh_mse"] > res.summary["model"]["refvar"]
    assert res.summary["model"]["mse_method"] == "prasad_rao_unbenchmarked"
    assert tab["in_sample"].sum() == 8 and res.summary["model"]["divisions_in_sample"] == 8


def test_stage_missing_year_fails_clearly(tmp_path):
    from analysis.catalog import MissingOutput
    from analysis.county_gaps_stage import run_county_gaps

    raw = make_inputs(tmp_path, years=(2021,))
    with pytest.raises(MissingOutput, match="2025.*estimates.parquet|estimates.parquet.*2025"):
        run_county_gaps(load_plan("zhanjiang", raw), 2025, processed_root=tmp_path / "processed")


def test_tables_for_the_report(stage_run):
    from analysis.county_gaps_stage import division_table_zh, inequality_table_zh, model_table_zh

    plan, root, res = stage_run
    tab = division_table_zh(pd.read_parquet(res.outputs["sae.parquet"]))
    assert list(tab["县（市、区）"]) == list(plan.division_names.values())
    assert {"直接估计（%）", "模型估计（%）", "基准化估计（%）"} <= set(tab.columns)
    ineq = inequality_table_zh(res.summary)
    # divisions + urban_rural, sex, education groups, three measures each
    assert len(ineq) == 4 * 3 and set(ineq["判断"]) <= {"明显缩小", "明显扩大", "无明显变化"}
    assert list(model_table_zh(res.summary).index)[0] == "截距"


# ---------------------------------------------------------------- gaps, cut-off, margins encoding

def test_largest_gaps_lists_only_divisions_below_target():
    from analysis.county_gaps_stage import largest_gaps

    tab = pd.DataFrame({"division_code": list("abcdef"), "gap_to_target": [1.5, -0.2, -3.0, 0.0, -1.0, -4.0]})
    assert list(largest_gaps(tab)["division_code"]) == ["f", "c", "e"]
    assert list(largest_gaps(tab, k=5)["division_code"]) == ["f", "c", "e", "b"]  # at target is no gap
    assert largest_gaps(tab.assign(gap_to_target=[0.1, 2, 3, 0, 5, 6])).empty


def test_stage_gap_lists_follow_the_plan(stage_run, tmp_path):
    from analysis.county_gaps_stage import run_county_gaps

    plan, root, res = stage_run
    tab = pd.read_parquet(res.outputs["sae.parquet"])
    js = json.loads(Path(res.outputs["county_gaps.json"]).read_text(encoding="utf-8"))
    below = tab[tab["gap_to_target"] < 0].nsmallest(3, "gap_to_target")
    assert [d["division_code"] for d in js["largest_gaps"]] == list(below["division_code"])
    assert all(d["gap_to_target"] < 0 for d in js["largest_gaps"])
    assert js["p_likely_below"] == plan.settings.report.p_likely_below == 0.9
    assert {d["division_code"] for d in js["divisions_likely_below_target"]} == set(
        tab.loc[tab["p_below_target"] >= 0.9, "division_code"])
    # another cut-off in the plan file moves the list
    raw = make_inputs(tmp_path, years=(2021, 2025))
    yml = raw / "plan" / "zhanjiang.yml"
    text = yml.read_text(encoding="utf-8")
    assert "p_likely_below: 0.9" in text
    yml.write_text(text.replace("p_likely_below: 0.9", "p_likely_below: 0.6"), encoding="utf-8")
    res6 = run_county_gaps(load_plan("zhanjiang", raw), 2025, processed_root=tmp_path / "processed", n_boot=50)
    tab6 = pd.read_parquet(res6.outputs["sae.parquet"])
    likely = {d["division_code"] for d in res6.summary["divisions_likely_below_target"]}
    assert res6.summary["p_likely_below"] == 0.6
    assert likely == set(tab6.loc[tab6["p_below_target"] >= 0.6, "division_code"])
    assert likely > set(tab6.loc[tab6["p_below_target"] >= 0.9, "division_code"])  # the cut-off matters here


def test_bad_likely_below_cutoff_is_refused(tmp_path):
    from analysis.config import PlanError
    from analysis.county_gaps_stage import likely_below_cutoff

    raw = make_inputs(tmp_path, years=(2025,))
    yml = raw / "plan" / "zhanjiang.yml"
    yml.write_text(yml.read_text(encoding="utf-8").replace("p_likely_below: 0.9", "p_likely_below: 90"),
                   encoding="utf-8")
    with pytest.raises(PlanError, match=r"key 'report.p_likely_below': expected a number \(probability\) "
                                        r"in \[0.5, 1\), found 90"):
        likely_below_cutoff(load_plan("zhanjiang", raw))


def test_gbk_census_margins_give_the_same_covariates(tmp_path):
    from analysis.county_gaps_stage import CountyGapsError, division_covariates, read_margins

    raw = make_inputs(tmp_path, years=(2025,))
    plan = load_plan("zhanjiang", raw)
    codes = list(plan.division_names)
    path = plan.census_margins_path
    utf8, _ = division_covariates(read_margins(path), codes)
    path.write_bytes(path.read_text(encoding="utf-8").encode("gbk"))
    gbk, _ = division_covariates(read_margins(path), codes)
    pd.testing.assert_frame_equal(utf8, gbk)
    assert utf8["urban_share"].between(30, 97).all()
    # a damaged population cell names file, line and column
    lines = path.read_text(encoding="gbk").splitlines()
    cells = lines[3].split(",")
    cells[lines[0].split(",").index("population")] = "n/a"
    lines[3] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="gbk")
    with pytest.raises(CountyGapsError, match=r"margins-synthetic.csv: line 4 \(data row 2\), column "
                                              r"'population': value 'n/a'"):
        read_margins(path)
