"""Stage 03: the city's trajectory towards its target, and why the share moved."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import benchmarks as bm
from . import catalog
from . import decompose as dc
from . import trajectory as tr
from .config import Plan, processed_dir
from .jsonio import to_jsonable, write_json
from .plotting import save_figure, use_cjk_font
from .provenance import write_manifest
from .vocabulary import DOMAIN_NAMES_ZH, level_label_zh

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
    cols = [c for c in ("year", "estimate", "se", "ci_low", "ci_high", "n") if c in d]
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
            entry: dict = {"label_zh": level_label_zh(plan, domain, lev), "years": o["year"].tolist(),
                           "observed": {str(int(r.year)): r.estimate for r in o.itertuples()}}
            if o.empty:
                entry["note_zh"] = "各年估计均因样本量或变异系数未达发布标准而未发布"
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
                fp = fp.assign(series=f"{domain}:{lev}", label_zh=entry["label_zh"],
                               kind=np.where(fp["year"] > int(o["year"].max()), "forecast", "fitted"))
                series.append(fp)
            series.append(o.drop(columns="old_rule")
                          .rename(columns={"ci_low": "lower", "ci_high": "upper"})
                          .assign(series=f"{domain}:{lev}", kind="observed",
                                  label_zh=entry["label_zh"]))
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


def run_trajectory(plan: Plan, year: int, processed_root: Path | None = None,
                   level: float = tr.LEVEL) -> dict:
    """Fit, compare and forecast the city's trend; decompose the change; write outputs."""
    out_dir = processed_dir(plan.city, year, processed_root)
    est, inputs = load_estimates(plan, year, processed_root)
    bench_path = bm.default_path(plan.raw_dir)
    bench = bm.load_benchmarks(bench_path)
    inputs = [plan.path, bench_path, *inputs]
    national = bm.series(bench, "national")
    province_scope = plan.settings.trajectory.province_scope or _province_scope(bench, plan)
    province = bm.series(bench, province_scope)
    target, ty = plan.target, plan.target_year

    obs = domain_obs(est, "city", "all")
    if obs.empty:
        raise tr.TrajectoryError("no unsuppressed city estimate of `literate` in any year")
    fit_obs, handling = select_fit_years(obs, plan, plan.settings.trajectory.rule_handling)
    bt_until = plan.settings.trajectory.backtest_fit_until
    bt_years = [int(y) for y in national.index if y > bt_until]
    backtest = tr.backtest(national, bt_until, bt_years, level=level) if bt_years else None
    comparison = tr.compare_models(fit_obs, national)
    sampling_se = float(np.median(fit_obs["se"]))
    chosen, reason = tr.choose_model(comparison, backtest, sampling_se)
    fits = {name: tr.fit_model(name, fit_obs, national) for name in comparison}
    fit = fits[chosen]
    latest = obs.iloc[-1]
    ly = int(latest["year"])
    horizon = max(int(plan.period[1]) + tr.FORECAST_YEARS_AFTER_PLAN, ty)

    # every model's forecast for the target year (methods only); the chosen one drives the headline
    for name, f in fits.items():
        p = f.predict([ty], level).iloc[0]
        comparison[name].update({"forecast": p["estimate"], "forecast_interval":
                                 [p["lower"], p["upper"]], "p_exceeds_target":
                                 f.p_above(ty, target), "tau2": f.tau2, "df": f.df,
                                 "between_year_variance": f.heterogeneity(),
                                 "slope_per_year": f.slope})
    years_all = np.arange(int(fit_obs["year"].min()), horizon + 1)
    path = fit.predict(years_all, level)
    fc = path.set_index("year").loc[ty]
    target_observed = bool((obs["year"] == ty).any())
    if target_observed:
        t_row = obs[obs["year"] == ty].iloc[0]
        ci = (float(t_row.get("ci_low", np.nan)), float(t_row.get("ci_high", np.nan)))
        df_ty = tr.interval_df(float(t_row["estimate"]), float(t_row["se"]), ci, level)
        headline = {"p_exceeds_target": tr.p_direct_above(t_row["estimate"], t_row["se"], target, df_ty),
                    "basis": "direct_estimate", "year": ty, "estimate": float(t_row["estimate"]),
                    "interval": list(ci), "scale": "logit", "reference": "t" if df_ty else "normal",
                    "df": df_ty}
    else:
        _, _, dfs = fit.predictive([ty])
        df_ty = int(dfs[0])
        headline = {"p_exceeds_target": fit.p_above(ty, target), "basis": "model_forecast", "year": ty,
                    "estimate": float(fc["estimate"]), "interval": [float(fc["lower"]), float(fc["upper"])],
                    "scale": fit.link, "reference": "t" if df_ty else "normal", "df": df_ty,
                    "model": chosen}

    ex_ante = None
    if ly >= ty:
        prior = fit_obs[fit_obs["year"] < ty]
        try:
            f0 = tr.fit_model(chosen, prior, national)
            p0 = f0.predict([ty], level).iloc[0]
            obs_ty = obs.loc[obs["year"] == ty, "estimate"]
            ex_ante = {"fit_years": prior["year"].tolist(), "forecast": p0["estimate"],
                       "forecast_interval": [p0["lower"], p0["upper"]],
                       "observed": float(obs_ty.iloc[0]) if len(obs_ty) else None,
                       "observed_inside_interval": bool(p0["lower"] <= obs_ty.iloc[0]
                                                        <= p0["upper"]) if len(obs_ty) else None}
        except tr.TrajectoryError as e:
            ex_ante = {"error": str(e)}

    implied = tr.implied_path(plan.baseline, plan.baseline_year, target, ty)
    growth = (target / plan.baseline) ** (1 / (ty - plan.baseline_year)) - 1
    obs_by_year = dict(zip(obs["year"].astype(int), obs["estimate"].astype(float), strict=True))
    trend_by_year = dict(zip(path["year"].astype(int), path["estimate"], strict=True))
    gap_obs = {str(y): obs_by_year[y] - v for y, v in implied.items() if y in obs_by_year}
    gap_trend = {str(y): trend_by_year[y] - v for y, v in implied.items() if y in trend_by_year}

    groups, group_series = _group_block(est, fit_obs, ty, level, plan)

    # decomposition: baseline year -> latest year, same scoring rule only
    decomposition, dec_table, dec_inputs = None, None, []
    dy0 = plan.baseline_year
    if ly > dy0 and plan.scoring_rule(dy0) == plan.scoring_rule(ly):
        a, pa = _microdata(plan, dy0, processed_root)
        b, pb = _microdata(plan, ly, processed_root)
        if a is not None and b is not None:
            dec_table, decomposition = dc.decompose_change(a, b, dy0, ly)
            dec_inputs = pa + pb
        else:
            decomposition = {"error": f"survey_clean.parquet/weights.parquet missing for "
                                      f"{dy0} or {ly}"}
    else:
        decomposition = {"error": f"no decomposition: latest year {ly} is not after "
                                  f"{dy0} or the scoring rules differ"}

    nat_last = int(national.index.max()) if len(national) else None
    result = {
        "city": plan.city, "city_name_zh": plan.name_zh, "report_year": int(year),
        "indicator": INDICATOR, "unit": "percent", "interval_level": level,
        "target": target, "target_year": ty,
        "target_rule": plan.settings.literacy.target_rule,
        "baseline_year": plan.baseline_year, "baseline": plan.baseline,
        "published_city": {str(k): v for k, v in plan.published_rates.items()},
        "observed": [{"year": int(r.year), "estimate": r.estimate, "se": r.se,
                      "ci": [getattr(r, "ci_low", None), getattr(r, "ci_high", None)],
                      "rule": plan.scoring_rule(int(r.year)),
                      "used_in_fit": int(r.year) in set(fit_obs["year"])}
                     for r in obs.itertuples()],
        "latest_year": ly, "latest_estimate": float(latest["estimate"]),
        "latest_se": float(latest["se"]),
        "latest_ci": [float(latest.get("ci_low", np.nan)), float(latest.get("ci_high", np.nan))],
        "latest_exceeds_target": bool(latest["estimate"] > target),
        # against the baseline year's survey estimate, else the plan's published baseline
        "change_since_baseline_pp": float(latest["estimate"])
        - obs_by_year.get(plan.baseline_year, plan.baseline),
        "rule_handling": handling, "fit_years": fit_obs["year"].astype(int).tolist(),
        "model_chosen": chosen, "model_chosen_reason": reason,
        "model_chosen_label_zh": tr.MODEL_LABELS_ZH[chosen],
        "model_selection": {"rule": "default_unless_better_on_backtest_and_loyo", "default": tr.DEFAULT_MODEL,
                            "sampling_se_pp": sampling_se},
        "between_year_variance": fit.heterogeneity(),
        "headline": headline,
        "forecast_year": ty, "forecast": fc["estimate"],
        "forecast_interval": [fc["lower"], fc["upper"]],
        "forecast_kind": "fitted" if ty <= ly else "forecast",
        "forecast_horizon": {str(int(r.year)): {"forecast": r.estimate, "lower": r.lower,
                                                "upper": r.upper}
                             for r in path[path["year"] > ly].itertuples()},
        "forecast_final_year": horizon,
        "forecast_final": float(path["estimate"].iloc[-1]),
        "forecast_final_interval": [float(path["lower"].iloc[-1]),
                                    float(path["upper"].iloc[-1])],
        "target_year_observed": target_observed,
        "year_target_reached": tr.year_reached(fit, target, int(fit_obs["year"].min()), horizon),
        "year_target_reached_observed": next((int(y) for y, v in sorted(obs_by_year.items())
                                              if v > target), None),
        "ex_ante": ex_ante,
        "implied_path": {str(k): v for k, v in implied.items()},
        "implied_annual_growth_pct": 100 * growth,
        "gap_to_implied": gap_obs, "gap_trend_to_implied": gap_trend,
        "benchmarks": {
            "national_latest_year": nat_last,
            "national_latest": float(national.loc[nat_last]) if nat_last else None,
            "province_scope": province_scope,
            "province_name_zh": (plan.settings.city.province_zh or province_scope),
            "province_latest_year": int(province.index.max()) if len(province) else None,
            "province_latest": float(province.iloc[-1]) if len(province) else None,
            "city_minus_national_latest_common_pp": next(
                (obs_by_year[y] - float(national.loc[y]) for y in sorted(obs_by_year,
                 reverse=True) if y in national.index), None),
            "targets": {f"{r.scope}_{r.year}": r.value
                        for r in bench[bench["kind"] == "target"].itertuples()},
        },
        "methods": {"models": comparison, "backtest": backtest},
        "groups": groups,
        "decomposition": decomposition,
    }
    result = _r(result)

    # ---- tidy series for the report and figures
    rows = [obs.rename(columns={"ci_low": "lower", "ci_high": "upper"})
            .assign(series="city", kind="observed", label_zh=f"{plan.name_zh}（调查估计）"),
            pd.DataFrame({"year": list(plan.published_rates), "estimate":
                          list(plan.published_rates.values()), "series": "city",
                          "kind": "published", "label_zh": f"{plan.name_zh}（公布值）"}),
            path.assign(series="city", kind=np.where(path["year"] > ly, "forecast", "fitted"),
                        label_zh=f"{plan.name_zh}（趋势，{tr.MODEL_LABELS_ZH[chosen]}）"),
            pd.DataFrame({"year": list(implied), "estimate": list(implied.values()),
                          "series": "implied_path", "kind": "implied",
                          "label_zh": "规划隐含路径（匀速增长）"}),
            pd.DataFrame({"year": [ty], "estimate": [target], "series": "city",
                          "kind": "target", "label_zh": "规划目标"})]
    province_zh = (plan.settings.city.province_zh or province_scope)
    for scope, lab in (("national", "全国"), (province_scope, province_zh)):
        b = bench[bench["scope"] == scope]
        rows.append(pd.DataFrame({"year": b["year"], "estimate": b["value"], "series": scope,
                                  "kind": b["kind"], "label_zh": lab}))
    for lv in FAN_BANDS:
        pb = fit.predict(years_all, lv)
        rows.append(pb.assign(series=f"city_band_{int(lv * 100)}", kind="band",
                              label_zh=f"{int(lv * 100)}%预测区间"))
    series = pd.concat([*rows, *group_series], ignore_index=True)
    series = series[["series", "year", "estimate", "lower", "upper", "kind", "label_zh"]]
    series = series.astype({"series": "string", "year": "int64", "estimate": "float64",
                            "lower": "float64", "upper": "float64", "kind": "string",
                            "label_zh": "string"})

    out_dir.mkdir(parents=True, exist_ok=True)
    fig_dir = out_dir / "figures"
    outputs = [out_dir / "trajectory.json", out_dir / "trajectory_series.parquet"]
    series.to_parquet(outputs[1], index=False)
    if dec_table is not None:
        outputs.append(out_dir / "decomposition.parquet")
        dec_table.to_parquet(outputs[-1], index=False)
    outputs.append(fan_chart(series, result, fig_dir / "fan_chart.png"))
    outputs.append(group_chart(series, result, fig_dir / "group_trends.png"))
    write_json(outputs[0], result)
    write_manifest(out_dir, STAGE, [*inputs, *dec_inputs], outputs,
                   {"city": plan.city, "year": year, "level": level, "rule_handling": handling,
                    "model_chosen": chosen, "model_chosen_reason": reason, "backtest_fit_until": bt_until})
    return result


