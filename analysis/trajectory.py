"""Trend models for a city's literacy share: fit, compare, forecast, backtest.

Methods (for the methods text). Each survey year gives a design-based share p_t
(percent) with standard error se_t. On the logit scale, y_t = logit(p_t) with
s_t = se_t / (p_t (1 - p_t)) (delta method). The trend is a random-effects
meta-regression y_t = a + b (t - t0) + u_t + e_t, e_t ~ N(0, s_t^2) the survey
error, u_t ~ N(0, tau^2) the year's departure from the trend (model error).
tau^2 is estimated by the DerSimonian–Laird moment estimator; the coefficients by
weighted least squares (statsmodels WLS) with precision weights 1 / (s_t^2 + tau^2);
their covariance is WLS's residual-scaled one, which with these weights is the
Knapp–Hartung (KH) estimator, used with t quantiles on n - k degrees of freedom.
With six or so years the KH scale is itself noisy and, when the residuals are small
by chance, gives intervals narrower than the surveys' own errors allow; so each
interval is the wider of the KH-t interval and the normal interval that takes the
survey variances as known (simulations in tests/test_trajectory.py: 95% intervals
cover at 0.94-0.98; truncating the KH scale at 1 instead over-covered badly).
A forecast interval for the city's true share in year t is
mean ± q sqrt(x' V x + tau^2): parameter uncertainty (which
carries every year's survey error) plus model error. Alternatives: the same model
in percentage points (linear), and the city's logit gap to the national series
modelled as a linear trend (the city then tracks the national curve; beyond the
last national figure the national series is projected by an OLS logit-linear fit
whose prediction variance is added). Models are compared by leave-one-year-out
(LOYO) prediction error in percentage points, also expressed in units of the
held-out year's sampling SE.

Between-year variance: with the survey SEs taken as known, Cochran's Q (the
precision-weighted residual sum of squares of the fixed-effect fit) is chi-square
on n - k df when there is no between-year variance; Q, its df and p-value are
reported with the DL tau^2, and tau^2 = 0 is flagged (Q <= df: the years scatter
no more than their sampling errors allow).

Choosing the headline model (``choose_model``): logit_linear is the default; another
model replaces it only when it is better out of sample on BOTH the national
backtest (fit to the national series up to a cut-off year, scored on later
published years) AND the city's LOYO error, there by more than the median
sampling SE of the city's years. A short city series alone cannot win it.

One headline probability (``p_direct_above`` or ``TrendFit.p_above``): the
probability that the target year's true share exceeds the target, under the same
reference distribution as the interval shown beside it (t with the interval's df
on the logit scale for a direct estimate; the model's predictive t or normal for a
forecast).

Years scored under an older rule
enter either not at all (default when enough same-rule years exist) or with a
rule-change indicator, so only the within-rule slope is learnt from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

EPS = 1e-6
LEVEL = 0.95
MODELS = ("logit_linear", "linear_pp", "national_gap")
DEFAULT_MODEL = "logit_linear"
FORECAST_YEARS_AFTER_PLAN = 2      # no forecast beyond the plan's end + 2 years


class TrajectoryError(ValueError):
    """Inputs cannot support the requested trend model."""


def logit_pct(p_pct):
    p = np.clip(np.asarray(p_pct, float) / 100.0, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def expit_pct(x):
    return 100.0 / (1.0 + np.exp(-np.asarray(x, float)))


def _to_link(est_pct, se_pct, link: str):
    est = np.asarray(est_pct, float)
    if link == "identity":
        return est, None if se_pct is None else np.asarray(se_pct, float)
    y = logit_pct(est)
    if se_pct is None:
        return y, None
    p = np.clip(est / 100.0, EPS, 1 - EPS)
    return y, np.asarray(se_pct, float) / 100.0 / (p * (1 - p))


def _from_link(x, link: str):
    return np.asarray(x, float) if link == "identity" else expit_pct(x)


def _quantile(level: float, df: int) -> float:
    a = 0.5 + level / 2
    return float(stats.t.ppf(a, df)) if df > 0 else float(stats.norm.ppf(a))


@dataclass
class TrendFit:
    """A fitted linear trend on a link scale (logit or identity), possibly with an offset.

    `cov` is the Knapp–Hartung covariance (t on `df` degrees of freedom); `cov_known`
    the covariance with the survey variances taken as known (normal), None for OLS.
    Intervals and probabilities use whichever of the two is wider at the 95% level.
    """

    link: str
    t0: float
    params: np.ndarray
    cov: np.ndarray
    tau2: float
    df: int
    years: np.ndarray
    rule_dummy: bool = False
    offset: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = field(
        default=None, repr=False)
    cov_known: np.ndarray | None = None
    q_stat: float | None = None          # Cochran's Q of the fixed-effect fit (SEs known)
    q_df: int | None = None
    q_pvalue: float | None = None

    @property
    def tau2_zero(self) -> bool:
        return self.tau2 <= 0.0

    def heterogeneity(self) -> dict:
        """Between-year variance (link scale) with its Q test; codes and numbers only."""
        return {"tau2": self.tau2, "scale": self.link, "estimator": "DerSimonian-Laird",
                "estimated_zero": self.tau2_zero, "q": self.q_stat, "df": self.q_df,
                "p_value": self.q_pvalue, "test": "cochran_q_chi2"}

    @property
    def slope(self) -> float:
        return float(self.params[1])

    def slope_ci(self, level: float = LEVEL) -> tuple[float, float]:
        h = _quantile(level, self.df) * float(np.sqrt(self.cov[1, 1]))
        if self.cov_known is not None:
            h = max(h, _quantile(level, 0) * float(np.sqrt(self.cov_known[1, 1])))
        return self.slope - h, self.slope + h

    def _x(self, t: np.ndarray) -> np.ndarray:
        cols = [np.ones_like(t), t - self.t0]
        if self.rule_dummy:
            cols.append(np.zeros_like(t))  # forecasts are on the current rule
        return np.column_stack(cols)

    def predictive(self, years) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean, sd and degrees of freedom (0: normal) of the true value on the link scale.

        The sd adds tau^2 (the year's departure from the trend) and the offset's
        variance to the parameter uncertainty.
        """
        t = np.asarray(years, float)
        x = self._x(t)
        mean = x @ self.params
        extra = np.full_like(t, self.tau2)
        if self.offset is not None:
            om, ov = self.offset(t)
            mean, extra = mean + om, extra + ov
        sd = np.sqrt(np.einsum("ij,jk,ik->i", x, self.cov, x) + extra)
        df = np.full(t.shape, self.df)
        if self.cov_known is not None:
            sd_k = np.sqrt(np.einsum("ij,jk,ik->i", x, self.cov_known, x) + extra)
            wider = _quantile(LEVEL, 0) * sd_k > _quantile(LEVEL, self.df) * sd
            sd, df = np.where(wider, sd_k, sd), np.where(wider, 0, df)
        return mean, sd, df

    def predict(self, years, level: float = LEVEL) -> pd.DataFrame:
        """Percent-scale prediction of the true share with a `level` interval."""
        mean, sd, df = self.predictive(years)
        h = np.array([_quantile(level, int(d)) for d in df]) * sd
        return pd.DataFrame({
            "year": np.asarray(years, int),
            "estimate": _from_link(mean, self.link),
            "lower": _from_link(mean - h, self.link),
            "upper": _from_link(mean + h, self.link),
        })

    def p_above(self, year: int, threshold_pct: float) -> float:
        """P(true share in `year` > threshold) under the predictive distribution."""
        mean, sd, df = self.predictive([year])
        thr = logit_pct(threshold_pct) if self.link == "logit" else threshold_pct
        z = (float(thr) - mean[0]) / sd[0]
        dist = stats.t(int(df[0])) if df[0] > 0 else stats.norm
        return float(dist.sf(z))


