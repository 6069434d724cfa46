"""The report's figures drawn in its language from results saved in data/processed.

The report calls these at render time, one PNG per figure and language
(figures/<lang>/ beside the stage's outputs), so a figure's titles, legends,
axes and map labels are in the language of the report that shows it, set in
that language's font (analysis/plotting.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from . import geo
from .config import Plan
from .plotting import PRINT_WIDTH_IN, plt, save_figure, use_font
from .report_tables import level_rank, natural_order
from .vocabulary import TERMS, capitalise, city_name, domain_label, level_label, plan_word, term

STATUS_COLORS = {"已完成": "#2e7d32", "推进中": "#f9a825", "部分年度未完成": "#ef6c00", "未启动": "#c62828",
                 "未报送": "#9e9e9e"}
STATUS_COLUMNS = {"已完成": "n_completed", "推进中": "n_in_progress", "未启动": "n_not_started",
                  "部分年度未完成": "n_partial", "未报送": "n_not_reported"}
FAN_BANDS = (0.5, 0.8, 0.95)


def _tr(lang: str, zh: str, en: str) -> str:
    return zh if lang == "zh" else en


def _balanced_split(sizes: list[int]) -> int:
    """Where to cut a list of panel sizes into two columns of nearly equal height (index of the first right one)."""
    total, best, cut = sum(sizes), None, 1
    for i in range(1, len(sizes)):
        gap = abs(total - 2 * sum(sizes[:i]))
        if best is None or gap < best:
            best, cut = gap, i
    return cut if len(sizes) > 1 else len(sizes)


def estimates_by_group(estimates: pd.DataFrame, plan: Plan, year: int, lang: str, path: Path) -> Path:
    """Literate share by group with 95% intervals; suppressed cells are marked, not drawn.

    The groups' panels stand in two columns, so the figure fits a page at the printed width with 8 pt labels.
    """
    use_font(lang)
    e = estimates[(estimates["year"] == year) & (estimates["indicator"] == "literate")]
    e = natural_order(e, plan)  # levels in their natural order (catalog sorts them by code)
    t, city = e[e["domain"] != "city"], e[e["domain"] == "city"].iloc[0]
    domains = [d for d in TERMS["domain"] if d in set(t["domain"])]
    heights = [max(2, (t["domain"] == d).sum()) for d in domains]
    cut = _balanced_split([h + 2 for h in heights])  # a panel's title and margins count about two rows
    columns = [(domains[:cut], heights[:cut]), (domains[cut:], heights[cut:])]
    rows = max(sum(hs) + 2 * len(hs) for _, hs in columns)
    fig = plt.figure(figsize=(PRINT_WIDTH_IN, 0.17 * rows + 1.0), layout="constrained")
    xmax = float(np.nanmax(t["ci_high"].to_numpy(float))) * 1.05
    for sub, (doms, hs) in zip(fig.subfigures(1, 2, wspace=0.04), columns, strict=True):
        if not doms:
            continue
        axes = sub.subplots(len(doms), 1, gridspec_kw={"height_ratios": hs}, sharex=True, squeeze=False)[:, 0]
        for ax, dom in zip(axes, doms, strict=True):
            part = t[t["domain"] == dom].reset_index(drop=True)
            ypos = np.arange(len(part))[::-1]
            ok = ~part["suppressed"].to_numpy(bool)
            err = np.nan_to_num(np.vstack([part["estimate"] - part["ci_low"], part["ci_high"] - part["estimate"]]))
            ax.barh(ypos[ok], part["estimate"][ok], color="#3b6ea5", height=0.6)
            ax.errorbar(part["estimate"][ok], ypos[ok], xerr=err[:, ok], fmt="none", ecolor="black", capsize=2,
                        lw=0.8)
            for yy in ypos[~ok]:
                ax.text(0.5, yy, _tr(lang, "样本不足，不发布", "not published"), va="center", fontsize=7,
                        color="#555555")
            ax.set_yticks(ypos, [level_label(plan, dom, lv, lang) for lv in part["level"]], fontsize=7.5)
            ax.set_ylim(-0.6, len(part) - 0.4)
            ax.set_xlim(0, xmax)
            ax.tick_params(axis="x", labelsize=7.5)
            ax.axvline(city["estimate"], color="#c0392b", ls="--", lw=0.9)
            ax.set_title(domain_label(dom, lang), fontsize=8.5, loc="left")
    fig.supxlabel(_tr(lang, "具备科学素质的比例（%）；横线为95%置信区间，虚线为全市",
                      "Share with scientific literacy (%); bars: 95% CI; dashed line: city"), fontsize=8)
    fig.suptitle(_tr(lang, f"{city_name(plan, lang)}{year}年公民具备科学素质的比例：分群体估计",
                     f"Share of citizens with scientific literacy by group, {city_name(plan, lang)}, {year}"),
                 fontsize=9.5)
    return save_figure(fig, path)


def _benchmark_label(scope: str, traj: dict[str, Any], plan: Plan, lang: str) -> str:
    if scope == "national":
        return term("word", "national", lang)
    city = plan.settings.city.given()
    return str(city.get(f"province_{lang}") or city.get("province_zh") or scope)


def fan_chart(series: pd.DataFrame, traj: dict[str, Any], plan: Plan, lang: str, path: Path) -> Path:
    """Observed city shares with CIs, the chosen trend with its fan, the implied path, target and benchmarks."""
    use_font(lang)
    horizon = int(traj.get("forecast_final_year") or series["year"].max())
    fig, ax = plt.subplots(figsize=(8, 5))
    city = series[series["series"] == "city"]
    for lv, alpha in zip(FAN_BANDS, (0.35, 0.22, 0.12), strict=True):
        b = series[series["series"] == f"city_band_{int(lv * 100)}"]
        ax.fill_between(b["year"], b["lower"], b["upper"], color="tab:blue", alpha=alpha, lw=0,
                        label=_tr(lang, f"{int(lv * 100)}%预测区间", f"{int(lv * 100)}% forecast interval"))
    trend = city[city["kind"].isin(["fitted", "forecast"])]
    model = term("model_short", traj["model_chosen"], lang)
    ax.plot(trend["year"], trend["estimate"], color="tab:blue", lw=1.8, label=_tr(lang, f"趋势（{model}）",
                                                                                 f"Trend ({model})"))
    o = city[city["kind"] == "observed"]
    old = {d["year"] for d in traj["observed"] if not d["used_in_fit"]}
    for is_old, sub in o.groupby(o["year"].isin(old)):
        ax.errorbar(sub["year"], sub["estimate"], yerr=[sub["estimate"] - sub["lower"], sub["upper"] - sub["estimate"]],
                    fmt="o", mfc="white" if is_old else "tab:blue", color="tab:blue", capsize=3, zorder=5,
                    label=_tr(lang, "调查估计（旧口径，未纳入拟合）", "Survey estimate (old rule, not fitted)") if is_old
                    else _tr(lang, "调查估计及95%置信区间", "Survey estimate with 95% CI"))
    pub = city[city["kind"] == "published"]
    ax.scatter(pub["year"], pub["estimate"], marker="x", color="tab:red", zorder=6,
               label=_tr(lang, "规划公布值", "Published in the plan"))
    imp = series[series["series"] == "implied_path"]
    ax.plot(imp["year"], imp["estimate"], ls="--", color="tab:red", label=_tr(lang, "规划隐含路径", "Plan's implied path"))
    ax.axhline(traj["target"], ls=":", color="tab:red", lw=1)
    ax.annotate(_tr(lang, f"目标 {traj['target']:g}%（{traj['target_year']}年）",
                    f"Target {traj['target']:g}% ({traj['target_year']})"), (horizon, traj["target"]),
                xytext=(0, -10), textcoords="offset points", color="tab:red", fontsize=8, ha="right")
    for scope, color in (("national", "0.35"), ((traj.get("benchmarks") or {}).get("province_scope"), "tab:green")):
        s = series[(series["series"] == scope) & (series["kind"] == "observed")]
        if scope and len(s):
            ax.plot(s["year"], s["estimate"], marker="s", ms=3, color=color, lw=1,
                    label=_benchmark_label(scope, traj, plan, lang))
    ax.set_xlim(min(2015, int(city["year"].min())) - 0.5, horizon + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, None)
    ax.set_xlabel(term("word", "year", lang))
    ax.set_ylabel(_tr(lang, "具备科学素质的公民比例（%）", "Citizens with scientific literacy (%)"))
    ax.set_title(_tr(lang, f"{city_name(plan, lang)}公民科学素质水平：观测、趋势与目标",
                     f"Scientific literacy in {city_name(plan, lang)}: observed, trend and target"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", ncol=2, frameon=False)
    return save_figure(fig, path)


def group_trends(series: pd.DataFrame, traj: dict[str, Any], plan: Plan, lang: str, path: Path) -> Path:
    """Observed and fitted shares per key group and per urban/rural level, with the city for comparison."""
    use_font(lang)
    domains = [d for d in ("key_group", "urban_rural") if series["series"].str.startswith(f"{d}:").any()]
    # at the printed width, the legend under each panel (inside it covered the points)
    fig, axes = plt.subplots(1, max(len(domains), 1), figsize=(PRINT_WIDTH_IN, 3.4), sharey=True, squeeze=False,
                             layout="constrained")
    for ax, domain in zip(axes[0], domains, strict=False):
        sub = series[series["series"].str.startswith(f"{domain}:")]
        groups = sorted(sub.groupby("series"), key=lambda kv: level_rank(plan, domain, str(kv[0]).split(":", 1)[1]))
        for i, (key, g) in enumerate(groups):
            o, f = g[g["kind"] == "observed"], g[g["kind"] == "fitted"]
            ax.errorbar(o["year"], o["estimate"], yerr=[o["estimate"] - o["lower"], o["upper"] - o["estimate"]],
                        fmt="o", ms=4, color=f"C{i}", capsize=2,
                        label=level_label(plan, domain, str(key).split(":", 1)[1], lang))
            if len(f):
                ax.plot(f["year"], f["estimate"], color=f"C{i}", lw=1.2)
        city = series[(series["series"] == "city") & (series["kind"] == "observed")
                      & series["year"].isin(sorted(sub["year"].unique()))]
        ax.plot(city["year"], city["estimate"], ls="--", color="0.4", lw=1, label=term("word", "all_city", lang))
        ax.axhline(traj["target"], ls=":", color="tab:red", lw=1)
        ax.set_title(domain_label(domain, lang))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(term("word", "year", lang))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7.5, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
    axes[0][0].set_ylabel(_tr(lang, "具备科学素质的比例（%）", "Share with scientific literacy (%)"))
    fig.suptitle(_tr(lang, "分人群与城乡的科学素质趋势（实线为logit线性趋势）",
                     "Trends by key group and for urban and rural areas (lines: logit-linear trend)"), fontsize=9.5)
    return save_figure(fig, path)


MAPS = {  # key in county_gaps.json maps.files -> (column, breaks key, colour map, centre)
    "estimate": ("benchmarked", "estimate", "YlGnBu", None),
    "gap": ("gap_to_target", "gap_to_target", "RdYlBu", 0.0),
    "change": ("change_since_baseline", "change_since_baseline", "PuOr", 0.0),
}


def _map_words(key: str, county: dict[str, Any], lang: str) -> tuple[str, str]:
    year, target, base = county["year"], county["target"], county.get("baseline_year")
    words = {
        "estimate": (_tr(lang, f"{year}年各县（市、区）具备科学素质的比例（%）", f"Share with scientific literacy by "
                     f"division, {year} (%)"), _tr(lang, "比例（%）", "Share (%)")),
        "gap": (_tr(lang, f"{year}年与{target:g}%目标的差距（百分点）", f"Gap to the {target:g}% target, {year} (points)"),
                _tr(lang, "差距（百分点）", "Gap (points)")),
        "change": (_tr(lang, f"{base}—{year}年变化（百分点）", f"Change {base}–{year} (points)"),
                   _tr(lang, "变化（百分点）", "Change (points)")),
    }
    return words[key]


def division_map(key: str, sae: pd.DataFrame, county: dict[str, Any], plan: Plan, lang: str, path: Path) -> Path:
    """One classed map of the divisions ('estimate', 'gap', 'change' or 'cv'), with stage 04's class breaks."""
    breaks = county["maps"]["breaks"]
    gdf = geo.load_divisions(plan).merge(sae.drop(columns=["name_zh"], errors="ignore"), on="division_code",
                                         how="left")
    note = geo.source_note(plan, lang)
    if key == "cv":
        use_font(lang)
        fig, axes = plt.subplots(1, 2, figsize=(11, 6.2))
        # the panels' titles say only which estimate (the shared title above), so they fit the printed width
        fig.suptitle(_tr(lang, f"{county['year']}年变异系数", f"Coefficient of variation, {county['year']}"),
                     fontsize=10)
        for ax, col, which in ((axes[0], "direct_cv", _tr(lang, "直接估计", "Direct estimate")),
                               (axes[1], "fh_cv", _tr(lang, "Fay–Herriot模型估计", "Fay–Herriot model"))):
            geo.choropleth(gdf, col, breaks["cv"], title=which,
                           legend_title=_tr(lang, "变异系数", "CV"), note=note, cmap="OrRd", fmt="{:.2f}",
                           label_fmt="{:.2f}", ax=ax, lang=lang)
        fig.text(0.02, 0.01, note, fontsize=7, color="#555555")
        return save_figure(fig, path)
    column, breaks_key, cmap, center = MAPS[key]
    title, legend = _map_words(key, county, lang)
    fig = geo.choropleth(gdf, column, breaks[breaks_key], title=title, legend_title=legend, note=note, cmap=cmap,
                         label_fmt="{:.1f}", center=center, lang=lang)
    return save_figure(fig, path)


