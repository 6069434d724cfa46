"""Stage 03: the city's trajectory towards its target, and why the share moved."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import benchmarks as bm
from . import catalog
from . import decompose as dc
from . import trajectory as tr
from .config import Plan, processed_dir
from .jsonio import to_jsonable
from .provenance import write_manifest
from .report_figures import FAN_BANDS, fan_chart, group_trends

STAGE = "03_trajectory"
INDICATOR = "literate"
GROUP_DOMAINS = ("key_group", "urban_rural")


def _r(x, nd: int = 4):
    """JSON-ready with floats rounded (None for NaN)."""
    return to_jsonable(x, nd)


def load_estimates(plan: Plan, year: int, processed_root: Path | None = None
                   ) -> tuple[pd.DataFrame, list[Path]]:
    """estimates.parquet of every survey year <= year that exists (indicator `literate`), and the files."""
    return catalog.load_estimates_with_paths(plan, processed_root, up_to=year, indicator=INDICATOR)


def domain_obs(est: pd.DataFrame, domain: str, level: str) -> pd.DataFrame:
    """One domain level's series (unsuppressed rows), sorted by year."""
    d = est[(est["domain"] == domain) & (est["level"].astype(str) == str(level))
            & ~est["suppressed"].astype(bool)]
    cols = [c for c in ("year", "estimate", "se", "df", "ci_low", "ci_high", "n") if c in d]
    return d[cols].sort_values("year").reset_index(drop=True)


def select_fit_years(obs: pd.DataFrame, plan: Plan, handling: str = "auto", min_same: int = 4
                     ) -> tuple[pd.DataFrame, str]:
    """Mark each year's scoring rule and choose how older-rule years enter the fit.

    auto: only years under the latest year's rule when there are at least `min_same`
    of them; otherwise all years with a rule-change indicator.
    """
    obs = obs.copy()
    obs["rule"] = [plan.scoring_rule(int(y)) for y in obs["year"]]
    current = obs["rule"].iloc[-1]
    obs["old_rule"] = obs["rule"] != current
    n_same = int((~obs["old_rule"]).sum())
    if handling == "auto":
        handling = "same_rule" if n_same >= min_same or not obs["old_rule"].any() else "indicator"
    if handling == "same_rule":
        fit = obs[~obs["old_rule"]].reset_index(drop=True)
    elif handling == "indicator":
        fit = obs.reset_index(drop=True)
    else:
        raise tr.TrajectoryError(f"trajectory.rule_handling {handling!r}: expected auto, "
                                 "same_rule or indicator")
    return fit, handling


def _microdata(plan: Plan, y: int, processed_root) -> tuple[pd.DataFrame | None, list[Path]]:
    sc = catalog.output_path(plan, "survey_clean.parquet", y, processed_root)
    wt = catalog.output_path(plan, "weights.parquet", y, processed_root)
    if not (sc.exists() and wt.exists()):
        return None, []
    s = catalog.read_file_table(sc)
    w = catalog.read_file_table(wt)[["resp_key", "weight"]]
    m = s.drop(columns=["weight"], errors="ignore").merge(w, on="resp_key", how="inner",
                                                          validate="one_to_one")
    if len(m) != len(s):
        raise dc.DecompositionError(f"{wt}: weights for {len(m)} of {len(s)} respondents in {sc}")
    return m, [sc, wt]