def dl_tau2(x: np.ndarray, y: np.ndarray, s: np.ndarray) -> float:
    """DerSimonian–Laird moment estimate of the between-year variance for a meta-regression."""
    n, k = x.shape
    if n <= k:
        return 0.0
    w = 1.0 / s**2
    xtwx_inv = np.linalg.inv(x.T @ (w[:, None] * x))
    beta = xtwx_inv @ (x.T @ (w * y))
    q = float(np.sum(w * (y - x @ beta) ** 2))
    tr = float(np.sum(w) - np.trace(xtwx_inv @ (x.T @ ((w**2)[:, None] * x))))
    return max(0.0, (q - (n - k)) / tr) if tr > 0 else 0.0


def cochran_q(x: np.ndarray, y: np.ndarray, s: np.ndarray) -> tuple[float, int, float | None]:
    """(Q, df, p): residual heterogeneity of the fixed-effect meta-regression, chi-square on n - k df."""
    n, k = x.shape
    w = 1.0 / s**2
    beta = np.linalg.solve(x.T @ (w[:, None] * x), x.T @ (w * y))
    q = float(np.sum(w * (y - x @ beta) ** 2))
    df = n - k
    return q, df, float(stats.chi2.sf(q, df)) if df > 0 else None


def fit_trend(years, y, s=None, old_rule=None, link: str = "logit", t0: float | None = None,
              offset=None, offset_fn=None) -> TrendFit:
    """Fit y = a + b (t - t0) [+ c old_rule] on the link scale.

    With survey SEs `s`: random-effects WLS (DL tau^2, Knapp–Hartung covariance).
    Without (published series): OLS; the residual variance is the model error.
    `offset` (values at `years`) is subtracted before fitting; `offset_fn(t)` returns
    (mean, variance) of the offset for prediction.
    """
    t = np.asarray(years, float)
    y = np.asarray(y, float)
    if offset is not None:
        y = y - np.asarray(offset, float)
    t0 = float(np.mean(t)) if t0 is None else float(t0)
    cols = [np.ones_like(t), t - t0]
    dummy = old_rule is not None and np.any(old_rule) and not np.all(old_rule)
    if dummy:
        cols.append(np.asarray(old_rule, float))
    x = np.column_stack(cols)
    n, k = x.shape
    if n < k or np.unique(t).size < 2:
        raise TrajectoryError(f"need at least {k} distinct years to fit a trend, got {n}")
    df = n - k
    if s is None:
        if df < 1:
            raise TrajectoryError("a series without SEs needs more years than parameters")
        res = sm.OLS(y, x).fit()
        cov, tau2, cov_known = np.asarray(res.cov_params()), float(res.scale), None
    else:
        s = np.asarray(s, float)
        if np.any(~np.isfinite(s)) or np.any(s <= 0):
            raise TrajectoryError(f"standard errors must be positive, got {s.tolist()}")
        tau2 = dl_tau2(x, y, s)
        q = cochran_q(x, y, s)
        res = sm.WLS(y, x, weights=1.0 / (s**2 + tau2)).fit()
        cov_known = np.asarray(res.normalized_cov_params)
        cov = cov_known * (float(res.scale) if df > 0 else 1.0)
        return TrendFit(link=link, t0=t0, params=np.asarray(res.params, float), cov=cov,
                        tau2=tau2, df=df, years=t.astype(int), rule_dummy=bool(dummy),
                        offset=offset_fn, cov_known=cov_known, q_stat=q[0], q_df=q[1], q_pvalue=q[2])
    return TrendFit(link=link, t0=t0, params=np.asarray(res.params, float), cov=cov,
                    tau2=tau2, df=df, years=t.astype(int), rule_dummy=bool(dummy),
                    offset=offset_fn, cov_known=cov_known)


