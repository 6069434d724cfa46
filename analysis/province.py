"""The cities of a province side by side: league table, provincial estimate, rank uncertainty.

Provincial estimate: the cities are strata, each sampled on its own, so the
province's share is the population-weighted mean of the cities' design-based
estimates, sum(W_c p_c) with W_c = N_c / N (N_c the city's population aged
18-69, the total its weights are raked to), and its variance is
sum(W_c^2 var_c): the estimator of R's ``svycontrast(svyby(~y, ~city, design,
svymean), W)`` on the pooled design with strata nested in cities
(tests/fixtures/province_r, made by r/make_province_fixture.R). A year in
which some cities have no survey is estimated over the cities that have one,
with weights renormalised over them, and says how much of the population it
covers.

Rank uncertainty: draws from each city's sampling distribution (normal with
its standard error, independent between cities) ranked in every draw; the
probability of each rank and the 2.5-97.5% interval of a city's rank.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from . import catalog
from .config import Plan
from .errors import UserError

INDICATOR = "literate"
DOMAIN = "city"
RANK_DRAWS = 20_000
RANK_SEED = 20250101


class ProvinceDataError(UserError):
    """A city's results are missing or do not fit together."""


def adult_population(plan: Plan) -> float:
    """The city's population aged 18-69: the total of its census margins (what its weights add to)."""
    path = plan.census_margins_path
    if not path.exists():
        raise ProvinceDataError(f"{plan.city}: census margins {path} not found (population weight of the city)")
    m = pd.read_csv(path, dtype={"division_code": str}, encoding="utf-8-sig")
    du = m[m["margin"] == m["margin"].iloc[0]]
    return float(du["population"].sum())


def city_estimates(plan: Plan, year: int, processed_root: Path) -> pd.DataFrame:
    """The city's literacy estimate in every survey year up to `year` that has one."""
    rows = []
    for y in plan.survey_years:
        if y > year:
            continue
        path = catalog.output_path(plan, "estimates.parquet", y, processed_root)
        if not path.exists():
            continue
        e = catalog.read_table(plan, "estimates.parquet", y, processed_root)
        e = e[(e["indicator"] == INDICATOR) & (e["domain"] == DOMAIN) & (e["year"] == y)]
        if len(e) != 1:
            raise ProvinceDataError(f"{path}: expected one {INDICATOR}/{DOMAIN} row, found {len(e)}")
        r = e.iloc[0]
        rows.append({"city": plan.city, "year": int(y), "estimate": float(r["estimate"]), "se": float(r["se"]),
                     "ci_low": float(r["ci_low"]), "ci_high": float(r["ci_high"]), "n": int(r["n"])})
    if not rows:
        raise ProvinceDataError(f"{plan.city}: no estimates.parquet up to {year} under {processed_root}")
    return pd.DataFrame(rows)


def city_row(plan: Plan, year: int, processed_root: Path) -> dict[str, Any]:
    """One league-table row: latest rate with interval, change since baseline, P(target), task completion."""
    traj = catalog.read_json(plan, "trajectory.json", year, processed_root)
    prog = catalog.read_json(plan, "progress.json", year, processed_root)
    return {
        "city": plan.city, "code": plan.code, "name_zh": plan.name_zh,
        "name_en": plan.settings.city.name_en or plan.city,
        "synthetic": plan.settings.city.synthetic,
        "population": adult_population(plan),
        "latest_year": int(traj["latest_year"]), "latest_estimate": float(traj["latest_estimate"]),
        "latest_se": float(traj["latest_se"]),
        "latest_ci_low": float(traj["latest_ci"][0]), "latest_ci_high": float(traj["latest_ci"][1]),
        "baseline_year": int(traj["baseline_year"]), "baseline": float(traj["baseline"]),
        "change_since_baseline_pp": float(traj["change_since_baseline_pp"]),
        "target": float(traj["target"]), "target_year": int(traj["target_year"]),
        "p_exceeds_target": float(traj["headline"]["p_exceeds_target"]),
        "measures_completed_share": float(prog["completed_share"]),
        "mean_completion": float(prog["mean_completion"]),
        "measures_overdue": int(prog["overdue_count"]),
    }