def _group_block(est, fit_obs, target_year, level, plan) -> tuple[dict, list[pd.DataFrame]]:
    """Trend per key group and urban/rural level; gap trends on current-rule years only."""
    fit_years = fit_obs["year"].tolist()
    old_rule = dict(zip(fit_obs["year"], fit_obs["old_rule"], strict=True))
    current = [y for y in fit_years if not old_rule[y]]
    city = domain_obs(est, "city", "all")
    city = city[city["year"].isin(current)]
    out: dict = {}
    series = []
    for domain in GROUP_DOMAINS:
        levels = sorted(est.loc[est["domain"] == domain, "level"].astype(str).unique())
        block: dict = {"levels": {}, "gaps": {}}
        fits = {}
        for lev in levels:
            o = domain_obs(est, domain, lev)
            o = o[o["year"].isin(fit_years)]
            o = o.assign(old_rule=o["year"].map(old_rule).astype(bool))
            entry: dict = {"years": o["year"].tolist(),
                           "observed": {str(int(r.year)): r.estimate for r in o.itertuples()}}
            if o.empty:
                entry["note"] = "all_suppressed"  # every year's estimate withheld (n or CV)
            if len(o) >= 3:
                f = tr.fit_model(tr.DEFAULT_MODEL, o)
                p = f.predict([int(o["year"].min()), int(o["year"].max()), target_year], level)
                span = p["year"].iloc[1] - p["year"].iloc[0]
                entry.update({
                    "slope_logit_per_year": f.slope,
                    "avg_change_pp_per_year": (p["estimate"].iloc[1] - p["estimate"].iloc[0])
                    / span if span else None,
                    "forecast_target_year": p["estimate"].iloc[2],
                    "forecast_target_year_interval": [p["lower"].iloc[2], p["upper"].iloc[2]],
                    "p_exceeds_target": f.p_above(target_year, plan.target)})
                yrs = np.arange(int(o["year"].min()), max(target_year, int(o["year"].max())) + 1)
                fp = f.predict(yrs, level)
                fp = fp.assign(series=f"{domain}:{lev}",
                               kind=np.where(fp["year"] > int(o["year"].max()), "forecast", "fitted"))
                series.append(fp)
            series.append(o.drop(columns="old_rule")
                          .rename(columns={"ci_low": "lower", "ci_high": "upper"})
                          .assign(series=f"{domain}:{lev}", kind="observed"))
            block["levels"][lev] = entry
            fits[lev] = o[~o["old_rule"]]
        if domain == "urban_rural" and len(levels) == 2:
            hi, lo = sorted(levels, key=lambda v: -fits[v]["estimate"].mean())
            block["gaps"][f"{hi}-{lo}"] = tr.gap_trend(fits[hi], fits[lo], level)
        else:
            for lev in levels:
                block["gaps"][f"{lev}-city"] = tr.gap_trend(fits[lev], city, level)
        out[domain] = block
    return out, series


def _province_scope(bench: pd.DataFrame, plan: Plan) -> str | None:
    """The one benchmark scope that is neither national nor the city itself, if unique."""
    others = sorted(set(bench["scope"]) - {"national", plan.city})
    return others[0] if len(others) == 1 else None


@dataclass
class TrajectoryInputs:
    estimates: pd.DataFrame  # indicator `literate`, every survey year <= the report year
    bench: pd.DataFrame
    obs: pd.DataFrame  # the city's unsuppressed series
    micro: dict[int, pd.DataFrame]  # baseline and latest year, when the change can be decomposed
    files: list[Path]


@dataclass
class TrajectoryResult:
    """Stage 03 for the report year: trajectory.json, the tidy series and the decomposition."""

    year: int
    summary: dict[str, Any]
    series: pd.DataFrame
    decomposition: pd.DataFrame | None
    params: dict[str, Any]
    inputs: list[Path]
    outputs: dict[str, Path] = field(default_factory=dict)


def _decomposable(plan: Plan, latest_year: int) -> bool:
    """Baseline -> latest year, under one scoring rule."""
    y0 = plan.baseline_year
    return latest_year > y0 and plan.scoring_rule(y0) == plan.scoring_rule(latest_year)


def publication_year(source: str, year: int) -> int:
    """The year a published figure came out: the first year named in its source ('人民日报 2023-09-01',
    '国发〔2021〕9号'), else the year after the one it describes (surveys are published the following year)."""
    m = re.search(r"(?<!\d)(19|20)\d{2}(?!\d)", str(source or ""))
    return int(m.group(0)) if m else int(year) + 1