# ---------------------------------------------------------------- national curve

def national_curve(national: pd.Series, fit_from: int = 2010) -> Callable:
    """Logit of the national share at any year, with variance.

    Inside the published range: linear interpolation on the logit scale (variance 0;
    the national samples are large). Outside: an OLS logit-linear fit on years >=
    fit_from, with its prediction variance.
    """
    nat = national.dropna().sort_index()
    if len(nat) < 3:
        raise TrajectoryError("the national series needs at least 3 published years")
    yrs = nat.index.to_numpy(float)
    lg = logit_pct(nat.to_numpy(float))
    recent = yrs >= fit_from
    if recent.sum() < 3:
        recent = np.ones_like(yrs, bool)
    proj = fit_trend(yrs[recent], lg[recent], link="logit")

    def curve(t):
        t = np.asarray(t, float)
        inside = (t >= yrs.min()) & (t <= yrs.max())
        pm, psd, _ = proj.predictive(t)
        mean = np.where(inside, np.interp(t, yrs, lg), pm)
        var = np.where(inside, 0.0, psd**2)
        return mean, var

    return curve


# ---------------------------------------------------------------- models

def fit_model(name: str, obs: pd.DataFrame, national: pd.Series | None = None,
              t0: float | None = None) -> TrendFit:
    """Fit one named model to observations (columns year, estimate, se[, old_rule])."""
    years = obs["year"].to_numpy(int)
    old = obs["old_rule"].to_numpy(bool) if "old_rule" in obs else None
    if name == "logit_linear":
        y, s = _to_link(obs["estimate"], obs["se"], "logit")
        return fit_trend(years, y, s, old, "logit", t0)
    if name == "linear_pp":
        y, s = _to_link(obs["estimate"], obs["se"], "identity")
        return fit_trend(years, y, s, old, "identity", t0)
    if name == "national_gap":
        if national is None or national.dropna().empty:
            raise TrajectoryError("national_gap needs the national series")
        curve = national_curve(national)
        y, s = _to_link(obs["estimate"], obs["se"], "logit")
        off, _ = curve(years)
        return fit_trend(years, y, s, old, "logit", t0, offset=off, offset_fn=curve)
    raise TrajectoryError(f"unknown model {name!r}; known: {MODELS}")


