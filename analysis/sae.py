"""Fay–Herriot area-level model: REML fit, EBLUP, Prasad–Rao MSE, benchmarking.

method="reml" follows R's sae package (eblupFH / mseFH, method "REML"): Fisher
scoring for the random-effect variance started at the median sampling variance,
then the EBLUP and the Prasad–Rao second-order MSE with the REML bias term
(g1 + g2 + 2 g3). tests/fixtures/sae holds sae's published milk example.
The default, method="adjusted_reml", maximises A x L_R(A) (Li and Lahiri 2010),
which keeps A above 0 with few areas; the MSE of the benchmarked estimates then
comes from ``bootstrap_mse``, which refits with the same method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats


class SAEError(ValueError):
    """Inputs a Fay–Herriot fit cannot use."""


@dataclass(frozen=True)
class FayHerriotFit:
    """Result of a Fay–Herriot fit on m sampled areas with p covariates (intercept included)."""

    refvar: float            # random-effect variance A (REML)
    beta: np.ndarray         # (p,) regression coefficients
    beta_se: np.ndarray      # (p,) standard errors of beta given A
    eblup: np.ndarray        # (m,) EBLUPs
    mse: np.ndarray          # (m,) Prasad–Rao MSE (REML version)
    synthetic: np.ndarray    # (m,) X beta, the regression (synthetic) estimate
    shrinkage: np.ndarray    # (m,) B_i = D_i / (A + D_i): weight on the synthetic estimate
    refvar_se: float         # sqrt of the inverse Fisher information for A
    iterations: int
    converged: bool
    loglik: float            # log-likelihood at (A, beta), as sae reports it
    method: str = "reml"     # how A was estimated (REFVAR_METHODS)

    @property
    def gamma(self) -> np.ndarray:
        """Weight on the direct estimate, A / (A + D_i) = 1 - shrinkage."""
        return 1.0 - self.shrinkage


def _check_inputs(y, X, vardir) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float)
    vardir = np.asarray(vardir, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    m, p = X.shape
    if y.shape != (m,) or vardir.shape != (m,):
        raise SAEError(f"y {y.shape}, X {X.shape} and vardir {vardir.shape} disagree on the number of areas")
    for name, arr in (("y", y), ("X", X), ("vardir", vardir)):
        if not np.all(np.isfinite(arr)):
            bad = np.argwhere(~np.isfinite(arr))[:, 0].tolist()
            raise SAEError(f"{name} has missing or infinite values in areas {bad}")
    if np.any(vardir <= 0):
        bad = np.flatnonzero(vardir <= 0).tolist()
        raise SAEError(f"sampling variances must be positive; areas {bad} have {vardir[bad].tolist()}")
    if m <= p:
        raise SAEError(f"{m} areas cannot fit {p} coefficients; use fewer covariates")
    if np.linalg.matrix_rank(X) < p:
        raise SAEError("covariate matrix is rank deficient (collinear or constant covariates)")
    return y, X, vardir


def _reml_score(y, X, vardir, A: float) -> tuple[float, float]:
    """(REML score, Fisher information) for the random-effect variance at A."""
    vi = 1.0 / (A + vardir)
    xtvi = (vi[:, None] * X).T
    Q = np.linalg.inv(xtvi @ X)
    P = np.diag(vi) - xtvi.T @ Q @ xtvi
    Py = P @ y
    return -0.5 * np.trace(P) + 0.5 * float(Py @ Py), 0.5 * float(np.sum(P * P.T))


def _reml_fisher_scoring(y, X, vardir, precision: float, max_iter: int) -> tuple[float, int, bool, float]:
    """sae's REML Fisher scoring; returns (A, iterations, converged, Fisher information)."""
    A = float(np.median(vardir))
    diff = precision + 1.0
    k = 0
    info = np.nan
    while diff > precision and k < max_iter:
        k += 1
        vi = 1.0 / (A + vardir)
        xtvi = (vi[:, None] * X).T
        Q = np.linalg.inv(xtvi @ X)
        P = np.diag(vi) - xtvi.T @ Q @ xtvi
        Py = P @ y
        score = -0.5 * np.trace(P) + 0.5 * float(Py @ Py)
        info = 0.5 * float(np.sum(P * P.T))
        A_new = A + score / info
        diff = abs((A_new - A) / A) if A != 0 else abs(A_new - A)
        A = A_new
    converged = diff <= precision
    return max(A, 0.0), k, converged, info


REFVAR_METHODS = ("reml", "adjusted_reml")
# Default: adjusted REML. With nine areas REML often gives A = 0, and intervals built on
# it then ignore the area effects (coverage 86% instead of 95% in benchmarks/bench_coverage.py).
DEFAULT_REFVAR_METHOD = "adjusted_reml"


def reml_loglik(y, X, vardir, A: float) -> float:
    """Restricted log-likelihood of A (up to a constant)."""
    V = A + vardir
    XtVX = (X / V[:, None]).T @ X
    beta = np.linalg.solve(XtVX, (X / V[:, None]).T @ y)
    r = y - X @ beta
    return -0.5 * float(np.sum(np.log(V)) + np.linalg.slogdet(XtVX)[1] + np.sum(r**2 / V))