def league_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Cities ordered by their latest rate (highest first), with the point-estimate rank."""
    if not rows:
        raise ProvinceDataError("no city results to compare")
    t = pd.DataFrame(rows).sort_values(["latest_estimate", "city"], ascending=[False, True], ignore_index=True)
    t.insert(0, "rank", np.arange(1, len(t) + 1))
    t["population_share"] = t["population"] / t["population"].sum()
    return t


def provincial_estimate(est: pd.DataFrame, population: dict[str, float], level: float = 0.95) -> pd.DataFrame:
    """Per year: the population-weighted mean of the city estimates and its standard error.

    est: rows (city, year, estimate, se); population: city -> N_c. Returns year, estimate, se,
    ci_low, ci_high (normal), n_cities, population_covered (share of all cities' population).
    """
    missing = sorted(set(est["city"]) - set(population))
    if missing:
        raise ProvinceDataError(f"no population for cities {missing}")
    total = float(sum(population.values()))
    z = stats.norm.ppf(0.5 + level / 2)
    rows = []
    for year, g in est.groupby("year", sort=True):
        n_c = g["city"].map(population).to_numpy(float)
        w = n_c / n_c.sum()
        p = float(np.sum(w * g["estimate"].to_numpy(float)))
        se = float(np.sqrt(np.sum(w**2 * g["se"].to_numpy(float) ** 2)))
        rows.append({"year": int(year), "estimate": p, "se": se, "ci_low": p - z * se, "ci_high": p + z * se,
                     "n_cities": len(g), "population_covered": float(n_c.sum() / total)})
    return pd.DataFrame(rows)


def rank_uncertainty(table: pd.DataFrame, draws: int = RANK_DRAWS, seed: int = RANK_SEED,
                     estimate: str = "latest_estimate", se: str = "latest_se",
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, probabilities). summary: city, rank (point estimate), median rank, 95% rank interval,
    P(top 3), P(bottom 3); probabilities: city x rank matrix of P(rank = k) (rows add to 1).
    Rank 1 is the highest rate; ties in a draw (measure zero) are broken by order."""
    rng = np.random.default_rng(seed)
    mu = table[estimate].to_numpy(float)
    sd = table[se].to_numpy(float)
    k = len(mu)
    sims = rng.normal(mu, sd, size=(draws, k))
    ranks = (-sims).argsort(axis=1).argsort(axis=1) + 1          # rank of each city in each draw
    probs = np.stack([(ranks == r).mean(axis=0) for r in range(1, k + 1)], axis=1)
    cities = table["city"].tolist()
    point = (-mu).argsort().argsort() + 1
    summary = pd.DataFrame({
        "city": cities, "rank": point,
        "rank_median": np.median(ranks, axis=0),
        "rank_low": np.quantile(ranks, 0.025, axis=0, method="inverted_cdf").astype(int),
        "rank_high": np.quantile(ranks, 0.975, axis=0, method="inverted_cdf").astype(int),
        "p_top3": (ranks <= 3).mean(axis=0), "p_bottom3": (ranks > k - 3).mean(axis=0),
        "p_rank_as_point": probs[np.arange(k), point - 1],
    })
    prob = pd.DataFrame(probs, columns=[f"rank_{r}" for r in range(1, k + 1)])
    prob.insert(0, "city", cities)
    return summary, prob


def against_published(prov: pd.DataFrame, bench: pd.DataFrame, scope: str) -> pd.DataFrame:
    """The provincial estimate beside the province's published rates (observed years) and its target."""
    obs = bench[(bench["scope"] == scope) & (bench["kind"] == "observed")][["year", "value", "source"]]
    t = prov.merge(obs.rename(columns={"value": "published"}), on="year", how="outer").sort_values("year")
    t["difference_pp"] = t["estimate"] - t["published"]
    inside = (t["published"] >= t["ci_low"]) & (t["published"] <= t["ci_high"])
    t["published_in_interval"] = inside.astype("boolean").mask(t["published"].isna() | t["estimate"].isna())
    return t.reset_index(drop=True)


def p_above(estimate: float, se: float, threshold: float) -> float:
    """P(true rate > threshold) under the normal sampling distribution of the estimate."""
    return float(stats.norm.sf(threshold, loc=estimate, scale=se)) if se > 0 else float(estimate > threshold)