def loyo(name: str, obs: pd.DataFrame, national: pd.Series | None = None) -> pd.DataFrame:
    """Leave-one-year-out errors (prediction minus observed, percentage points)."""
    rows = []
    for yr in obs["year"]:
        train = obs[obs["year"] != yr]
        test = obs[obs["year"] == yr]
        try:
            fit = fit_model(name, train, national, t0=float(obs["year"].mean()))
        except (TrajectoryError, np.linalg.LinAlgError):
            continue
        if "old_rule" in test and bool(test["old_rule"].iloc[0]) and not fit.rule_dummy:
            continue  # the held-out year's rule level is not identified without it
        if fit.rule_dummy and "old_rule" in test and bool(test["old_rule"].iloc[0]):
            mean = fit.params[0] + fit.params[1] * (yr - fit.t0) + fit.params[2]
            if fit.offset is not None:
                mean += fit.offset(np.array([yr], float))[0][0]
            pred = float(_from_link(mean, fit.link))
        else:
            pred = float(fit.predict([yr])["estimate"].iloc[0])
        rows.append({"year": int(yr), "predicted": pred,
                     "observed": float(test["estimate"].iloc[0]),
                     "error_pp": pred - float(test["estimate"].iloc[0]),
                     "se": float(test["se"].iloc[0])})
    return pd.DataFrame(rows, columns=["year", "predicted", "observed", "error_pp", "se"])


def compare_models(obs: pd.DataFrame, national: pd.Series | None = None,
                   models=MODELS) -> dict:
    """LOYO RMSE/MAE per model, and the RMS of the errors in units of each year's sampling SE."""
    out: dict[str, dict] = {}
    for name in models:
        if name == "national_gap" and (national is None or national.dropna().empty):
            continue
        err = loyo(name, obs, national)
        e = err["error_pp"].to_numpy(float)
        out[name] = {
            "loyo_rmse_pp": float(np.sqrt(np.mean(e**2))) if e.size else None,
            "loyo_mae_pp": float(np.mean(np.abs(e))) if e.size else None,
            "loyo_rms_z": float(np.sqrt(np.mean((e / err["se"].to_numpy(float)) ** 2))) if e.size else None,
            "loyo_errors_pp": {str(int(r.year)): float(r.error_pp) for r in err.itertuples()},
        }
    return out


def choose_model(comparison: dict, backtest: dict | None, sampling_se: float,
                 default: str = DEFAULT_MODEL) -> tuple[str, str]:
    """(model, reason code) by the rule in the module docstring.

    Reason codes: default_not_beaten; beats_default_out_of_sample (better national
    backtest RMSE and city LOYO RMSE lower by more than sampling_se); default_unavailable.
    """
    usable = {k: v for k, v in comparison.items() if v.get("loyo_rmse_pp") is not None}
    if default not in usable:
        return (min(usable, key=lambda k: usable[k]["loyo_rmse_pp"]) if usable else default,
                "default_unavailable")
    bt = backtest or {}
    best, reason = default, "default_not_beaten"
    for name, m in usable.items():
        if name == default or name not in bt or default not in bt:
            continue
        better_bt = bt[name]["rmse_pp"] < bt[best]["rmse_pp"] if best in bt else False
        better_loyo = m["loyo_rmse_pp"] < usable[default]["loyo_rmse_pp"] - sampling_se
        if better_bt and better_loyo:
            best, reason = name, "beats_default_out_of_sample"
    return best, reason


# ---------------------------------------------------------------- plan path, target

