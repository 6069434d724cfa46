"""Disclosure control for published estimates: too few respondents or too unstable."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .settings import DEFAULT_MAX_CV, DEFAULT_MIN_N

__all__ = ["DEFAULT_MAX_CV", "DEFAULT_MIN_N", "disclosure_limits", "flag_cells"]


def disclosure_limits(plan=None) -> tuple[int, float]:
    """(min_n, max_cv) from the plan's survey.disclosure, with defaults 30 and 0.30."""
    if plan is None:
        return DEFAULT_MIN_N, DEFAULT_MAX_CV
    d = plan.settings.survey.disclosure
    return d.min_n, d.max_cv


def flag_cells(table: pd.DataFrame, min_n: int = DEFAULT_MIN_N,
               max_cv: float | None = DEFAULT_MAX_CV) -> pd.DataFrame:
    """Add `suppressed` (bool) and `suppress_reason` ("" when published).

    A cell is suppressed when n < min_n, or its cv (se / estimate) exceeds max_cv or
    cannot be computed (estimate 0, no variance). Reasons are joined with "; ".
    """
    out = table.copy()
    n = out["n"].to_numpy()
    cv = out["cv"].to_numpy(float)
    small = n < min_n
    unstable = np.zeros(len(out), bool) if max_cv is None else ~(cv <= max_cv)
    reasons = []
    for s, u, c in zip(small, unstable, cv, strict=True):
        r = []
        if s:
            r.append(f"n<{min_n}")
        if u:
            r.append(f"cv>{max_cv:g}" if np.isfinite(c) else "cv undefined")
        reasons.append("; ".join(r))
    out["suppressed"] = small | unstable
    out["suppress_reason"] = reasons
    return out


def publishable(table: pd.DataFrame) -> pd.DataFrame:
    """The table as published: suppressed cells keep n and the reason, lose the numbers."""
    out = table.copy()
    cols = [c for c in ("estimate", "se", "ci_low", "ci_high", "deff", "n_eff", "cv") if c in out]
    out.loc[out["suppressed"].astype(bool), cols] = np.nan
    return out