FAN_BANDS = (0.5, 0.8, 0.95)


def fan_chart(series: pd.DataFrame, res: dict, path: Path) -> Path:
    """Observed city points with CIs, trend with fan, implied path, target, benchmarks."""
    use_cjk_font()
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 5))
    city = series[series["series"] == "city"]
    for lv, alpha in zip(FAN_BANDS, (0.35, 0.22, 0.12), strict=True):
        b = series[series["series"] == f"city_band_{int(lv * 100)}"]
        ax.fill_between(b["year"], b["lower"], b["upper"], color="tab:blue", alpha=alpha,
                        lw=0, label=f"{int(lv * 100)}%预测区间")
    trend = city[city["kind"].isin(["fitted", "forecast"])]
    ax.plot(trend["year"], trend["estimate"], color="tab:blue", lw=1.8,
            label=f"趋势（{res['model_chosen_label_zh']}）")
    o = city[city["kind"] == "observed"]
    old = {d["year"] for d in res["observed"] if not d["used_in_fit"]}
    for is_old, sub in o.groupby(o["year"].isin(old)):
        ax.errorbar(sub["year"], sub["estimate"],
                    yerr=[sub["estimate"] - sub["lower"], sub["upper"] - sub["estimate"]],
                    fmt="o", mfc="white" if is_old else "tab:blue", color="tab:blue",
                    capsize=3, zorder=5,
                    label="调查估计（旧口径，未纳入拟合）" if is_old else "调查估计及95%置信区间")
    pub = city[city["kind"] == "published"]
    ax.scatter(pub["year"], pub["estimate"], marker="x", color="tab:red", zorder=6,
               label="规划公布值")
    imp = series[series["series"] == "implied_path"]
    ax.plot(imp["year"], imp["estimate"], ls="--", color="tab:red", label="规划隐含路径")
    ax.axhline(res["target"], ls=":", color="tab:red", lw=1)
    x0 = min(2015, int(series.loc[series["series"] == "city", "year"].min())) - 0.5
    horizon = res["forecast_final_year"]
    ax.annotate(f"目标 {res['target']:g}%（{res['target_year']}年）", (horizon, res["target"]),
                xytext=(0, -10), textcoords="offset points", color="tab:red", fontsize=8,
                ha="right")
    for scope, color in (("national", "0.35"), (res["benchmarks"]["province_scope"], "tab:green")):
        s = series[(series["series"] == scope) & (series["kind"] == "observed")]
        if len(s):
            ax.plot(s["year"], s["estimate"], marker="s", ms=3, color=color, lw=1,
                    label=s["label_zh"].iloc[0])
    ax.set_xlim(x0, horizon + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, None)
    ax.set_xlabel("年份")
    ax.set_ylabel("具备科学素质的公民比例（%）")
    ax.set_title(f"{res['city_name_zh']}公民科学素质水平：观测、趋势与目标")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", ncol=2, frameon=False)
    return save_figure(fig, path)