def _adjusted_reml(y, X, vardir) -> tuple[float, int, bool, float]:
    """A maximising the adjusted restricted likelihood A x L_R(A) (Li and Lahiri 2010;
    Yoshimori and Lahiri 2014): always positive, so few areas do not give A = 0 and
    intervals that ignore the area effects."""
    from scipy.optimize import minimize_scalar

    scale = float(np.var(y)) + float(np.median(vardir)) + 1e-12
    res = minimize_scalar(lambda la: -(reml_loglik(y, X, vardir, np.exp(la)) + la),
                          bounds=(np.log(scale) - 25.0, np.log(scale) + 5.0), method="bounded",
                          options={"xatol": 1e-9})
    A = float(np.exp(res.x))
    return A, int(res.nfev), bool(res.success), _reml_score(y, X, vardir, A)[1]


def fit_fay_herriot(y, X, vardir, precision: float = 1e-4, max_iter: int = 100,
                    method: str = DEFAULT_REFVAR_METHOD) -> FayHerriotFit:
    """Fit y_i = x_i'beta + u_i + e_i, u_i ~ N(0, A), e_i ~ N(0, vardir_i).

    method "reml" is sae's REML Fisher scoring (precision and max_iter are sae's
    PRECISION and MAXITER; the milk fixture checks it against sae); "adjusted_reml"
    (default) maximises A x L_R(A), positive by construction.
    X must include the intercept column.
    """
    y, X, vardir = _check_inputs(y, X, vardir)
    m, p = X.shape
    if method not in REFVAR_METHODS:
        raise SAEError(f"unknown variance-component method {method!r}; use one of {REFVAR_METHODS}")
    if method == "adjusted_reml":
        A, iters, converged, info = _adjusted_reml(y, X, vardir)
    else:
        A, iters, converged, info = _reml_fisher_scoring(y, X, vardir, precision, max_iter)
    if not converged and _reml_score(y, X, vardir, 0.0)[0] <= 0:
        # the REML likelihood falls from A = 0: the estimate is on the boundary (Fisher scoring
        # then steps below 0 and oscillates; sae truncates at 0 the same way)
        A, converged = 0.0, True
        info = _reml_score(y, X, vardir, 0.0)[1]
    if not converged:
        raise SAEError(f"REML did not converge in {max_iter} iterations (A = {A:.6g})")
    vi = 1.0 / (A + vardir)
    xtvi = (vi[:, None] * X).T
    Q = np.linalg.inv(xtvi @ X)
    beta = Q @ xtvi @ y
    synthetic = X @ beta
    resid = y - synthetic
    gamma = A * vi
    eblup = synthetic + gamma * resid
    loglik = -0.5 * float(np.sum(np.log(2 * np.pi * (A + vardir)) + resid**2 * vi))
    mse = prasad_rao_mse(X, vardir, A)
    return FayHerriotFit(
        refvar=A, beta=beta, beta_se=np.sqrt(np.diag(Q)), eblup=eblup, mse=mse,
        synthetic=synthetic, shrinkage=vardir * vi, refvar_se=float(np.sqrt(1.0 / info)),
        iterations=iters, converged=converged, loglik=loglik, method=method,
    )


def prasad_rao_mse(X, vardir, refvar: float) -> np.ndarray:
    """Prasad–Rao MSE of the EBLUP with REML-estimated A (sae::mseFH, method 'REML')."""
    X = np.asarray(X, dtype=float)
    vardir = np.asarray(vardir, dtype=float)
    A = float(refvar)
    vi = 1.0 / (A + vardir)
    B = vardir * vi
    Q = np.linalg.inv((vi[:, None] * X).T @ X)
    var_A = 2.0 / np.sum(vi**2)           # asymptotic variance of the REML estimate of A
    g1 = vardir * (1.0 - B)
    g2 = B**2 * np.einsum("ij,jk,ik->i", X, Q, X)
    g3 = B**2 * var_A * vi
    return g1 + g2 + 2.0 * g3


