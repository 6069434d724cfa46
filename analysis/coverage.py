"""Scoring the estimators against the synthetic truth: interval coverage and mean squared error.

One replicate draws an independent survey for each year from the demo population
(``synth_survey.generate_survey`` without faults, so cleaning has nothing to do),
and runs the same code the stages run: harmonise and score (stage 01), rake and
estimate with the calibration-aware variance (stage 02, the ``literate`` indicator
only), Fay–Herriot with smoothed variances and the bootstrap MSE of the
benchmarked estimates (stage 04's ``fit_year``), and the trend with its model rule
(stage 03). Each estimate is then compared with the population's true value.
benchmarks/bench_coverage.py runs many replicates and prints the summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from . import trajectory as tr
from .county_gaps_stage import fit_year
from .estimate_stage import design_for, estimate_table
from .harmonise import harmonise
from .scoring import score
from .synth_survey import Population, generate_survey, population_truth
from .weighting import calibrate, margins_from_census, weighting_settings

SCORE_COLUMNS = ("level", "score_total", "score_knowledge", "score_method", "score_spirit",
                 "score_application")


@dataclass
class World:
    """What every replicate shares: plan, questionnaire, margins, population, truth, covariates."""

    plan: Any
    questionnaire: pd.DataFrame
    margins: pd.DataFrame
    population: Population
    truth: pd.DataFrame
    covariates: pd.DataFrame
    covariate_names: list[str]
    national: pd.Series


def survey_estimates(world: World, year: int, n: int, seed: int) -> pd.DataFrame:
    """The stage-02 estimates table (``literate`` only) of one fault-free simulated survey."""
    plan = world.plan
    raw, _ = generate_survey(plan, year, n, seed, questionnaire=world.questionnaire, margins=world.margins,
                             faults=False, population=world.population)
    raw.insert(0, "row", np.arange(len(raw)))
    df = score(harmonise(raw, plan), world.questionnaire, plan, year).reset_index(drop=True)
    df = df.drop(columns=[c for c in SCORE_COLUMNS if c in df.columns])
    settings = weighting_settings(plan)
    margins = margins_from_census(world.margins, settings["margins"])
    result, _ = calibrate(df, margins, settings)
    design = design_for(df, result.weights, plan, result.codes, result.method)
    return estimate_table(df, design, plan, year)


def with_truth(est: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Estimates joined to the true value of their year, domain and level; covered flag."""
    t = truth[["year", "domain", "level", "true_share"]].astype({"level": str})
    out = est.astype({"level": str}).merge(t, on=["year", "domain", "level"], how="inner", validate="one_to_one")
    out["covered"] = (out["ci_low"] <= out["true_share"]) & (out["true_share"] <= out["ci_high"])
    out["has_interval"] = out["ci_low"].notna() & out["ci_high"].notna()
    return out


def division_models(world: World, est_by_year: dict[int, pd.DataFrame], n_boot: int, seed: int) -> pd.DataFrame:
    """Stage 04's Fay–Herriot rows (smoothed variances, bootstrap MSE) for every year, with the truth."""
    from .county_gaps_stage import pooled_division_deff

    est_all = pd.concat(est_by_year.values(), ignore_index=True)
    deff = pooled_division_deff(world.plan, est_all)
    rows = []
    for year, est in est_by_year.items():
        t, _ = fit_year(world.plan, year, est, world.covariates, world.covariate_names, deff, n_boot=n_boot,
                        seed=seed)
        rows.append(t)
    tab = pd.concat(rows, ignore_index=True)
    tr_ = world.truth[world.truth["domain"] == "division"][["year", "level", "true_share"]]
    tab = tab.merge(tr_.rename(columns={"level": "division_code"}), on=["year", "division_code"])
    tab["fh_covered"] = (tab["ci_low"] <= tab["true_share"]) & (tab["true_share"] <= tab["ci_high"])
    return tab


def trend_forecasts(world: World, city: pd.DataFrame, target_year: int, backtest: dict | None) -> list[dict]:
    """The stage-03 headline model fitted to years before target_year (one and two years ahead)."""
    out = []
    truth = world.truth
    true_ty = float(truth[(truth["domain"] == "city") & (truth["year"] == target_year)]["true_share"].iloc[0])
    for ahead in (1, 2):
        obs = city[city["year"] <= target_year - ahead].sort_values("year").reset_index(drop=True)
        if len(obs) < 3:
            continue
        comparison = tr.compare_models(obs, world.national)
        chosen, _ = tr.choose_model(comparison, backtest, float(np.median(obs["se"])))
        p = tr.fit_model(chosen, obs, world.national).predict([target_year]).iloc[0]
        out.append({"ahead": ahead, "model": chosen, "forecast": float(p["estimate"]),
                    "lower": float(p["lower"]), "upper": float(p["upper"]), "truth": true_ty,
                    "covered": bool(p["lower"] <= true_ty <= p["upper"])})
    return out