def group_chart(series: pd.DataFrame, res: dict, path: Path) -> Path:
    """Observed and fitted series per key group and per urban/rural level."""
    use_cjk_font()
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    for ax, domain in zip(axes, GROUP_DOMAINS, strict=True):
        sub = series[series["series"].str.startswith(f"{domain}:")]
        for i, (_name, g) in enumerate(sub.groupby("series", sort=True)):
            color = f"C{i}"
            o, f = g[g["kind"] == "observed"], g[g["kind"] == "fitted"]
            ax.errorbar(o["year"], o["estimate"],
                        yerr=[o["estimate"] - o["lower"], o["upper"] - o["estimate"]],
                        fmt="o", ms=4, color=color, capsize=2, label=g["label_zh"].iloc[0])
            if len(f):
                ax.plot(f["year"], f["estimate"], color=color, lw=1.2)
        years = sorted(sub["year"].unique())
        city = series[(series["series"] == "city") & (series["kind"] == "observed")
                      & series["year"].isin(years)]
        ax.plot(city["year"], city["estimate"], ls="--", color="0.4", lw=1, label="全市")
        ax.axhline(res["target"], ls=":", color="tab:red", lw=1)
        ax.set_title(DOMAIN_NAMES_ZH.get(domain, domain))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("年份")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
    axes[0].set_ylabel("具备科学素质的比例（%）")
    fig.suptitle("分人群与城乡的科学素质趋势（实线为logit线性趋势）")
    return save_figure(fig, path)


