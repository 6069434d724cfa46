"""Why the share moved: composition versus within-group change between two survey years.

Methods (for the methods text). The change in the weighted share of literate
respondents between a start year A and an end year B is split two ways, both
with the calibrated weights of each year.

1. Shift-share over cells (Kitagawa 1955, symmetric form). With cells c the
   cross-classification of education, age group and urban/rural residence,
   w_c the weighted population share and p_c the weighted literate share in a cell,
   P_B - P_A = sum_c (w_Bc - w_Ac)(p_Ac + p_Bc)/2        (composition)
             + sum_c (p_Bc - p_Ac)(w_Ac + w_Bc)/2        (within-cell improvement),
   an identity, so the parts add up exactly. A cell empty in one year takes the
   other year's rate (its within-cell change is then zero).
2. Logit Oaxaca–Blinder (Fairlie 2005; detailed weights of Yun 2004). A weighted
   logit of literacy on education, age group and urban/rural is fitted in each
   year; P(X, b) is the weighted mean predicted share of sample X under
   coefficients b. Composition = P(X_B, b) - P(X_A, b) and coefficients (within) =
   the rest, averaged over b = b_B and b = b_A to avoid the index-number choice.
   Composition is split by factor k in proportion to (mean X_Bk - mean X_Ak) b_k.
   With an intercept, weighted logit fits reproduce each year's weighted share, so
   the parts add up to the observed change. When the factors' weighted margins do
   not differ between the years (as when both years are calibrated to the same
   census margins) the split is undefined; the composition part, which then comes
   only from changes in the factors' joint distribution, is reported as `joint`.

Calibration caveat: weights raked to the same census margins in both years make
each factor's marginal distribution identical, so composition can only act through
the joint distribution; year-specific margins are needed to see marginal shifts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm

FACTORS = ("education", "age_group", "urban_rural")
MIN_YUN_DENOM = 1e-6  # logit units: below this the factors' margins did not move
MARGIN_TOL = 1e-6     # shares: a factor whose weighted margin moved less is "fixed"


class DecompositionError(ValueError):
    """Microdata cannot support the decomposition."""


def _check(df: pd.DataFrame, name: str, factors, outcome: str, weight: str) -> pd.DataFrame:
    need = [*factors, outcome, weight]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DecompositionError(f"{name}: missing columns {missing}")
    out = df[need].copy()
    bad = out[list(factors)].isna().any(axis=1) | out[outcome].isna() | ~(out[weight] > 0)
    if bad.any():
        i = out.index[bad][0]
        raise DecompositionError(f"{name}: {int(bad.sum())} rows with missing factor, outcome or "
                                 f"non-positive weight (first at index {i}: "
                                 f"{out.loc[i].to_dict()})")
    out[outcome] = out[outcome].astype(float)
    for f in factors:
        out[f] = out[f].astype(str)
    return out


def weighted_share(df: pd.DataFrame, outcome: str = "literate", weight: str = "weight") -> float:
    w = df[weight].to_numpy(float)
    return float(100 * np.sum(w * df[outcome].to_numpy(float)) / np.sum(w))


def margin_shift(a: pd.DataFrame, b: pd.DataFrame, factor: str, weight: str = "weight") -> float:
    """Largest absolute change in a factor's weighted level shares between the years."""
    sa = a.groupby(factor, observed=True)[weight].sum() / a[weight].sum()
    sb = b.groupby(factor, observed=True)[weight].sum() / b[weight].sum()
    return float((sa - sb).abs().max() if sa.index.equals(sb.index) else
                 sa.sub(sb, fill_value=0).abs().max())


def shift_share(a: pd.DataFrame, b: pd.DataFrame, factors=FACTORS, outcome: str = "literate",
                weight: str = "weight") -> pd.DataFrame:
    """Per-cell Kitagawa decomposition (percentage points); columns sum to the total change."""
    a = _check(a, "start year", factors, outcome, weight)
    b = _check(b, "end year", factors, outcome, weight)
    keys = list(factors)

    def cells(d):
        g = d.assign(_wy=d[weight] * d[outcome]).groupby(keys, observed=True)
        c = g.agg(w=(weight, "sum"), wy=("_wy", "sum"))
        c["share"] = c["w"] / c["w"].sum()
        c["rate"] = c["wy"] / c["w"]
        return c[["share", "rate"]]

    m = cells(a).merge(cells(b), how="outer", left_index=True, right_index=True,
                       suffixes=("_a", "_b"))
    m[["share_a", "share_b"]] = m[["share_a", "share_b"]].fillna(0.0)
    m["rate_a"] = m["rate_a"].fillna(m["rate_b"])
    m["rate_b"] = m["rate_b"].fillna(m["rate_a"])
    m["composition_pp"] = 100 * (m["share_b"] - m["share_a"]) * (m["rate_a"] + m["rate_b"]) / 2
    m["within_pp"] = 100 * (m["rate_b"] - m["rate_a"]) * (m["share_a"] + m["share_b"]) / 2
    m["total_pp"] = m["composition_pp"] + m["within_pp"]
    return m.reset_index()


