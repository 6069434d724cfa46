"""The latent population behind the synthetic demo, and its true path over the years.

A large self-weighting draw from the population model (``POPULATION_N`` adults
allocated to the strata in proportion to their size, no non-response, every
person with their own cluster effect) stands in for the population. Each
person's answers follow the ability model of ``synth_survey`` (3PL items); for
each scoring rule the person is literate in year y iff the year's intercept
plus the person's drift exceeds a person threshold c*, so the population share
literate is a weighted quantile and the year intercept that makes the city's
TRUE share equal to the path (``synth_survey.DEMO_PATH``; the published
figures for 2016 and 2020) is found exactly.

Drift: each division and each occupation has its own linear trend on the
latent scale (``DIV_TREND_SD``, ``OCC_TREND``), so the divisions' and groups'
true paths differ in slope, not only in level.

The truth table (city, divisions, urban/rural, sex, age group, education,
occupation and the plan's key groups, per year) is written beside the demo
inputs so estimates can be scored against it (benchmarks/bench_coverage.py).
Its Monte-Carlo error is about 0.1 points for the city and 0.3 for a division.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

POPULATION_N = 120_000
REF_YEAR = 2020
DIV_TREND_SD = 0.03          # latent units a year; a division's own drift around the common path
OCC_TREND = {"农民": 0.03, "产业工人": 0.015}   # plan focus groups improve a little faster
TRUTH_COLUMNS = ("year", "rule", "domain", "level", "true_share", "population")


@dataclass(frozen=True)
class Population:
    """Person thresholds per rule, drift slopes, weights and domain labels of the population draw."""

    cstar: dict[str, np.ndarray]         # rule -> (N,) latent threshold for being literate
    slope: np.ndarray                    # (N,) latent drift per year (division + occupation)
    weight: np.ndarray                   # (N,) persons represented
    labels: pd.DataFrame                 # domain columns (division_code, urban_rural, ...)
    div_trend: dict[str, float]
    intercepts: dict[int, float]         # year -> intercept putting the city on its path
    targets: dict[int, float]            # year -> true city share (percent)
    item_a: np.ndarray                   # item discriminations and difficulties, division effects:
    item_b: np.ndarray                   # the population's model, which every sample from it shares
    div_eff: dict[str, float]

    def literate(self, year: int, rule: str) -> np.ndarray:
        return self.cstar[rule] - self.slope * (year - REF_YEAR) < self.intercepts[year]


def person_thresholds(t: np.ndarray, pts: np.ndarray, rule_cuts: dict[str, Any]) -> dict[str, np.ndarray]:
    """For each rule, the intercept above which each person is literate.

    t[i, j]: item j is right iff the intercept exceeds t[i, j]; pts[j, d] the item's
    points in dimension d. rule_cuts: {"score": min total, "three_dimension": {d: cut}}.
    """
    out: dict[str, np.ndarray] = {}
    order = np.argsort(t, axis=1)
    ts = np.take_along_axis(t, order, axis=1).astype(np.float64)
    total_pts = pts.sum(axis=1)[order]
    out["score"] = _crossing(ts, np.cumsum(total_pts, axis=1), rule_cuts["score"])
    per_dim = []
    for d, cut in rule_cuts["three_dimension"].items():
        p = pts[:, d][order]
        per_dim.append(_crossing(ts, np.cumsum(p, axis=1), cut))
    out["three_dimension"] = np.max(np.column_stack(per_dim), axis=1)
    return out


def _crossing(ts: np.ndarray, cum: np.ndarray, cut: float) -> np.ndarray:
    """Smallest sorted threshold at which the cumulative points reach cut (inf when never)."""
    reach = cum >= cut - 1e-6
    k = np.argmax(reach, axis=1)
    c = ts[np.arange(len(ts)), k]
    return np.where(reach.any(axis=1), c, np.inf)


def solve_intercept(cstar: np.ndarray, weight: np.ndarray, share_pct: float) -> float:
    """Intercept c with weighted share of (cstar < c) equal to share_pct (a weighted quantile)."""
    order = np.argsort(cstar, kind="stable")
    cs, w = cstar[order], weight[order]
    cum = np.cumsum(w) / w.sum()
    k = int(np.searchsorted(cum, share_pct / 100.0))
    k = min(max(k, 1), len(cs) - 1)
    return float((cs[k - 1] + cs[k]) / 2) if np.isfinite(cs[k]) else float(cs[k - 1] + 1e-6)


def truth_table(pop: Population, plan: Any, years: list[int], key_groups: dict[str, np.ndarray]) -> pd.DataFrame:
    """True shares (percent) by year and domain level, as the estimates table names them."""
    rows = []
    w = pop.weight
    for year in years:
        rule = plan.scoring_rule(year)
        lit = pop.literate(year, rule).astype(float)
        rows.append((year, rule, "city", "all", 100 * float(np.sum(w * lit) / w.sum()), float(w.sum())))
        for domain, col in (("division", "division_code"), ("urban_rural", "urban_rural"), ("sex", "sex"),
                            ("age_group", "age_group"), ("education", "education"),
                            ("occupation", "occupation")):
            lab = pop.labels[col].to_numpy()
            for level in sorted(set(lab)):
                m = lab == level
                rows.append((year, rule, domain, str(level), 100 * float(np.sum(w[m] * lit[m]) / w[m].sum()),
                             float(w[m].sum())))
        for gid, m in key_groups.items():
            if m.any():
                rows.append((year, rule, "key_group", gid, 100 * float(np.sum(w[m] * lit[m]) / w[m].sum()),
                             float(w[m].sum())))
    return pd.DataFrame(rows, columns=list(TRUTH_COLUMNS))
