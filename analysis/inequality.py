"""Inequality between areas or groups: range, CV, population-weighted mean absolute gap.

Intervals come from a parametric bootstrap: each unit's true value is drawn
from N(estimate, se^2) and the measure recomputed. Dispersion of noisy
estimates overstates the true dispersion, so the percentile interval is
shifted upward for small, noisy units; the point value is the measure of
the estimates themselves. A change between two years is judged by the
interval of the difference (independent samples in the two years).

Interval method (``INTERVAL_METHOD``): percentile interval of a parametric
bootstrap, each unit drawn from N(estimate, se^2) independently. The p-value
of a change is the two-sided bootstrap p-value, 2 min(P(d < 0), P(d > 0)) with
(count + 1) / (B + 1). Where many changes are judged at once (units x
measures), ``holm`` adjusts the p-values (statsmodels multipletests, Holm); the
verdict rests on the adjusted p-value, the interval-only verdict is kept as
``verdict_unadjusted``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

MEASURES = ("range", "cv", "mean_abs_gap")
PRIMARY_MEASURE = "mean_abs_gap"   # the measure a unit's verdict rests on (population-weighted)
INTERVAL_METHOD = "parametric_bootstrap_percentile"
ALPHA = 0.05
MEASURE_NAMES_ZH = {
    "range": "极差（百分点）",
    "cv": "变异系数",
    "mean_abs_gap": "人口加权平均绝对差距（百分点）",
}


def _weights(values: np.ndarray, weights) -> np.ndarray:
    k = values.shape[-1]
    w = np.ones(k) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (k,):
        raise ValueError(f"{k} values but {w.shape[0] if w.ndim else 0} weights")
    if np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be non-negative with a positive sum")
    return w / w.sum()


def value_range(values) -> np.ndarray:
    """max - min over the last axis."""
    v = np.asarray(values, dtype=float)
    return v.max(axis=-1) - v.min(axis=-1)


def coefficient_of_variation(values, weights=None) -> np.ndarray:
    """(Weighted) standard deviation over (weighted) mean, population form (ddof 0)."""
    v = np.asarray(values, dtype=float)
    w = _weights(v, weights)
    mean = v @ w
    sd = np.sqrt(((v - mean[..., None]) ** 2) @ w)
    return sd / mean


def mean_abs_gap(values, weights=None) -> np.ndarray:
    """sum_i w_i |v_i - vbar_w|, with vbar_w the weighted mean: the average unit's distance to the whole."""
    v = np.asarray(values, dtype=float)
    w = _weights(v, weights)
    mean = v @ w
    return np.abs(v - mean[..., None]) @ w


def measures(values, weights=None) -> dict[str, np.ndarray]:
    """All three measures; CV unweighted (each unit counts once), the mean gap weighted."""
    return {
        "range": value_range(values),
        "cv": coefficient_of_variation(values),
        "mean_abs_gap": mean_abs_gap(values, weights),
    }


def _draws(estimates, se, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    est = np.asarray(estimates, dtype=float)
    se = np.asarray(se, dtype=float)
    if est.shape != se.shape or est.ndim != 1:
        raise ValueError("estimates and se must be 1-d arrays of the same length")
    if np.any(~np.isfinite(est)) or np.any(~np.isfinite(se)) or np.any(se < 0):
        raise ValueError("estimates and se must be finite, se non-negative")
    return est + se * rng.standard_normal((n_boot, est.size))


def inequality_with_intervals(
    estimates, se, weights=None, n_boot: int = 4000, level: float = 0.95,
    rng: np.random.Generator | int | None = 0,
) -> dict[str, dict[str, float]]:
    """Each measure with a parametric-bootstrap percentile interval."""
    rng = np.random.default_rng(rng)
    point = measures(estimates, weights)
    boot = measures(_draws(estimates, se, n_boot, rng), weights)
    a = (1 - level) / 2
    return {
        name: {
            "value": float(point[name]),
            "ci_low": float(np.quantile(boot[name], a)),
            "ci_high": float(np.quantile(boot[name], 1 - a)),
        }
        for name in MEASURES
    }


def compare_years(
    first: dict, latest: dict, n_boot: int = 4000, level: float = 0.95,
    rng: np.random.Generator | int | None = 0,
) -> dict[str, dict[str, float | str]]:
    """Change latest - first of each measure, with interval and a verdict.

    first, latest: dicts with keys estimates, se and optionally weights.
    Verdict: 'improved' when the whole interval of the change is below 0,
    'worsened' when above 0, otherwise 'no_clear_change'.
    """
    rng = np.random.default_rng(rng)
    a = (1 - level) / 2
    out: dict[str, dict[str, float | str]] = {}
    b1 = measures(_draws(first["estimates"], first["se"], n_boot, rng), first.get("weights"))
    b2 = measures(_draws(latest["estimates"], latest["se"], n_boot, rng), latest.get("weights"))
    p1 = measures(first["estimates"], first.get("weights"))
    p2 = measures(latest["estimates"], latest.get("weights"))
    for name in MEASURES:
        d = b2[name] - b1[name]
        lo, hi = float(np.quantile(d, a)), float(np.quantile(d, 1 - a))
        verdict = "improved" if hi < 0 else "worsened" if lo > 0 else "no_clear_change"
        below, above = int(np.sum(d < 0)), int(np.sum(d > 0))
        out[name] = {
            "change": float(p2[name] - p1[name]), "ci_low": lo, "ci_high": hi,
            "p_decrease": float(np.mean(d < 0)),
            "p_value": min(1.0, 2 * (min(below, above) + 1) / (n_boot + 1)),
            "verdict": verdict, "verdict_unadjusted": verdict,
        }
    return out


def holm(changes: list[dict], alpha: float = ALPHA) -> None:
    """Holm-adjust the p-values of many changes in place: p_holm, and verdict from p_holm.

    Each change (a ``compare_years`` entry) keeps its raw p_value and its interval-only
    verdict_unadjusted; verdict becomes improved / worsened when p_holm < alpha (the sign
    of the bootstrap median change), else no_clear_change.
    """
    if not changes:
        return
    p = np.array([c["p_value"] for c in changes], dtype=float)
    _, p_adj, _, _ = multipletests(p, alpha=alpha, method="holm")
    for c, q in zip(changes, p_adj, strict=True):
        c["p_holm"] = float(q)
        direction = "improved" if c["p_decrease"] > 0.5 else "worsened"
        c["verdict"] = direction if q < alpha else "no_clear_change"


def group_table(estimates: pd.DataFrame, domain: str, year: int, indicator: str = "literate",
                weights: dict[str, float] | None = None) -> pd.DataFrame:
    """Rows of an estimates table for one domain and year, unsuppressed, with a weight column.

    weights maps level -> population; levels without one fall back to the sample n.
    """
    sel = estimates[(estimates["year"] == year) & (estimates["indicator"] == indicator)
                    & (estimates["domain"] == domain)]
    sel = sel[~sel["suppressed"].astype(bool)].copy()
    sel["level"] = sel["level"].astype(str)
    if weights and sel["level"].isin(list(weights)).all():
        sel["weight"] = sel["level"].map(weights).astype(float)
        sel["weight_source"] = "census"
    else:
        sel["weight"] = sel["n"].astype(float)
        sel["weight_source"] = "sample_n"
    return sel.reset_index(drop=True)