def predict_unsampled(fit: FayHerriotFit, X_new, X_fit, vardir_fit) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic prediction x'beta and its MSE (A + x'Qx) for areas with no sample."""
    X_new = np.atleast_2d(np.asarray(X_new, dtype=float))
    vi = 1.0 / (fit.refvar + np.asarray(vardir_fit, dtype=float))
    Q = np.linalg.inv((vi[:, None] * np.asarray(X_fit, dtype=float)).T @ np.asarray(X_fit, dtype=float))
    pred = X_new @ fit.beta
    mse = fit.refvar + np.einsum("ij,jk,ik->i", X_new, Q, X_new)
    return pred, mse


def benchmark(estimates, weights, total: float, method: str = "ratio") -> np.ndarray:
    """Adjust area estimates so that sum(w_i * est_i) / sum(w_i) equals total.

    ratio: est_i * total / mean_w(est); difference: est_i + (total - mean_w(est)).
    """
    est = np.asarray(estimates, dtype=float)
    w = np.asarray(weights, dtype=float)
    if est.shape != w.shape:
        raise SAEError(f"estimates {est.shape} and weights {w.shape} differ in shape")
    if np.any(w < 0) or w.sum() <= 0:
        raise SAEError("benchmark weights must be non-negative with a positive sum")
    if not np.all(np.isfinite(est)) or not np.isfinite(total):
        raise SAEError("benchmarking needs finite estimates and a finite total")
    mean_w = float(np.sum(w * est) / w.sum())
    if method == "ratio":
        if mean_w == 0:
            raise SAEError("ratio benchmarking is undefined when the weighted mean is 0")
        return est * (total / mean_w)
    if method == "difference":
        return est + (total - mean_w)
    raise SAEError(f"unknown benchmarking method {method!r}; use 'ratio' or 'difference'")


def prob_below(estimate, rmse, threshold: float) -> np.ndarray:
    """P(true value <= threshold) under a normal approximation N(estimate, rmse^2)."""
    est = np.asarray(estimate, dtype=float)
    rmse = np.asarray(rmse, dtype=float)
    return stats.norm.cdf((threshold - est) / rmse)


# ---------------------------------------------------------------- smoothed sampling variances

def pooled_deff(n, deff) -> float:
    """Design effect pooled over areas and years: the n-weighted mean of the finite, positive deffs.

    Single-area deffs from a few hundred respondents in 10-20 PSUs are noisy (0.2 to 8 in
    the demo); their pool is the generalised-variance-function input.
    """
    n = np.asarray(n, dtype=float)
    deff = np.asarray(deff, dtype=float)
    ok = np.isfinite(deff) & (deff > 0) & np.isfinite(n) & (n > 0)
    if not ok.any():
        raise SAEError("no finite positive design effect to pool")
    return float(np.sum(n[ok] * deff[ok]) / np.sum(n[ok]))


def smoothed_vardir(p_pct, n, deff: float) -> np.ndarray:
    """Sampling variance (percent^2) of a share p from n respondents with design effect deff."""
    p = np.clip(np.asarray(p_pct, dtype=float) / 100.0, 1e-4, 1 - 1e-4)
    return 1e4 * deff * p * (1 - p) / np.asarray(n, dtype=float)


def fit_smoothed(y, X, n, deff: float, **kw: Any) -> tuple[FayHerriotFit, np.ndarray]:
    """Fay–Herriot with generalised-variance-function sampling variances.

    The share in each area's variance is not its own direct estimate (which would tie
    the variance to the sampling error): a first fit uses the regression prediction,
    the second the first fit's EBLUPs. Returns (fit, vardir used).
    """
    y, X, _ = _check_inputs(y, X, np.ones(len(np.asarray(y))))
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    vardir = smoothed_vardir(X @ beta, n, deff)
    fit = fit_fay_herriot(y, X, vardir, **kw)
    vardir = smoothed_vardir(fit.eblup, n, deff)
    return fit_fay_herriot(y, X, vardir, **kw), vardir


# ---------------------------------------------------------------- MSE of the benchmarked estimates

def bootstrap_mse(fit: FayHerriotFit, X, vardir, weights, method: str = "ratio", n_boot: int = 400,
                  rng: np.random.Generator | int | None = 0, refvar_method: str = DEFAULT_REFVAR_METHOD
                  ) -> dict[str, np.ndarray | float]:
    """Parametric bootstrap MSE of the benchmarked and the plain EBLUPs (González-Manteiga et al.).

    Each replicate draws true values theta* = X beta + u*, u* ~ N(0, A), and direct
    estimates y* = theta* + e*, e* ~ N(0, D_i); refits the model, benchmarks its EBLUPs
    to the weighted mean of y* (the replicate's city direct estimate) and scores both
    against theta*. Replicates whose REML fit fails are skipped and counted.
    """
    rng = np.random.default_rng(rng)
    X = np.asarray(X, dtype=float)
    vardir = np.asarray(vardir, dtype=float)
    w = np.asarray(weights, dtype=float)
    m = len(vardir)
    mean = X @ fit.beta
    se_b, se_e = np.zeros(m), np.zeros(m)
    done = failed = 0
    for _ in range(int(n_boot)):
        theta = mean + rng.normal(0.0, np.sqrt(fit.refvar), m)
        y = theta + rng.normal(0.0, np.sqrt(vardir))
        try:
            f = fit_fay_herriot(y, X, vardir, method=refvar_method)
            b = benchmark(f.eblup, w, float(np.sum(w * y) / w.sum()), method)
        except (SAEError, np.linalg.LinAlgError):
            failed += 1
            continue
        se_b += (b - theta) ** 2
        se_e += (f.eblup - theta) ** 2
        done += 1
    if done == 0:
        raise SAEError("every bootstrap replicate failed to fit")
    return {"mse_benchmarked": se_b / done, "mse_eblup": se_e / done, "replicates": done,
            "failed": failed}