# ---------------------------------------------------------------- tables for notebook/report

def models_table_zh(res: dict) -> pd.DataFrame:
    """One row per candidate model: LOYO error and its forecast for the target year."""
    rows = []
    for name, m in res["methods"]["models"].items():
        lo, hi = m["forecast_interval"]
        rows.append({"模型": m["label_zh"], "留一年误差RMSE（百分点）": m["loyo_rmse_pp"],
                     "留一年误差MAE（百分点）": m["loyo_mae_pp"],
                     "留一年误差/抽样标准误（均方根）": m["loyo_rms_z"],
                     "年际方差": m["between_year_variance"]["tau2"],
                     f"{res['target_year']}年预测（%）": m["forecast"],
                     "95%区间": f"{lo:.1f}–{hi:.1f}",
                     f"超过{res['target']:g}%的概率": m["p_exceeds_target"],
                     "采用": "是" if name == res["model_chosen"] else ""})
    return pd.DataFrame(rows)


def backtest_table_zh(res: dict) -> pd.DataFrame:
    """National backtest: predicted, published and error per year and model."""
    rows = []
    for m in (res["methods"].get("backtest") or {}).values():
        for y, v in m["by_year"].items():
            rows.append({"模型": m["label_zh"], "年份": int(y), "预测（%）": v["predicted"],
                         "公布值（%）": v["published"], "误差（百分点）": v["error_pp"],
                         "公布值在95%区间内": "是" if v["inside_interval"] else "否"})
    return pd.DataFrame(rows)