def published_by(bench: pd.DataFrame, year: int) -> pd.DataFrame:
    """The published figures (national and provincial series, targets) already out by the end of `year`."""
    out_by = [publication_year(s, y) for s, y in zip(bench["source"], bench["year"], strict=True)]
    return bench[[p <= year for p in out_by]].reset_index(drop=True)


def load_inputs(plan: Plan, year: int, processed_root: Path | None = None) -> TrajectoryInputs:
    """Stage 02's estimates, the published benchmarks, and the microdata the decomposition needs."""
    est, files = load_estimates(plan, year, processed_root)
    bench_path = bm.default_path(plan.raw_dir)
    bench = published_by(bm.load_benchmarks(bench_path), year)  # a monitoring year sees only what was out by then
    obs = domain_obs(est, "city", "all")
    if obs.empty:
        raise tr.TrajectoryError("no unsuppressed city estimate of `literate` in any year")
    micro, micro_files = {}, []
    ly = int(obs["year"].iloc[-1])
    if _decomposable(plan, ly):
        for y in (plan.baseline_year, ly):
            m, paths = _microdata(plan, y, processed_root)
            if m is not None:
                micro[y] = m
                micro_files += paths
    return TrajectoryInputs(est, bench, obs, micro, [plan.path, bench_path, *files, *micro_files])


def _models(plan: Plan, fit_obs: pd.DataFrame, national: pd.Series, level: float) -> dict[str, Any]:
    """Compare the candidate models, choose one by the plan's rule and forecast the target year."""
    ty, target = plan.target_year, plan.target
    bt_until = plan.settings.trajectory.backtest_fit_until
    bt_years = [int(y) for y in national.index if y > bt_until]
    backtest = tr.backtest(national, bt_until, bt_years, level=level) if bt_years else None
    comparison = tr.compare_models(fit_obs, national)
    sampling_se = float(np.median(fit_obs["se"]))
    chosen, reason = tr.choose_model(comparison, backtest, sampling_se)
    fits = {name: tr.fit_model(name, fit_obs, national) for name in comparison}
    # every model's forecast for the target year (methods only); the chosen one drives the headline
    for name, f in fits.items():
        p = f.predict([ty], level).iloc[0]
        comparison[name].update({"forecast": p["estimate"], "forecast_interval": [p["lower"], p["upper"]],
                                 "p_exceeds_target": f.p_above(ty, target), "tau2": f.tau2, "df": f.df,
                                 "between_year_variance": f.heterogeneity(), "slope_per_year": f.slope})
    return {"chosen": chosen, "reason": reason, "fit": fits[chosen], "comparison": comparison,
            "backtest": backtest, "sampling_se": sampling_se, "backtest_fit_until": bt_until}


def _headline(obs: pd.DataFrame, fit: tr.TrendFit, chosen: str, fc: pd.Series, ty: int, target: float,
              level: float) -> dict[str, Any]:
    """THE probability that the target is exceeded: from the target year's survey, else the trend."""
    if (obs["year"] == ty).any():
        t_row = obs[obs["year"] == ty].iloc[0]
        ci = (float(t_row.get("ci_low", np.nan)), float(t_row.get("ci_high", np.nan)))
        df_ty = max(int(t_row["df"]), 0)  # the df of the estimate's own interval (stage 02)
        return {"p_exceeds_target": tr.p_direct_above(t_row["estimate"], t_row["se"], target, df_ty),
                "basis": "direct_estimate", "year": ty, "estimate": float(t_row["estimate"]),
                "interval": list(ci), "scale": "logit", "reference": "t" if df_ty else "normal",
                "df": df_ty}
    _, _, dfs = fit.predictive([ty])
    df_ty = int(dfs[0])
    return {"p_exceeds_target": fit.p_above(ty, target), "basis": "model_forecast", "year": ty,
            "estimate": float(fc["estimate"]), "interval": [float(fc["lower"]), float(fc["upper"])],
            "scale": fit.link, "reference": "t" if df_ty else "normal", "df": df_ty, "model": chosen}