def progress_by_group(by_group: pd.DataFrame, plan: Plan, year: int, lang: str, path: Path) -> Path:
    """Status of the measures of each action and project as of the report year (counts)."""
    use_font(lang)
    # at the printed width with the labels inside it (long English names left the bars a sliver)
    fig, ax = plt.subplots(figsize=(PRINT_WIDTH_IN, 0.28 * len(by_group) + 1.3), layout="constrained")
    labels = [plan_word(plan, "actions", n, lang).removeprefix("实施") for n in by_group["group_name"]]
    left = np.zeros(len(labels))
    for status, col in STATUS_COLUMNS.items():
        values = by_group[col].to_numpy(dtype=float)
        ax.barh(labels, values, left=left, color=STATUS_COLORS[status], label=term("measure_status", status, lang))
        left += values
    ax.invert_yaxis()
    ax.tick_params(labelsize=8)
    fig.legend(loc="outside lower center", fontsize=7.5, ncol=len(STATUS_COLUMNS), frameon=False)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(_tr(lang, f"各提升行动、重点工程措施完成情况（截至{year}年底，单位：项）",
                     f"Measures by action and project, status at the end of {year} (count)"), fontsize=9.5)
    return save_figure(fig, path)


def _stock_indicators(ind: pd.DataFrame, progress: dict[str, Any]) -> list[dict[str, Any]]:
    """Indicators with one target to reach by a deadline and values from the returns (not the survey)."""
    out = []
    for spec in progress["indicators"]:
        rows = ind[ind["indicator_id"] == spec["id"]]
        if spec["deadline"] == "every_year" or rows.empty or (rows["scope"] != "city").any() \
                or (rows["source"] == "survey").any():
            continue
        out.append(spec)
    return out