def groups_table_zh(res: dict) -> pd.DataFrame:
    """Per group: latest observed share, average change a year, gap verdict."""
    rows = []
    for block in res["groups"].values():
        for lev, g in block["levels"].items():
            gap = block["gaps"].get(f"{lev}-city") or next(
                (v for k, v in block["gaps"].items() if lev in k.split("-")), {})
            last = max(g["observed"], key=int) if g["observed"] else None
            rows.append({"人群": g["label_zh"],
                         "最新年份": int(last) if last else None,
                         "最新估计（%）": g["observed"].get(last) if last else None,
                         "年均变化（百分点）": g.get("avg_change_pp_per_year"),
                         f"{res['target_year']}年趋势值（%）": g.get("forecast_target_year"),
                         "差距变化": gap.get("verdict_zh"),
                         "差距年均变化（百分点）": gap.get("slope_pp_per_year"),
                         "说明": g.get("note_zh", "")})
    out = pd.DataFrame(rows)
    out["最新年份"] = out["最新年份"].astype("Int64")
    return out


def decomposition_table_zh(res: dict) -> pd.DataFrame:
    """Composition and within-group parts of the change, both methods."""
    d = res.get("decomposition") or {}
    if "total_change_pp" not in d:
        return pd.DataFrame({"说明": [d.get("error", "无分解结果")]})
    ob = d["oaxaca"]
    rows = [{"方法": d["method_zh"], "部分": "总变化", "百分点": d["total_change_pp"]},
            {"方法": d["method_zh"], "部分": "人口结构变化", "百分点": d["composition_pp"]},
            {"方法": d["method_zh"], "部分": "组内提升", "百分点": d["within_pp"]},
            {"方法": d["secondary_method_zh"], "部分": "人口结构变化", "百分点": ob["composition_pp"]},
            {"方法": d["secondary_method_zh"], "部分": "组内提升", "百分点": ob["within_pp"]}]
    rows += [{"方法": d["secondary_method_zh"], "部分": f"其中：{d['factor_labels_zh'][f]}",
              "百分点": v} for f, v in ob["composition_by_factor_pp"].items()]
    return pd.DataFrame(rows)