def _ex_ante(obs: pd.DataFrame, fit_obs: pd.DataFrame, chosen: str, national: pd.Series, ty: int,
             level: float) -> dict[str, Any] | None:
    """Once the target year is observed: what the chosen model forecast from the years before it."""
    if int(obs["year"].iloc[-1]) < ty:
        return None
    prior = fit_obs[fit_obs["year"] < ty]
    try:
        p0 = tr.fit_model(chosen, prior, national).predict([ty], level).iloc[0]
    except tr.TrajectoryError:
        return {"error": "too_few_years_before_target", "fit_years": prior["year"].tolist()}
    obs_ty = obs.loc[obs["year"] == ty, "estimate"]
    return {"fit_years": prior["year"].tolist(), "forecast": p0["estimate"],
            "forecast_interval": [p0["lower"], p0["upper"]],
            "observed": float(obs_ty.iloc[0]) if len(obs_ty) else None,
            "observed_inside_interval": bool(p0["lower"] <= obs_ty.iloc[0] <= p0["upper"])
            if len(obs_ty) else None}


def _decomposition(plan: Plan, inputs: TrajectoryInputs) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """Composition and within-group parts of the change baseline -> latest year (codes on failure)."""
    y0, ly = plan.baseline_year, int(inputs.obs["year"].iloc[-1])
    if not _decomposable(plan, ly):
        return {"error": "not_comparable", "start_year": y0, "end_year": ly}, None
    if not (y0 in inputs.micro and ly in inputs.micro):
        return {"error": "microdata_missing", "start_year": y0, "end_year": ly}, None
    table, summary = dc.decompose_change(inputs.micro[y0], inputs.micro[ly], y0, ly)
    return summary, table


def _benchmarks(plan: Plan, bench: pd.DataFrame, national: pd.Series, scope: str | None,
                obs_by_year: dict[int, float]) -> dict[str, Any]:
    province = bm.series(bench, scope)
    nat_last = int(national.index.max()) if len(national) else None
    return {
        "national_latest_year": nat_last,
        "national_latest": float(national.loc[nat_last]) if nat_last else None,
        "province_scope": scope,
        "province_latest_year": int(province.index.max()) if len(province) else None,
        "province_latest": float(province.iloc[-1]) if len(province) else None,
        "city_minus_national_latest_common_pp": next(
            (obs_by_year[y] - float(national.loc[y]) for y in sorted(obs_by_year, reverse=True)
             if y in national.index), None),
        "targets": {f"{r.scope}_{r.year}": r.value for r in bench[bench["kind"] == "target"].itertuples()},
    }


def _forecast_block(fit: tr.TrendFit, path: pd.DataFrame, obs: pd.DataFrame, fit_obs: pd.DataFrame,
                    ty: int, target: float, horizon: int) -> dict[str, Any]:
    ly = int(obs["year"].iloc[-1])
    fc = path.set_index("year").loc[ty]
    obs_by_year = dict(zip(obs["year"].astype(int), obs["estimate"].astype(float), strict=True))
    return {
        "forecast_year": ty, "forecast": fc["estimate"], "forecast_interval": [fc["lower"], fc["upper"]],
        "forecast_kind": "fitted" if ty <= ly else "forecast",
        "forecast_horizon": {str(int(r.year)): {"forecast": r.estimate, "lower": r.lower, "upper": r.upper}
                             for r in path[path["year"] > ly].itertuples()},
        "forecast_final_year": horizon,
        "forecast_final": float(path["estimate"].iloc[-1]),
        "forecast_final_interval": [float(path["lower"].iloc[-1]), float(path["upper"].iloc[-1])],
        "target_year_observed": bool((obs["year"] == ty).any()),
        "year_target_reached": tr.year_reached(fit, target, int(fit_obs["year"].min()), horizon),
        "year_target_reached_observed": next((int(y) for y, v in sorted(obs_by_year.items()) if v > target),
                                             None),
    }