def indicators_stock(ind: pd.DataFrame, progress: dict[str, Any], lang: str, path: Path) -> Path:
    """Counts to reach by the deadline (e.g. science bases by level): values by year and the target."""
    use_font(lang)
    stock = _stock_indicators(ind, progress)
    fig, axes = plt.subplots(1, max(len(stock), 1), figsize=(PRINT_WIDTH_IN, 2.6), squeeze=False)
    for ax, spec in zip(axes[0], stock, strict=False):
        d = ind[(ind["indicator_id"] == spec["id"]) & (ind["scope"] == "city")]
        sign = {">=": "≥", "<=": "≤"}.get(spec["comparison"], spec["comparison"])
        ax.plot(d["year"], d["value"], marker="o", color="#1565c0")
        ax.axhline(spec["target"], color="black", ls="--", lw=1)
        ax.scatter([int(spec["deadline"])], [spec["target"]], marker="*", s=120, color="#c62828", zorder=3,
                   label=_tr(lang, f"{spec['deadline']}年目标 {sign}{spec['target']:g}",
                             f"Target {sign}{spec['target']:g} by {spec['deadline']}"))
        name = spec.get(f"name_{lang}") or spec["name_zh"]
        ax.set_title(capitalise(str(name)), loc="left", fontsize=8.5 if lang == "zh" else 7.5, wrap=True)
        unit = term("unit_of_count", spec["unit"], lang, default=spec["unit"])
        ax.set_ylabel(_tr(lang, f"数量（{unit}）", "Number"), fontsize=7.5)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        years = sorted(set(d["year"]) | {int(spec["deadline"])})
        ax.set_xticks(years[::2] if years[-1] in years[::2] else years[::-2][::-1])  # every other year, the last
        ax.tick_params(labelsize=7)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)
