"""Trend models: recovery of a known trend, interval coverage, the national backtest,
P(target), the plan's implied path, group gaps, and the stage end to end."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects

from analysis import benchmarks as bm
from analysis import trajectory as tr
from analysis.config import load_plan

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "trajectory"))
import synth  # noqa: E402


def simulate(rng, years, a, b, tau=0.0, n=3000, deff=1.5, link="logit"):
    """Survey estimates (percent) around a true trend; returns obs and the true values."""
    t = np.asarray(years, float) - years[0]
    eta = a + b * t + rng.normal(0, tau, len(t))
    p = tr.expit_pct(eta) / 100 if link == "logit" else eta / 100
    se = np.sqrt(p * (1 - p) * deff / n)
    est = np.clip(p + rng.normal(0, se), 1e-4, 0.9999)
    se_hat = np.sqrt(est * (1 - est) * deff / n)
    return pd.DataFrame({"year": list(years), "estimate": 100 * est, "se": 100 * se_hat})


# ------------------------------------------------------------------ recovery

def test_noiseless_logit_trend_is_recovered_exactly():
    years = np.arange(2020, 2026)
    est = tr.expit_pct(tr.logit_pct(10.0) + 0.1 * (years - 2020))
    obs = pd.DataFrame({"year": years, "estimate": est, "se": 0.5})
    fit = tr.fit_model("logit_linear", obs, t0=2020)
    np.testing.assert_allclose(fit.params, [tr.logit_pct(10.0), 0.1], atol=1e-10)
    assert fit.tau2 == 0.0
    assert fit.predict([2030])["estimate"].iloc[0] == pytest.approx(
        float(tr.expit_pct(tr.logit_pct(10.0) + 1.0)), abs=1e-8)


def test_interval_never_narrower_than_the_surveys_allow():
    """Points exactly on a line make the Knapp–Hartung scale 0; the interval then falls
    back to the normal one with the survey variances taken as known."""
    years = np.arange(2020, 2026)
    y = tr.logit_pct(10.0) + 0.1 * (years - 2020)
    obs = pd.DataFrame({"year": years, "estimate": tr.expit_pct(y), "se": 0.5})
    fit = tr.fit_model("logit_linear", obs, t0=2020)
    _, s = tr._to_link(obs["estimate"], obs["se"], "logit")
    x = np.column_stack([np.ones(6), years - 2020.0])
    v = np.array([1.0, 7.0]) @ np.linalg.inv(x.T @ (x / s[:, None] ** 2)) @ np.array([1.0, 7.0])
    p = fit.predict([2027]).iloc[0]
    mean = tr.logit_pct(p["estimate"])
    assert tr.logit_pct(p["upper"]) - mean == pytest.approx(1.959964 * np.sqrt(v), rel=1e-5)
    assert fit.p_above(2027, p["upper"]) == pytest.approx(0.025, abs=1e-9)


def test_models_recover_a_known_trend_from_simulated_surveys():
    rng = np.random.default_rng(7)
    slopes = {"logit_linear": [], "linear_pp": []}
    for _ in range(100):
        obs = simulate(rng, np.arange(2020, 2026), tr.logit_pct(10.0), 0.10, n=20000)
        slopes["logit_linear"].append(tr.fit_model("logit_linear", obs).slope)
        lin = simulate(rng, np.arange(2020, 2026), 10.0, 1.2, n=20000, link="identity")
        slopes["linear_pp"].append(tr.fit_model("linear_pp", lin).slope)
    assert np.mean(slopes["logit_linear"]) == pytest.approx(0.10, abs=0.005)
    assert np.mean(slopes["linear_pp"]) == pytest.approx(1.2, abs=0.05)


def test_national_gap_model_recovers_the_gap_trend():
    nat = bm.series(bm.load_benchmarks(), "national")
    years = np.array([2015, 2018, 2020, 2022, 2023, 2024])
    gap = -0.3 + 0.05 * (years - 2020)
    est = tr.expit_pct(tr.logit_pct(nat.loc[years].to_numpy()) + gap)
    obs = pd.DataFrame({"year": years, "estimate": est, "se": 0.4})
    fit = tr.fit_model("national_gap", obs, nat, t0=2020)
    np.testing.assert_allclose(fit.params, [-0.3, 0.05], atol=1e-10)
    # in the published range the model returns national + gap exactly
    assert fit.predict([2023])["estimate"].iloc[0] == pytest.approx(est[4], abs=1e-8)


def test_dl_tau2_matches_statsmodels_meta_analysis():
    y = np.array([0.1, 0.3, 0.2, 0.5, 0.05])
    v = np.array([0.01, 0.02, 0.015, 0.01, 0.03])
    ref = combine_effects(y, v, method_re="dl").tau2
    assert tr.dl_tau2(np.ones((5, 1)), y, np.sqrt(v)) == pytest.approx(ref, rel=1e-12)


# ------------------------------------------------------------------ coverage

@pytest.mark.parametrize("tau", [0.0, 0.1])
def test_interval_coverage_is_near_nominal(tau):
    """200 simulated six-year series: the 95% and 80% intervals for the true share two
    years ahead cover it at close to their nominal rates."""
    rng = np.random.default_rng(2024 + int(tau * 100))
    years = np.arange(2020, 2026)
    a, b = tr.logit_pct(10.0), 0.1
    hits = {0.95: 0, 0.8: 0}
    reps = 200
    for _ in range(reps):
        obs = simulate(rng, years, a, b, tau)
        truth = float(tr.expit_pct(a + b * 7 + rng.normal(0, tau)))
        fit = tr.fit_model("logit_linear", obs)
        for lv in hits:
            p = fit.predict([2027], lv).iloc[0]
            hits[lv] += p["lower"] <= truth <= p["upper"]
    assert abs(hits[0.95] / reps - 0.95) <= 0.05
    assert abs(hits[0.8] / reps - 0.80) <= 0.08


# ------------------------------------------------------------------ backtest

def test_backtest_on_published_national_series():
    nat = bm.series(bm.load_benchmarks(), "national")
    bt = tr.backtest(nat, 2020, [2022, 2023, 2024])
    lg = bt["logit_linear"]
    assert lg["fit_years"] == [2003, 2005, 2007, 2010, 2015, 2018, 2020]
    errs = [lg["by_year"][y]["error_pp"] for y in ("2022", "2023", "2024")]
    np.testing.assert_allclose(errs, [-0.2286, -0.0793, 0.1696], atol=5e-5)
    assert [lg["by_year"][y]["published"] for y in ("2022", "2023", "2024")] == [12.93, 14.14,
                                                                                  15.37]
    assert lg["mae_pp"] == pytest.approx(0.1591, abs=5e-5)
    assert all(v["inside_interval"] for v in lg["by_year"].values())
    lin = bt["linear_pp"]
    np.testing.assert_allclose([lin["by_year"][y]["error_pp"] for y in ("2022", "2023", "2024")],
                               [-2.3870, -3.0777, -3.7883], atol=5e-5)
    # independent check: numpy least squares on the logit of the published figures
    y = nat[nat.index <= 2020]
    coef = np.polyfit(y.index, tr.logit_pct(y.to_numpy()), 1)
    assert lg["by_year"]["2024"]["predicted"] == pytest.approx(
        float(tr.expit_pct(np.polyval(coef, 2024))), abs=1e-9)


# ------------------------------------------------------------------ target, path

def test_p_above_is_monotone_in_the_forecast_and_the_threshold():
    years = np.arange(2020, 2026)
    ps = []
    for shift in np.linspace(-0.25, 0.25, 11):
        est = tr.expit_pct(tr.logit_pct(10.0) + shift + 0.1 * (years - 2020) +
                           0.02 * np.sin(years))
        fit = tr.fit_model("logit_linear", pd.DataFrame({"year": years, "estimate": est,
                                                         "se": 1.5}))
        ps.append(fit.p_above(2025, 16.0))
    assert np.all(np.diff(ps) > 0) and ps[0] < 0.5 < ps[-1]
    by_thr = [fit.p_above(2025, t) for t in (10, 14, 16, 20, 30)]
    assert np.all(np.diff(by_thr) < 0)
    # the point forecast equals the threshold -> probability one half
    f = fit.predict([2025])["estimate"].iloc[0]
    assert fit.p_above(2025, f) == pytest.approx(0.5, abs=1e-9)


def test_p_direct_above():
    assert tr.p_direct_above(16.0, 0.7, 16.0) == pytest.approx(0.5)
    assert tr.p_direct_above(17.4, 0.7, 16.0) > 0.95 > tr.p_direct_above(16.5, 0.7, 16.0)
    # the probability uses the t of the estimate's own interval (stage 02's df): at its lower end it is 0.975
    from analysis.estimate import confidence_interval

    est, se, df = 14.0, 0.9, 40
    low, _ = confidence_interval([est / 100], [se / 100], [df], share=True)
    assert tr.p_direct_above(est, se, float(low[0]) * 100, df) == pytest.approx(0.975, abs=1e-9)
    assert tr.p_direct_above(est, se, float(low[0]) * 100, 0) > 0.975  # a normal would overstate it


def test_between_year_variance_test():
    years = np.arange(2020, 2026)
    se = np.full(6, 0.05)
    y = 0.1 * (years - 2020) + np.array([0.05, -0.04, 0.06, -0.05, 0.04, -0.06])  # wobble ~ 1 SE
    fit = tr.fit_trend(years, y, se, link="identity")
    x = np.column_stack([np.ones(6), years - years.mean()])
    w = 1 / se**2
    beta = np.linalg.solve(x.T @ (w[:, None] * x), x.T @ (w * y))
    q = float(np.sum(w * (y - x @ beta) ** 2))
    h = fit.heterogeneity()
    assert h["q"] == pytest.approx(q) and h["df"] == 4
    assert h["p_value"] == pytest.approx(stats.chi2.sf(q, 4))
    assert h["tau2"] == pytest.approx(max(0.0, tr.dl_tau2(x, y, se)))
    assert h["estimated_zero"] == (q <= 4)
    tight = tr.fit_trend(years, 0.1 * (years - 2020), se, link="identity").heterogeneity()
    assert tight["estimated_zero"] and tight["q"] < 1e-12 and tight["p_value"] == pytest.approx(1.0)


def test_implied_path_and_year_reached():
    path = tr.implied_path(10.0, 2020, 16.0, 2025)
    assert path[2020] == 10.0 and path[2025] == pytest.approx(16.0)
    assert path[2021] == pytest.approx(10.0 * 1.6 ** 0.2)  # 9.856% a year
    assert path[2023] == pytest.approx(13.2578, abs=1e-4)
    years = np.arange(2020, 2025)
    obs = pd.DataFrame({"year": years, "estimate": [path[y] for y in years], "se": 0.5})
    fit = tr.fit_model("linear_pp", obs)  # slope about 1.14 pp a year
    assert tr.year_reached(fit, 16.0, 2020, 2027) == 2026
    assert tr.year_reached(fit, 16.0, 2020, 2025) is None  # not within the horizon
    flat = pd.DataFrame({"year": years, "estimate": 9.0, "se": 0.5})
    assert tr.year_reached(tr.fit_model("logit_linear", flat), 16.0, 2020, 2027) is None
    with pytest.raises(tr.TrajectoryError):
        tr.implied_path(10.0, 2025, 16.0, 2020)


def test_loyo_measures_the_functional_form():
    years = np.arange(2014, 2026)
    curved = tr.expit_pct(tr.logit_pct(3.0) + 0.2 * (years - 2014))  # strongly convex
    obs = pd.DataFrame({"year": years, "estimate": curved, "se": 0.2})
    cmp_ = tr.compare_models(obs, None)
    assert cmp_["logit_linear"]["loyo_rmse_pp"] < 1e-8 < cmp_["linear_pp"]["loyo_rmse_pp"]
    e = np.array(list(cmp_["linear_pp"]["loyo_errors_pp"].values()))
    assert cmp_["linear_pp"]["loyo_rms_z"] == pytest.approx(np.sqrt(np.mean((e / 0.2) ** 2)))


def test_choose_model_needs_both_backtest_and_loyo():
    cmp_ = {"logit_linear": {"loyo_rmse_pp": 0.9}, "linear_pp": {"loyo_rmse_pp": 0.05},
            "national_gap": {"loyo_rmse_pp": 0.01}}
    bt_bad = {"logit_linear": {"rmse_pp": 0.5}, "linear_pp": {"rmse_pp": 3.0}}
    bt_good = {"logit_linear": {"rmse_pp": 0.5}, "linear_pp": {"rmse_pp": 0.3}}
    # a tiny LOYO error alone (an overfit short series) does not win
    assert tr.choose_model(cmp_, bt_bad, 0.7) == ("logit_linear", "default_not_beaten")
    # national_gap has no national backtest: never displaces the default
    assert tr.choose_model(cmp_, None, 0.1) == ("logit_linear", "default_not_beaten")
    # better on both, by more than the sampling SE on the city's series
    assert tr.choose_model(cmp_, bt_good, 0.7) == ("linear_pp", "beats_default_out_of_sample")
    assert tr.choose_model(cmp_, bt_good, 0.9) == ("logit_linear", "default_not_beaten")
    assert tr.choose_model({"linear_pp": {"loyo_rmse_pp": 1.0}}, None, 0.5) == ("linear_pp",
                                                                                  "default_unavailable")


def test_rule_indicator_learns_only_the_slope_from_old_rule_years():
    years = np.array([2016, 2018, 2020, 2021])
    old = np.array([True, True, False, False])
    y = tr.logit_pct(10.0) + 0.1 * (years - 2020) - 0.4 * old  # old rule reads lower
    obs = pd.DataFrame({"year": years, "estimate": tr.expit_pct(y), "se": 0.5,
                        "old_rule": old})
    fit = tr.fit_model("logit_linear", obs, t0=2020)
    assert fit.rule_dummy
    np.testing.assert_allclose(fit.params, [tr.logit_pct(10.0), 0.1, -0.4], atol=1e-10)


def test_gap_trend_verdicts():
    years = np.arange(2020, 2026)
    city = pd.DataFrame({"year": years, "estimate": 10 + 1.2 * (years - 2020), "se": 0.3})

    def grp(gap):
        return city.assign(estimate=city["estimate"] + gap)

    closing = tr.gap_trend(grp(-6 + 1.0 * (years - 2020)), city)  # below, catching up
    assert closing["verdict"] == "closing" and closing["slope_pp_per_year"] == pytest.approx(1.0)
    widening = tr.gap_trend(grp(-2 - 1.0 * (years - 2020)), city)
    assert widening["verdict"] == "widening"
    above_closing = tr.gap_trend(grp(6 - 1.0 * (years - 2020)), city)
    assert above_closing["verdict"] == "closing"
    wobble = np.array([0.3, -0.2, 0.1, -0.3, 0.2, -0.1])
    assert tr.gap_trend(grp(-4 + wobble), city)["verdict"] == "no_clear_change"
    assert tr.gap_trend(grp(-4)[:2], city)["verdict"] == "insufficient_years"


def test_fit_errors_are_clear():
    with pytest.raises(tr.TrajectoryError, match="at least 2 distinct years"):
        tr.fit_model("logit_linear", pd.DataFrame({"year": [2020], "estimate": [10.0],
                                                   "se": [0.5]}))
    with pytest.raises(tr.TrajectoryError, match="standard errors must be positive"):
        tr.fit_model("logit_linear", pd.DataFrame({"year": [2020, 2021, 2022],
                                                   "estimate": [10.0, 11, 12],
                                                   "se": [0.5, 0.0, 0.5]}))
    with pytest.raises(tr.TrajectoryError, match="unknown model"):
        tr.fit_model("cubic", pd.DataFrame({"year": [2020, 2021], "estimate": [1, 2],
                                            "se": [1, 1]}))


# ------------------------------------------------------------------ the stage

@pytest.fixture(scope="module")
def stage_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("processed")
    plan = load_plan("zhanjiang")
    synth.write_processed(root, plan.city, plan.survey_years, n=2500)
    return plan, root


def test_stage_with_target_year_observed(stage_root):
    from analysis.trajectory_stage import run_trajectory

    plan, root = stage_root
    res = run_trajectory(plan, 2025, root).summary
    out = root / plan.city / "2025"
    on_disk = json.loads((out / "trajectory.json").read_text(encoding="utf-8"))
    assert on_disk == res
    est = pd.read_parquet(out / "estimates.parquet").query("domain == 'city'")
    assert res["latest_year"] == 2025
    assert res["latest_estimate"] == pytest.approx(est["estimate"].iloc[0], abs=1e-4)
    assert res["fit_years"] == [2020, 2021, 2022, 2023, 2024, 2025]  # same rule only
    assert res["rule_handling"] == "same_rule"
    head = res["headline"]
    assert head["basis"] == "direct_estimate" and head["reference"] == "t" and head["df"] > 30
    t_row = est.iloc[0]
    assert head["p_exceeds_target"] == pytest.approx(
        tr.p_direct_above(t_row["estimate"], t_row["se"], 16.0, head["df"]), abs=1e-4)
    assert head["interval"] == pytest.approx([t_row["ci_low"], t_row["ci_high"]], abs=1e-4)
    # exactly one headline probability; the models' own ones live under methods
    assert [k for k in res if "p_" in k and "exceed" in k] == []
    assert res["model_chosen"] in res["methods"]["models"]
    assert res["model_chosen_reason"] in ("default_not_beaten", "beats_default_out_of_sample")
    bv = res["between_year_variance"]
    assert bv["test"] == "cochran_q_chi2" and bv["df"] == 4 and 0 <= bv["p_value"] <= 1
    assert bv["estimated_zero"] == (bv["tau2"] == 0)
    lo, hi = res["forecast_interval"]
    assert lo < res["forecast"] < hi
    assert set(res["implied_path"]) == {str(y) for y in range(2020, 2026)}
    assert res["gap_to_implied"]["2025"] == pytest.approx(res["latest_estimate"] - 16.0,
                                                          abs=1e-3)
    assert res["ex_ante"]["fit_years"] == [2020, 2021, 2022, 2023, 2024]
    assert res["methods"]["backtest"]["logit_linear"]["by_year"]["2024"]["error_pp"] == pytest.approx(
        0.1696, abs=1e-4)
    # decomposition adds up to the change in the city estimate between 2020 and 2025
    d = res["decomposition"]
    e2020 = pd.read_parquet(root / plan.city / "2020" / "estimates.parquet")
    change = res["latest_estimate"] - e2020.query("domain == 'city'")["estimate"].iloc[0]
    assert d["total_change_pp"] == pytest.approx(change, abs=1e-3)
    assert d["composition_pp"] + d["within_pp"] == pytest.approx(d["total_change_pp"], abs=1e-4)
    assert d["composition_pp"] > 0  # the synthetic population grows more educated
    assert res["groups"]["urban_rural"]["gaps"]  # one urban-rural gap
    assert set(res["groups"]["key_group"]["levels"]) == {"farmers", "workers", "elderly",
                                                         "officials"}
    series = pd.read_parquet(out / "trajectory_series.parquet")
    assert list(series.columns[:6]) == ["series", "year", "estimate", "lower", "upper", "kind"]
    fc = series.query("series == 'city' and kind == 'forecast'")
    assert fc["year"].min() == 2026 and fc["year"].max() == 2027 and (fc["lower"] < fc["estimate"]).all()
    fitted = series.query("series == 'city' and kind == 'fitted'")
    assert fitted["year"].max() == 2025
    assert res["forecast_final_year"] == 2027 and res["forecast_kind"] == "fitted"
    dec = pd.read_parquet(out / "decomposition.parquet")
    ss = dec.query("method == 'shift_share'").set_index("component")["value_pp"]
    assert ss["composition"] + ss["within"] == pytest.approx(ss["total"], abs=1e-12)
    manifest = json.loads((out / "manifest-03_trajectory.json").read_text(encoding="utf-8"))
    assert any(k.endswith("figures/fan_chart.png") for k in manifest["outputs"])
    assert any(k.endswith("benchmarks/published.csv") for k in manifest["inputs"])


def test_stage_before_target_year_forecasts(stage_root):
    from analysis.trajectory_stage import run_trajectory

    plan, root = stage_root
    res = run_trajectory(plan, 2023, root).summary
    assert res["latest_year"] == 2023 and res["ex_ante"] is None
    head = res["headline"]
    assert head["basis"] == "model_forecast" and head["model"] == res["model_chosen"]
    assert head["p_exceeds_target"] == res["methods"]["models"][res["model_chosen"]]["p_exceeds_target"]
    assert head["interval"] == res["forecast_interval"] and res["forecast_kind"] == "forecast"
    assert res["rule_handling"] == "same_rule" and res["fit_years"][0] == 2020
    assert set(res["forecast_horizon"]) == {str(y) for y in range(2024, 2028)}
    assert res["forecast_horizon"]["2025"]["forecast"] == res["forecast"]


def test_stage_with_few_same_rule_years_uses_the_rule_indicator(stage_root):
    from analysis.trajectory_stage import run_trajectory

    plan, root = stage_root
    res = run_trajectory(plan, 2021, root).summary
    assert res["rule_handling"] == "indicator"
    assert res["fit_years"] == [2016, 2018, 2020, 2021]
    # gaps are compared on current-rule years only: two years are not enough
    gap = next(iter(res["groups"]["urban_rural"]["gaps"].values()))
    assert gap["verdict"] == "insufficient_years" and gap["years"] == [2020, 2021]


def test_stage_without_estimates_names_the_folder(tmp_path):
    from analysis.catalog import MissingOutput
    from analysis.trajectory_stage import run_trajectory

    with pytest.raises(MissingOutput, match="run stage 02 first"):
        run_trajectory(load_plan("zhanjiang"), 2025, tmp_path)