def implied_path(baseline: float, baseline_year: int, target: float, target_year: int
                 ) -> dict[int, float]:
    """Constant-growth path from the baseline to the target (percent per year compounding)."""
    if target_year <= baseline_year or baseline <= 0:
        raise TrajectoryError(f"implied path needs target_year > baseline_year and baseline > 0, "
                              f"got {baseline_year}->{target_year}, baseline {baseline}")
    g = (target / baseline) ** (1.0 / (target_year - baseline_year))
    return {y: baseline * g ** (y - baseline_year) for y in range(baseline_year, target_year + 1)}


def year_reached(fit: TrendFit, target: float, start: int, horizon: int) -> int | None:
    """First whole year in [start, horizon] in which the fitted path exceeds the target, else None."""
    years = np.arange(start, horizon + 1)
    est = fit.predict(years)["estimate"].to_numpy()
    hit = np.nonzero(est > target)[0]
    return int(years[hit[0]]) if hit.size else None


def p_direct_above(estimate: float, se: float, threshold: float, df: int = 0) -> float:
    """P(true share > threshold) from a direct estimate: logit scale, t on df (0: normal),
    the reference distribution of the estimate's own interval."""
    y, s = _to_link([estimate], [se], "logit")
    dist = stats.t(int(df)) if df > 0 else stats.norm
    return float(dist.sf((logit_pct(threshold) - y[0]) / s[0]))


# ---------------------------------------------------------------- backtest

def backtest(series: pd.Series, fit_until: int, predict_years, models=("logit_linear",
             "linear_pp"), level: float = LEVEL) -> dict:
    """Fit a published series (no SEs: OLS) up to `fit_until`, predict later years."""
    s = series.dropna().sort_index()
    train = s[s.index <= fit_until]
    out = {}
    for name in models:
        link = "logit" if name == "logit_linear" else "identity"
        y, _ = _to_link(train.to_numpy(float), None, link)
        fit = fit_trend(train.index.to_numpy(int), y, None, None, link)
        pred = fit.predict(list(predict_years), level)
        rows = {}
        for r in pred.itertuples():
            pub = float(s.get(r.year, np.nan))
            rows[str(r.year)] = {"predicted": float(r.estimate), "lower": float(r.lower),
                                 "upper": float(r.upper), "published": pub,
                                 "error_pp": float(r.estimate) - pub,
                                 "inside_interval": bool(r.lower <= pub <= r.upper)}
        errs = np.array([v["error_pp"] for v in rows.values()])
        out[name] = {"estimator": "ols",  # published figures carry no standard errors
                     "fit_years": train.index.tolist(),
                     "by_year": rows, "mae_pp": float(np.nanmean(np.abs(errs))),
                     "rmse_pp": float(np.sqrt(np.nanmean(errs**2)))}
    return out


# ---------------------------------------------------------------- gaps between groups

def gap_trend(a: pd.DataFrame, b: pd.DataFrame, level: float = LEVEL) -> dict:
    """Trend of the gap a - b (percentage points) over shared years.

    The gap's SE treats a and b as independent (conservative when a is part of b).
    Verdict: closing when |gap| shrinks with a slope interval excluding 0, widening
    when it grows likewise, otherwise no clear change.
    """
    m = a[["year", "estimate", "se"]].merge(b[["year", "estimate", "se"]], on="year",
                                           suffixes=("_a", "_b"))
    if len(m) < 3:
        return {"years": m["year"].tolist(), "verdict": "insufficient_years"}
    gap = (m["estimate_a"] - m["estimate_b"]).to_numpy(float)
    se = np.sqrt(m["se_a"] ** 2 + m["se_b"] ** 2).to_numpy(float)
    fit = fit_trend(m["year"], gap, se, None, "identity")
    lo, hi = fit.slope_ci(level)
    sign = np.sign(np.average(gap, weights=1 / se**2)) or 1.0
    s_lo, s_hi = sorted((sign * lo, sign * hi))  # slope of |gap| while the sign holds
    if s_hi < 0:
        verdict = "closing"
    elif s_lo > 0:
        verdict = "widening"
    else:
        verdict = "no_clear_change"
    return {"years": m["year"].astype(int).tolist(),
            "gap_pp": {str(int(y)): float(g) for y, g in zip(m["year"], gap, strict=True)},
            "gap_first_pp": float(gap[0]), "gap_last_pp": float(gap[-1]),
            "slope_pp_per_year": fit.slope, "slope_ci": [lo, hi],
            "verdict": verdict}
