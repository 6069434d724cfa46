"""The provincial report (reports/province.qmd): what it reads, and rendering it with the city report's
template and machinery (analysis/render.py)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import catalog
from .config import PROCESSED, REPORTS, ROOT, processed_dir
from .errors import UserError
from .provenance import uses_synthetic_inputs

PROVINCE_QMD = REPORTS / "province.qmd"


class ProvinceReportError(UserError):
    """The provincial stage's outputs are missing."""


def province_report_sources() -> list[Path]:
    """The report's own files (for its content key): the .qmd, its sections and the Typst template."""
    files = [PROVINCE_QMD, *sorted((REPORTS / "sections" / "province").glob("*.qmd"))]
    return files + sorted(p for p in (REPORTS / "template").rglob("*") if p.is_file())


class ProvinceData:
    """The provincial stage's outputs, as the report reads them."""

    def __init__(self, province: str, year: int, processed_root: Path | None = None, lang: str = "zh"):
        self.province, self.year, self.lang = province, int(year), lang
        self.root = Path(processed_root or PROCESSED)
        self.dir = processed_dir(province, year, self.root)
        try:
            self.summary: dict[str, Any] = catalog.read_province_json(province, "province.json", year, self.root)
            self.league = catalog.read_province_table(province, "league.parquet", year, self.root)
            self.estimates = catalog.read_province_table(province, "province_estimates.parquet", year,
                                                         self.root).dropna(subset=["estimate"])
            self.cities = catalog.read_province_json(province, "cities.json", None, self.root)
        except catalog.MissingOutput as err:
            raise ProvinceReportError(str(err)) from err
        self.left_out = self.cities.get("left_out", [])

    @property
    def synthetic_cities(self) -> list[str]:
        return self.league.loc[self.league["synthetic"], "name_zh"].tolist()

    @property
    def synthetic_cities_en(self) -> list[str]:
        return self.league.loc[self.league["synthetic"], "name_en"].tolist()

    @property
    def mean_rank_width(self) -> float:
        return float((self.league["rank_high"] - self.league["rank_low"] + 1).mean())

    def figure(self, name: str) -> Path:
        """A figure of the provincial stage in the report's language (figures/ or figures/en/)."""
        folder = "figures/en" if self.lang == "en" else "figures"
        return catalog.require_province(self.province, f"{folder}/{name}", self.year, self.root)

    def synthetic(self) -> bool:
        """Built on synthetic inputs: a synthetic city plan, or any city's manifests naming synthetic files."""
        if len(self.synthetic_cities):
            return True
        return any(uses_synthetic_inputs(processed_dir(c, None, self.root)) for c in self.league["city"])

    def notice(self, lang: str) -> str | None:
        if not self.synthetic():
            return None
        if lang == "zh":
            return ("本报告使用合成数据（synthetic data）演示多城市比较方法：合成城市的规划目标、人口、调查与填报数据"
                    "均由确定性合成数据生成器产生，不是这些城市的真实情况，不得作为政策依据引用。")
        return ("This report uses SYNTHETIC demo data to demonstrate the comparison of cities: targets, populations, "
                "surveys and returns of the synthetic cities are generated, not real; do not cite them.")


def report_date(d: ProvinceData) -> datetime:
    """The report's fixed date: SOURCE_DATE_EPOCH, else the latest of the cities' report dates (reruns match)."""
    from .config import load_plan
    from .render import source_date

    dates = []
    for c in d.cities["cities"]:
        raw = Path(c["raw_dir"])
        dates.append(source_date(load_plan(c["city"], raw if raw.is_absolute() else ROOT / raw), d.year, d.root))
    return max(dates) if dates else datetime(d.year, 12, 31, tzinfo=UTC)


def province_metadata(d: ProvinceData, lang: str) -> dict[str, Any]:
    s = d.summary
    when = report_date(d)
    if lang == "zh":
        title = f"{s['name_zh']}全民科学素质行动实施情况：各市比较（{d.year}年）"
        subtitle = f"{s['n_cities']}个城市的排行、全省估计与排名的不确定性"
        shown = f"{when.year}年{when.month}月"
    else:
        title = f"Civic Scientific Literacy in the Cities of the Province, {d.year}"
        subtitle = f"{s['n_cities']} cities: league table, provincial estimate, rank uncertainty"
        shown = when.date().isoformat()
    return {"title": title, "subtitle": subtitle, "issuer": None, "date": shown, "notice": d.notice(lang),
            "lang": lang, "synthetic": d.synthetic(), "timestamp": when}


def render_province(province: str, year: int, lang: str = "zh", processed_root: Path | None = None,
                    raw_dir: Path | None = None, out_dir: Path | None = None, engine: str = "auto",
                    work_dir: Path | None = None) -> dict[str, Path]:
    """Render reports/province.qmd for (province, year, lang) to PDF and HTML (and its workbook).

    Made in a work folder and published together (render.publish), like the city report."""
    from . import render as r

    processed_root = Path(processed_root or PROCESSED)
    out_dir = Path(out_dir or REPORTS / "output")
    d = ProvinceData(province, year, processed_root)
    meta = province_metadata(d, lang)
    stem = f"{province}-{year}-comparison{'' if lang == 'zh' else '-' + lang}"
    use_quarto = engine == "quarto" or (engine == "auto" and shutil.which("quarto"))
    work = Path(work_dir) if work_dir else ROOT / "build"
    staging = work / ("quarto" if use_quarto else "offline") / stem
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    params = {"city": province, "year": int(year), "lang": lang, "processed_root": str(processed_root),
              "raw_dir": str(raw_dir or ROOT / "data" / "raw"), "workbook": str(staging / f"{stem}-tables.xlsx")}
    executed = Path(work_dir) / "executed" if work_dir else REPORTS / "executed"
    with r.report_environment(meta["timestamp"]):
        if use_quarto:
            made = r._render_quarto(PROVINCE_QMD, params, meta, staging, stem)
        else:
            made = r._render_offline(PROVINCE_QMD, params, meta, staging, stem, executed)
    workbook = Path(params["workbook"])
    if workbook.exists():
        made["xlsx"] = workbook
    return r.publish(made, out_dir, stale=[out_dir / workbook.name])