def _design(df: pd.DataFrame, factors, levels: dict[str, list[str]]) -> pd.DataFrame:
    cols = {"const": np.ones(len(df))}
    groups = {"const": "const"}
    for f in factors:
        for lev in levels[f][1:]:
            name = f"{f}={lev}"
            cols[name] = (df[f].to_numpy() == lev).astype(float)
            groups[name] = f
    x = pd.DataFrame(cols, index=df.index)
    x.attrs["groups"] = groups
    return x


def _logit_fit(x: pd.DataFrame, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    w = w / w.mean()  # point estimates do not depend on the weights' scale
    res = sm.GLM(y, x, family=sm.families.Binomial(), var_weights=w).fit(tol=1e-12, maxiter=200)
    return np.asarray(res.params, float)


def _mean_pred(x: pd.DataFrame, beta: np.ndarray, w: np.ndarray) -> float:
    p = 1 / (1 + np.exp(-(x.to_numpy() @ beta)))
    return float(100 * np.sum(w * p) / np.sum(w))


def oaxaca_logit(a: pd.DataFrame, b: pd.DataFrame, factors=FACTORS, outcome: str = "literate",
                 weight: str = "weight") -> dict:
    """Symmetric non-linear Oaxaca–Blinder with Yun's detailed composition weights."""
    a = _check(a, "start year", factors, outcome, weight)
    b = _check(b, "end year", factors, outcome, weight)
    levels = {}
    for f in factors:
        common = sorted(set(a[f]) & set(b[f]))
        if len(common) < 1:
            raise DecompositionError(f"factor {f}: no level present in both years")
        levels[f] = sorted(set(a[f]) | set(b[f]), key=lambda v: (v not in common, v))
    xa, xb = _design(a, factors, levels), _design(b, factors, levels)
    wa, wb = a[weight].to_numpy(float), b[weight].to_numpy(float)
    ba = _logit_fit(xa, a[outcome].to_numpy(), wa)
    bb = _logit_fit(xb, b[outcome].to_numpy(), wb)
    groups = xa.attrs["groups"]
    dxbar = (np.average(xb, axis=0, weights=wb) - np.average(xa, axis=0, weights=wa))
    comp_f = dict.fromkeys([*factors, "joint"], 0.0)
    comp_total = 0.0
    for beta in (bb, ba):
        comp = _mean_pred(xb, beta, wb) - _mean_pred(xa, beta, wa)
        contrib = dxbar * beta
        denom = contrib.sum()
        if abs(denom) < MIN_YUN_DENOM:  # margins unchanged: Yun weights are 0/0
            comp_f["joint"] += 0.5 * comp
        else:
            for j, col in enumerate(xa.columns):
                if groups[col] != "const":
                    comp_f[groups[col]] += 0.5 * comp * contrib[j] / denom
        comp_total += 0.5 * comp
    start, end = _mean_pred(xa, ba, wa), _mean_pred(xb, bb, wb)
    return {"start_fitted": start, "end_fitted": end, "total_pp": end - start,
            "composition_pp": comp_total, "within_pp": (end - start) - comp_total,
            "composition_by_factor_pp": comp_f}


def decompose_change(a: pd.DataFrame, b: pd.DataFrame, start_year: int, end_year: int,
                     factors=FACTORS, outcome: str = "literate", weight: str = "weight"
                     ) -> tuple[pd.DataFrame, dict]:
    """Both decompositions: a tidy table and a summary dict (percent, percentage points)."""
    cells = shift_share(a, b, factors, outcome, weight)
    ob = oaxaca_logit(a, b, factors, outcome, weight)
    start, end = weighted_share(a, outcome, weight), weighted_share(b, outcome, weight)
    total = end - start
    ss_comp, ss_within = float(cells["composition_pp"].sum()), float(cells["within_pp"].sum())
    moved = {f: margin_shift(a, b, f, weight) for f in factors}

    def row(method, component, factor, value):
        return {"method": method, "component": component, "factor": factor,
                "value_pp": float(value),
                "share_of_change": float(value / total) if total != 0 else np.nan,
                "start_year": start_year, "end_year": end_year}

    rows = [row("shift_share", "total", "all", total),
            row("shift_share", "composition", "all", ss_comp),
            row("shift_share", "within", "all", ss_within),
            row("oaxaca_logit", "total", "all", ob["total_pp"]),
            row("oaxaca_logit", "composition", "all", ob["composition_pp"]),
            row("oaxaca_logit", "within", "all", ob["within_pp"])]
    rows += [row("oaxaca_logit", "composition", f, v)
             for f, v in ob["composition_by_factor_pp"].items()]
    table = pd.DataFrame(rows)
    summary = {
        "method": "shift_share",
        "secondary_method": "oaxaca_logit",
        "start_year": start_year, "end_year": end_year,
        "start_share": start, "end_share": end, "total_change_pp": total,
        "composition_pp": ss_comp, "within_pp": ss_within,
        "composition_share_of_change": ss_comp / total if total else None,
        "within_share_of_change": ss_within / total if total else None,
        "cells": int(len(cells)),
        "oaxaca": {k: v for k, v in ob.items() if k not in ("start_fitted", "end_fitted")},
        "margin_shift": moved,
        "factors_fixed_by_weighting": [f for f, v in moved.items() if v < MARGIN_TOL],
    }
    return table, summary
