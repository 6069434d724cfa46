"""Design-based estimates for stratified cluster samples (Taylor linearisation).

The numbers match R's survey package (tests/fixtures/survey_r, made by
r/make_survey_fixtures.R) to 1e-8 relative:

* design: ``svydesign(ids = ~psu, strata = ~stratum, weights = ~w, nest = TRUE)``, the
  ultimate-cluster with-replacement variance (no finite population correction);
* a domain is estimated as a domain of the full design, as ``svyby`` does
  (``design[domain, ]``): PSUs without domain members count with a zero total, so the
  stratum PSU counts are those of the whole sample, never those of a subset;
* shares: ``svyciprop(method = "logit")``, i.e. a Wald interval on the logit scale with
  t quantiles on ``degf`` of the domain design (PSUs minus strata that hold members);
* means: ``svymean(deff = TRUE)``; interval ``confint(m, df = degf(domain design))``;
* calibrated weights: with ``Calibration(kind="raking")`` the variance is that of a
  ``rake()``-d design (svyrecvar's ten back-fitting sweeps over the margins), with
  ``kind="poststratify"`` that of ``postStratify()``; without a calibration it is the
  variance of a design that simply carries the final weights.

Written with numpy/scipy rather than svy or samplics: the estimator is a few bincounts
and one sparse product, domains need no copies of the data, and the R agreement is
tested directly (benchmarks/bench_estimate.py: 1M rows, 100 domains in well under a second).

Strata with a single PSU follow R's ``options(survey.lonely.psu = ...)``:
``certainty`` and ``remove`` (the stratum adds nothing), ``adjust`` (its PSU total is
centred at the overall mean, zero, rather than the stratum mean: conservative) and
``average`` (the stratum gets the average variance of the other strata). The default is
``adjust``. As in R's default ``survey.adjust.domain.lonely = FALSE``, a stratum with
several PSUs of which only one holds domain members is treated as an ordinary stratum.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse, stats

from .settings import DEFAULT_LONELY_PSU, LONELY_PSU_RULES

RAKING_SWEEPS = 10  # svyrecvar's fixed number of back-fitting sweeps for raked designs


class DesignError(ValueError):
    """The sample design columns cannot be used (missing values, bad weights, lonely PSUs)."""


@dataclass(frozen=True)
class Calibration:
    """How the final weights were calibrated, for the variance adjustment R applies.

    kind: "raking" (R's rake()) or "poststratify" (R's postStratify(); one margin).
    codes: for each margin, an integer category per row (0..size-1).
    design_weights: the weights before calibration (needed for post-stratification).
    """

    kind: str
    codes: tuple[np.ndarray, ...]
    design_weights: np.ndarray | None = None

    def __post_init__(self):
        if self.kind not in ("raking", "poststratify"):
            raise DesignError(f"calibration kind must be raking or poststratify, not {self.kind!r}")
        if self.kind == "poststratify" and (len(self.codes) != 1 or self.design_weights is None):
            raise DesignError("post-stratification needs exactly one margin and the design weights")

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(int(c.max()) + 1 if len(c) else 0 for c in self.codes)


@dataclass
class Design:
    """A stratified cluster design: weights, stratum and PSU codes per row."""

    weights: np.ndarray
    stratum: np.ndarray        # int code per row, 0..S-1
    psu: np.ndarray            # int code per row, 0..P-1, unique across strata
    psu_stratum: np.ndarray    # stratum code of each PSU
    lonely_psu: str = DEFAULT_LONELY_PSU
    calibration: Calibration | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.lonely_psu not in LONELY_PSU_RULES:
            raise DesignError(f"lonely_psu must be one of {LONELY_PSU_RULES}, not {self.lonely_psu!r}")
        w = self.weights
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            bad = int(np.flatnonzero(~np.isfinite(w) | (w < 0))[0])
            raise DesignError(f"weights must be finite and non-negative; row {bad} has {w[bad]!r}")
        self.n_strata = int(self.psu_stratum.max()) + 1 if len(self.psu_stratum) else 0
        self.n_psu = len(self.psu_stratum)
        self.psu_per_stratum = np.bincount(self.psu_stratum, minlength=self.n_strata)
        lonely = np.flatnonzero(self.psu_per_stratum == 1)
        if self.lonely_psu == "fail" and len(lonely):
            raise DesignError(f"{len(lonely)} strata have a single PSU (lonely_psu='fail'); "
                              "choose certainty, adjust or average")

    @classmethod
    def from_frame(cls, df: pd.DataFrame, weights: str | np.ndarray = "weight",
                   strata: str | None = "stratum", psu: str | None = "psu",
                   lonely_psu: str = DEFAULT_LONELY_PSU,
                   calibration: Calibration | None = None) -> Design:
        """Design from columns of df; strata None: one stratum; psu None: each row a PSU.

        PSU labels are nested in strata (R's nest=TRUE).
        """
        n = len(df)
        for col in (c for c in (strata, psu, weights if isinstance(weights, str) else None) if c):
            if col not in df.columns:
                raise DesignError(f"design column {col!r} not in the data (columns: {list(df.columns)})")
            if df[col].isna().any():
                row = int(np.flatnonzero(df[col].isna().to_numpy())[0])
                raise DesignError(f"design column {col!r} is missing in row {row}")
        w = (df[weights] if isinstance(weights, str) else pd.Series(weights)).to_numpy(float)
        s_codes = (pd.factorize(df[strata], sort=True)[0] if strata else np.zeros(n, np.int64))
        if psu:
            p_raw = pd.factorize(df[psu], sort=True)[0].astype(np.int64)
            key = s_codes.astype(np.int64) * (int(p_raw.max()) + 1) + p_raw
            p_codes = pd.factorize(key, sort=True)[0]
        else:
            p_codes = np.arange(n)
        psu_stratum = np.zeros(int(p_codes.max()) + 1 if n else 0, dtype=np.int64)
        psu_stratum[p_codes] = s_codes
        return cls(weights=w, stratum=s_codes.astype(np.int64), psu=p_codes.astype(np.int64),
                   psu_stratum=psu_stratum, lonely_psu=lonely_psu, calibration=calibration)

    # --- cached helpers -------------------------------------------------------------
    def _psu_by_category(self, m: int) -> np.ndarray:
        """P x G matrix of weight sums of each PSU in each category of margin m."""
        key = ("W", m)
        if key not in self._cache:
            c = self.calibration.codes[m]
            g = self.calibration.sizes[m]
            self._cache[key] = np.bincount(self.psu * g + c, weights=self.weights,
                                           minlength=self.n_psu * g).reshape(self.n_psu, g)
        return self._cache[key]

    def _cross_counts(self, m: int, k: int) -> np.ndarray:
        key = ("N", m, k)
        if key not in self._cache:
            cm, ck = self.calibration.codes[m], self.calibration.codes[k]
            gm, gk = self.calibration.sizes[m], self.calibration.sizes[k]
            self._cache[key] = np.bincount(cm * gk + ck, minlength=gm * gk).reshape(gm, gk).astype(float)
        return self._cache[key]

    def _stratum_matrix(self) -> sparse.csr_matrix:
        if "H" not in self._cache:
            self._cache["H"] = sparse.csr_matrix(
                (np.ones(self.n_psu), (self.psu_stratum, np.arange(self.n_psu))),
                shape=(self.n_strata, self.n_psu))
        return self._cache["H"]


def _calibration_adjust(design: Design, z: np.ndarray, e: np.ndarray, mask: np.ndarray,
                        idx: np.ndarray, d: int) -> np.ndarray:
    """PSU totals of the calibration residuals (R's svyrecvar postStrata step), P x D.

    The influence values are u = w * e on domain rows and 0 elsewhere. R replaces u by
    u - w * c[g] with c the (unweighted for raking, design-weighted for post-strata)
    category means of u / w; that is linear in u, so it is carried as small G x D tables.
    """
    cal = design.calibration
    sizes = cal.sizes
    if cal.kind == "poststratify":
        c = cal.codes[0]
        dw = cal.design_weights
        num = np.bincount(c[mask] * d + idx, weights=e * dw[mask], minlength=sizes[0] * d)
        den = np.bincount(c, weights=dw, minlength=sizes[0])
        with np.errstate(invalid="ignore", divide="ignore"):
            means = num.reshape(sizes[0], d) / den[:, None]
        means = np.nan_to_num(means)
        return z - design._psu_by_category(0) @ means
    counts = [np.bincount(c, minlength=g).astype(float) for c, g in zip(cal.codes, sizes, strict=True)]
    # astype: bincount of no rows (an empty domain) returns integers, which the sweeps cannot update
    sums = [np.bincount(c[mask] * d + idx, weights=e, minlength=g * d).reshape(g, d).astype(float)
            for c, g in zip(cal.codes, sizes, strict=True)]
    coef = [np.zeros((g, d)) for g in sizes]
    for _ in range(RAKING_SWEEPS):
        for m in range(len(sizes)):
            resid = sums[m].copy()
            for k in range(len(sizes)):
                resid -= design._cross_counts(m, k) @ coef[k]
            with np.errstate(invalid="ignore", divide="ignore"):
                coef[m] += np.nan_to_num(resid / counts[m][:, None])
    for m in range(len(sizes)):
        z = z - design._psu_by_category(m) @ coef[m]
    return z


def _variance(design: Design, z: np.ndarray, present_psu: np.ndarray) -> np.ndarray:
    """Stratified with-replacement variance of PSU totals z (P x D), one value per column."""
    h = design._stratum_matrix()
    nh = design.psu_per_stratum.astype(float)
    zbar = (h @ z) / nh[:, None]
    dev = z - zbar[design.psu_stratum]
    ss = h @ (dev * dev)                             # S x D
    multi = nh > 1
    scale = np.where(multi, nh / np.where(multi, nh - 1, 1), 1.0)
    per_stratum = ss * scale[:, None]
    lonely = ~multi
    if lonely.any():
        rule = design.lonely_psu
        if rule in ("certainty", "remove"):
            per_stratum[lonely] = 0.0
        elif rule == "adjust":
            per_stratum[lonely] = (h @ (z * z))[lonely]  # centred at 0, the overall mean
        elif rule == "average":
            # R: total over strata with >1 PSU, times (strata in the domain) / (those with >1 PSU)
            per_stratum[lonely] = 0.0
            if design.calibration is None:
                in_dom = (h @ present_psu.astype(float)) > 0
            else:  # R keeps every row of a calibrated design in a domain (zero weight)
                in_dom = np.ones_like(per_stratum, dtype=bool)
            nstrat = in_dom.sum(axis=0)
            nok = (in_dom & multi[:, None]).sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                return per_stratum.sum(axis=0) * nstrat / nok
    return per_stratum.sum(axis=0)


def domain_means(design: Design, y: np.ndarray, domain: np.ndarray | None = None,
                 n_domains: int | None = None) -> pd.DataFrame:
    """Weighted means (or shares, for 0/1 y) in each domain of the full design.

    domain: integer code per row (0..D-1; negative = in no domain); None = whole sample.
    Rows with missing y are left out of every domain (R: na.rm = TRUE).
    Returns one row per domain code: n, n_weighted, estimate, se, deff, df.
    """
    y = np.asarray(y, dtype=float)
    nrow = len(design.weights)
    if len(y) != nrow:
        raise DesignError(f"y has {len(y)} values, the design {nrow} rows")
    if domain is None:
        domain = np.zeros(nrow, dtype=np.int64)
    domain = np.asarray(domain, dtype=np.int64)
    d = int(n_domains if n_domains is not None else (domain.max() + 1 if nrow else 0))
    mask = (domain >= 0) & np.isfinite(y)
    idx = domain[mask]
    w = design.weights[mask]
    ym = y[mask]
    n = np.bincount(idx, minlength=d)
    big_n = np.bincount(idx, weights=w, minlength=d)
    with np.errstate(invalid="ignore", divide="ignore"):
        est = np.bincount(idx, weights=w * ym, minlength=d) / big_n
        resid = ym - est[idx]
        e = resid / big_n[idx]                         # u / w
        z = np.bincount(design.psu[mask] * d + idx, weights=w * e,
                        minlength=design.n_psu * d).reshape(design.n_psu, d)
        if design.calibration is not None:
            z = _calibration_adjust(design, z, e, mask, idx, d)
        present = np.bincount(design.psu[mask] * d + idx,
                              minlength=design.n_psu * d).reshape(design.n_psu, d) > 0
        var = _variance(design, z, present)
        # deff against simple random sampling without replacement, as svymean(deff=TRUE)
        s2 = np.bincount(idx, weights=w * resid * resid, minlength=d) / big_n * n / (n - 1)
        vsrs = s2 * (big_n - n) / (big_n * n)
        deff = var / vsrs
        n_psu = present.sum(axis=0)
        n_str = ((design._stratum_matrix() @ present.astype(float)) > 0).sum(axis=0)
    return pd.DataFrame({"n": n, "n_weighted": big_n, "estimate": est, "se": np.sqrt(var),
                         "deff": deff, "df": n_psu - n_str})


def confidence_interval(estimate, se, df, share: bool, level: float = 0.95):
    """Logit interval for shares (R svyciprop method="logit"), Wald for means; t on df."""
    estimate = np.asarray(estimate, dtype=float)
    se = np.asarray(se, dtype=float)
    df = np.asarray(df, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = stats.t.ppf(0.5 + level / 2, np.where(df > 0, df, np.nan))
        if share:
            ok = (estimate > 0) & (estimate < 1)
            p = np.where(ok, estimate, 0.5)
            logit = np.log(p / (1 - p))
            half = q * se / (p * (1 - p))
            low = np.where(ok, 1 / (1 + np.exp(-(logit - half))), np.nan)
            high = np.where(ok, 1 / (1 + np.exp(-(logit + half))), np.nan)
        else:
            low, high = estimate - q * se, estimate + q * se
    return low, high


def estimate_domains(design: Design, y: np.ndarray, labels: pd.Series | np.ndarray | None = None,
                     share: bool = False, level: float = 0.95) -> pd.DataFrame:
    """Estimates by domain label (None: whole sample), with CI, deff, effective n and CV.

    n_eff is n / deff. cv is se / estimate. Shares stay on the 0-1 scale here.
    """
    if labels is None:
        out = domain_means(design, y)
        out.insert(0, "level", ["all"])
    else:
        labels = pd.Series(labels).reset_index(drop=True)
        codes, uniques = pd.factorize(labels, sort=True)
        out = domain_means(design, y, codes, len(uniques))
        out.insert(0, "level", [str(u) for u in uniques])
    out["ci_low"], out["ci_high"] = confidence_interval(out["estimate"], out["se"], out["df"],
                                                        share, level)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["n_eff"] = out["n"] / out["deff"]
        out["cv"] = out["se"] / out["estimate"].abs()
    return out


def naive_subset_estimate(df: pd.DataFrame, mask, y: str, weights: str = "weight",
                          strata: str | None = "stratum", psu: str | None = "psu",
                          lonely_psu: str = DEFAULT_LONELY_PSU) -> pd.DataFrame:
    """What subsetting the data first would give (wrong for domains; kept for comparison)."""
    sub = df.loc[np.asarray(mask, dtype=bool)].reset_index(drop=True)
    design = Design.from_frame(sub, weights, strata, psu, lonely_psu=lonely_psu)
    return domain_means(design, sub[y].to_numpy(float))