def _implied_block(plan: Plan, obs: pd.DataFrame, path: pd.DataFrame) -> dict[str, Any]:
    """The plan's implied path (even growth baseline -> target) and the gaps to it."""
    target, ty = plan.target, plan.target_year
    implied = tr.implied_path(plan.baseline, plan.baseline_year, target, ty)
    growth = (target / plan.baseline) ** (1 / (ty - plan.baseline_year)) - 1
    obs_by_year = dict(zip(obs["year"].astype(int), obs["estimate"].astype(float), strict=True))
    trend_by_year = dict(zip(path["year"].astype(int), path["estimate"], strict=True))
    return {"implied_path": {str(k): v for k, v in implied.items()},
            "implied_annual_growth_pct": 100 * growth,
            "gap_to_implied": {str(y): obs_by_year[y] - v for y, v in implied.items() if y in obs_by_year},
            "gap_trend_to_implied": {str(y): trend_by_year[y] - v for y, v in implied.items()
                                     if y in trend_by_year}}


def _observed_block(plan: Plan, obs: pd.DataFrame, fit_obs: pd.DataFrame) -> dict[str, Any]:
    latest = obs.iloc[-1]
    target = plan.target
    obs_by_year = dict(zip(obs["year"].astype(int), obs["estimate"].astype(float), strict=True))
    used = set(fit_obs["year"])
    return {
        "observed": [{"year": int(r.year), "estimate": r.estimate, "se": r.se,
                      "ci": [getattr(r, "ci_low", None), getattr(r, "ci_high", None)],
                      "rule": plan.scoring_rule(int(r.year)), "used_in_fit": int(r.year) in used}
                     for r in obs.itertuples()],
        "latest_year": int(latest["year"]), "latest_estimate": float(latest["estimate"]),
        "latest_se": float(latest["se"]),
        "latest_ci": [float(latest.get("ci_low", np.nan)), float(latest.get("ci_high", np.nan))],
        "latest_exceeds_target": bool(latest["estimate"] > target),
        # against the baseline year's survey estimate, else the plan's published baseline
        "change_since_baseline_pp": float(latest["estimate"]) - obs_by_year.get(plan.baseline_year, plan.baseline),
        "fit_years": fit_obs["year"].astype(int).tolist(),
    }


def compute(plan: Plan, year: int, inputs: TrajectoryInputs, level: float = tr.LEVEL) -> TrajectoryResult:
    """Fit, compare and forecast the city's trend, trend each group, decompose the change."""
    target, ty, obs = plan.target, plan.target_year, inputs.obs
    national = bm.series(inputs.bench, "national")
    province_scope = plan.settings.trajectory.province_scope or _province_scope(inputs.bench, plan)
    fit_obs, handling = select_fit_years(obs, plan, plan.settings.trajectory.rule_handling)
    m = _models(plan, fit_obs, national, level)
    horizon = max(int(plan.period[1]) + tr.FORECAST_YEARS_AFTER_PLAN, ty)
    years_all = np.arange(int(fit_obs["year"].min()), horizon + 1)
    path = m["fit"].predict(years_all, level)
    groups, group_series = _group_block(inputs.estimates, fit_obs, ty, level, plan)
    decomposition, dec_table = _decomposition(plan, inputs)
    obs_by_year = dict(zip(obs["year"].astype(int), obs["estimate"].astype(float), strict=True))
    summary = _r({
        "city": plan.city, "report_year": int(year), "indicator": INDICATOR, "unit": "percent",
        "interval_level": level, "target": target, "target_year": ty,
        "target_rule": plan.settings.literacy.target_rule,
        "baseline_year": plan.baseline_year, "baseline": plan.baseline,
        "published_city": {str(k): v for k, v in plan.published_rates.items()},
        **_observed_block(plan, obs, fit_obs), "rule_handling": handling,
        "model_chosen": m["chosen"], "model_chosen_reason": m["reason"],
        "model_selection": {"rule": "default_unless_better_on_backtest_and_loyo", "default": tr.DEFAULT_MODEL,
                            "sampling_se_pp": m["sampling_se"]},
        "between_year_variance": m["fit"].heterogeneity(),
        "headline": _headline(obs, m["fit"], m["chosen"], path.set_index("year").loc[ty], ty, target, level),
        **_forecast_block(m["fit"], path, obs, fit_obs, ty, target, horizon),
        "ex_ante": _ex_ante(obs, fit_obs, m["chosen"], national, ty, level),
        **_implied_block(plan, obs, path),
        "benchmarks": _benchmarks(plan, inputs.bench, national, province_scope, obs_by_year),
        "methods": {"models": m["comparison"], "backtest": m["backtest"]},
        "groups": groups, "decomposition": decomposition,
    })
    series = _series(plan, obs, path, m["fit"], years_all, inputs.bench, province_scope, group_series)
    params = {"city": plan.city, "year": int(year), "level": level, "rule_handling": handling,
              "model_chosen": m["chosen"], "model_chosen_reason": m["reason"],
              "backtest_fit_until": m["backtest_fit_until"]}
    return TrajectoryResult(int(year), summary, series, dec_table, params, inputs.files)