def replicate(world: World, years: list[int], n: int, seed: int, n_boot: int, backtest: dict | None
              ) -> dict[str, pd.DataFrame]:
    """One replicate: a survey per year, every estimator scored against the truth."""
    est_by_year = {y: survey_estimates(world, y, n, seed * 1000 + y) for y in years}
    direct = with_truth(pd.concat(est_by_year.values(), ignore_index=True), world.truth)
    fh = division_models(world, est_by_year, n_boot, seed)
    city = direct[direct["domain"] == "city"][["year", "estimate", "se"]]
    same_rule = [y for y in years if world.plan.scoring_rule(y) == world.plan.scoring_rule(max(years))]
    trend = pd.DataFrame(trend_forecasts(world, city[city["year"].isin(same_rule)], max(years), backtest))
    for t in (direct, fh, trend):
        t["replicate"] = seed
    return {"direct": direct, "fh": fh, "trend": trend}


def make_world(plan: Any, seed: int, national: pd.Series) -> World:
    """The demo population (same seed as the demo) and stage 04's covariates."""
    from .county_gaps_stage import DEFAULT_COVARIATES, division_covariates
    from .synth_census import census_margins
    from .synth_survey import build_population, make_questionnaire

    q = make_questionnaire(plan, seed)
    margins = census_margins(plan)
    pop = build_population(plan, seed, q, margins)
    codes = [str(d["code"]) for d in plan.divisions]
    covars, unavailable = division_covariates(margins, codes)
    names = [c for c in DEFAULT_COVARIATES if c not in unavailable]
    return World(plan=plan, questionnaire=q, margins=margins, population=pop,
                 truth=population_truth(plan, pop), covariates=covars[["population", *names]],
                 covariate_names=names, national=national)


def summarise(direct: pd.DataFrame, fh: pd.DataFrame, trend: pd.DataFrame) -> dict[str, Any]:
    """Coverage of the 95% intervals and the relative MSE of Fay–Herriot against direct."""
    def cov(d: pd.DataFrame) -> dict[str, float]:
        with_ci = d[d["has_interval"]] if "has_interval" in d else d
        return {"coverage": float(with_ci["covered"].mean()) if len(with_ci) else float("nan"),
                "cells": int(len(with_ci)), "no_interval": int(len(d) - len(with_ci))}

    out: dict[str, Any] = {"city": cov(direct[direct["domain"] == "city"]),
                           "division_direct": cov(direct[direct["domain"] == "division"])}
    groups = direct[~direct["domain"].isin(["city", "division"])]
    out["groups"] = cov(groups)
    out["groups_published"] = cov(groups[~groups["suppressed"].astype(bool)])
    out["groups_by_domain"] = {d: cov(g) for d, g in groups.groupby("domain")}
    out["division_fh"] = {"coverage": float(fh["fh_covered"].mean()), "cells": int(len(fh)), "no_interval": 0}
    err_direct = (fh["direct"] - fh["true_share"]) ** 2
    err_fh = (fh["benchmarked"] - fh["true_share"]) ** 2
    by_div = pd.DataFrame({"division": fh["division_code"], "direct": err_direct, "fh": err_fh}).groupby(
        "division")[["direct", "fh"]].mean()
    out["mse_direct"] = float(err_direct.mean())
    out["mse_fh"] = float(err_fh.mean())
    out["relative_mse_fh_to_direct"] = float(err_fh.mean() / err_direct.mean())
    out["relative_mse_by_division"] = (by_div["fh"] / by_div["direct"]).round(3).to_dict()
    out["trend"] = {int(a): {"coverage": float(g["covered"].mean()), "cells": int(len(g)),
                             "models": g["model"].value_counts().to_dict()}
                    for a, g in trend.groupby("ahead")} if len(trend) else {}
    z = (direct["estimate"] - direct["true_share"]) / direct["se"]
    out["city_mean_z"] = float(z[direct["domain"] == "city"].mean())
    return out