SERIES_TYPES = {"series": "string", "year": "int64", "estimate": "float64", "lower": "float64",
                "upper": "float64", "kind": "string"}


def _series(plan: Plan, obs: pd.DataFrame, path: pd.DataFrame, fit: tr.TrendFit, years_all: np.ndarray,
            bench: pd.DataFrame, province_scope: str | None, group_series: list[pd.DataFrame]) -> pd.DataFrame:
    """trajectory_series.parquet: every line of the figures, named by series and kind codes."""
    ly = int(obs["year"].iloc[-1])
    implied = tr.implied_path(plan.baseline, plan.baseline_year, plan.target, plan.target_year)
    rows = [obs.rename(columns={"ci_low": "lower", "ci_high": "upper"}).assign(series="city", kind="observed"),
            pd.DataFrame({"year": list(plan.published_rates), "estimate": list(plan.published_rates.values()),
                          "series": "city", "kind": "published"}),
            path.assign(series="city", kind=np.where(path["year"] > ly, "forecast", "fitted")),
            pd.DataFrame({"year": list(implied), "estimate": list(implied.values()),
                          "series": "implied_path", "kind": "implied"}),
            pd.DataFrame({"year": [plan.target_year], "estimate": [plan.target], "series": "city",
                          "kind": "target"})]
    for scope in ("national", province_scope):
        b = bench[bench["scope"] == scope]
        rows.append(pd.DataFrame({"year": b["year"], "estimate": b["value"], "series": scope, "kind": b["kind"]}))
    for lv in FAN_BANDS:
        rows.append(fit.predict(years_all, lv).assign(series=f"city_band_{int(lv * 100)}", kind="band"))
    series = pd.concat([*rows, *group_series], ignore_index=True)
    return series[list(SERIES_TYPES)].astype(SERIES_TYPES)


def save_outputs(plan: Plan, res: TrajectoryResult, processed_root: Path | None = None) -> TrajectoryResult:
    """trajectory.json, the series, the decomposition table, the notebook's figures and the manifest."""
    tables: dict[str, Any] = {"trajectory.json": res.summary, "trajectory_series.parquet": res.series}
    if res.decomposition is not None:
        tables["decomposition.parquet"] = res.decomposition
    res.outputs = catalog.write_outputs(plan, STAGE, res.year, processed_root, tables)
    for name, draw in (("figures/fan_chart.png", fan_chart), ("figures/group_trends.png", group_trends)):
        res.outputs[name] = draw(res.series, res.summary, plan, "zh",
                                 catalog.output_path(plan, name, res.year, processed_root))
    write_manifest(processed_dir(plan.city, res.year, processed_root), STAGE, res.inputs,
                   list(res.outputs.values()), res.params)
    return res


def run_trajectory(plan: Plan, year: int, processed_root: Path | None = None,
                   level: float = tr.LEVEL) -> TrajectoryResult:
    """Fit, compare and forecast the city's trend; decompose the change; write outputs."""
    # Load inputs
    inputs = load_inputs(plan, int(year), processed_root)
    # Process data
    result = compute(plan, int(year), inputs, level)
    # Save outputs
    return save_outputs(plan, result, processed_root)
