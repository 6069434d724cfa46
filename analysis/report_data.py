"""Everything the report prints, read from data/processed (never computed from raw data here)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from . import catalog
from .config import PROCESSED, Plan, processed_dir

SURVEY_YEAR_STAGES = ("01_clean", "02_weight_estimate")
REPORT_YEAR_STAGES = ("03_trajectory", "04_county_gaps", "05_plan_progress")


class ReportDataError(FileNotFoundError):
    """A result the report needs is missing: the message names the file and the notebook that writes it."""


@dataclass
class ReportData:
    plan: Plan
    year: int
    lang: str = "zh"
    processed_root: Path = PROCESSED

    def path(self, name: str, year: int | None = None) -> Path:
        path = catalog.output_path(self.plan, name, year or self.year, self.processed_root)
        if not path.exists():
            writer = catalog.writer(name)
            raise ReportDataError(f"{path} is missing: run notebook {writer} "
                                  f"(python -m analysis run --year {self.year})")
        return path

    def json(self, name: str, year: int | None = None) -> dict[str, Any]:
        return json.loads(self.path(name, year).read_text(encoding="utf-8"))

    def figure(self, name: str) -> Path:
        return self.path(f"figures/{name}")

    def figure_out(self, name: str) -> Path:
        """Where the report draws a figure in its language: figures/<lang>/<name> of the report year."""
        folder = processed_dir(self.plan.city, self.year, self.processed_root) / "figures" / self.lang
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    @cached_property
    def series(self) -> pd.DataFrame:
        """trajectory_series.parquet: the city, benchmark and group series of the trend figures."""
        return pd.read_parquet(self.path("trajectory_series.parquet"))

    @cached_property
    def estimates(self) -> pd.DataFrame:
        """estimates.parquet of every survey year up to the report year, stacked."""
        try:
            return catalog.load_estimates(self.plan, self.processed_root, up_to=self.year)
        except catalog.OutputError as exc:
            raise ReportDataError(str(exc)) from exc

    @cached_property
    def survey_years(self) -> list[int]:
        """Survey years up to the report year that have estimates."""
        return sorted(int(y) for y in self.estimates["year"].unique())

    def estimate(self, year: int, domain: str = "city", level: str = "all",
                 indicator: str = "literate") -> pd.Series:
        e = self.estimates
        row = e[(e.year == year) & (e.domain == domain) & (e.level == level) & (e.indicator == indicator)]
        if len(row) != 1:
            raise ReportDataError(f"estimates: expected one row for {year}/{domain}/{level}/{indicator}, "
                                  f"found {len(row)}")
        return row.iloc[0]

    @cached_property
    def trajectory(self) -> dict[str, Any]:
        return self.json("trajectory.json")

    @cached_property
    def county(self) -> dict[str, Any]:
        return self.json("county_gaps.json")

    @cached_property
    def sae(self) -> pd.DataFrame:
        sae = pd.read_parquet(self.path("sae.parquet"))
        return sae[sae["year"] == sae["year"].max()].reset_index(drop=True)

    @cached_property
    def progress(self) -> dict[str, Any]:
        return self.json("progress.json")

    def progress_table(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(self.path(f"progress_{name}.parquet"))

    @cached_property
    def cleaning(self) -> pd.DataFrame:
        """Rows in, kept and dropped per survey year (from each year's cleaning summary)."""
        rows = []
        for y in self.survey_years:
            s = pd.read_csv(self.path("cleaning_summary.csv", y))
            totals = s.set_index("rule")["n"]
            rows.append({"year": y, "input": int(totals["input"]), "kept": int(totals["kept"]),
                         "dropped": int(totals["dropped"])})
        return pd.DataFrame(rows)

    def cleaning_summary(self, year: int | None = None) -> pd.DataFrame:
        return pd.read_csv(self.path("cleaning_summary.csv", year))

    def weighting(self, year: int | None = None) -> dict[str, Any]:
        return self.json("weighting_diagnostics.json", year)

    def scoring(self, year: int | None = None) -> dict[str, Any]:
        return self.json("scoring_summary.json", year)

    @cached_property
    def manifests(self) -> list[dict[str, Any]]:
        """Manifests of the runs behind this report: 01 and 02 of each survey year, 03-05 of the report year."""
        found = []
        for y in sorted(set(self.survey_years) | {self.year}):
            d = processed_dir(self.plan.city, y, self.processed_root)
            stages = SURVEY_YEAR_STAGES if y in self.survey_years else ()
            if y == self.year:
                stages = (*stages, *REPORT_YEAR_STAGES)
            found += [json.loads(p.read_text(encoding="utf-8")) | {"year_dir": y}
                      for p in sorted(d.glob("manifest-*.json")) if p.stem.removeprefix("manifest-") in stages]
        return found

    def stale_reasons(self) -> list[str]:
        """Why the results behind this report do not come from one consistent run (empty when they do).

        Consistency is judged by content, as the runner skips tasks: every processed file a stage read
        must be the version its producing stage last wrote (the digests in the two manifests agree),
        and every stage must have read the plan file as it is now. Times are not compared: a stage
        rerun whose outputs come out the same leaves the stages after it valid.
        """
        from .provenance import sha256

        reasons = []
        by_stage = {(m["stage"], m["year_dir"]): m for m in self.manifests}
        for stage in REPORT_YEAR_STAGES:
            if (stage, self.year) not in by_stage:
                reasons.append(f"no results of {stage} for {self.year}")
        written = {name: (digest, m) for m in self.manifests for name, digest in m.get("outputs", {}).items()}
        plan_hash = sha256(self.plan.path)
        for m in self.manifests:
            for name, digest in m["inputs"].items():
                if Path(name).name == self.plan.path.name and digest != plan_hash:
                    reasons.append(f"{m['stage']} ({m['year_dir']}) ran with another version of {self.plan.path.name}")
                elif name in written and written[name][0] != digest:
                    producer = written[name][1]
                    reasons.append(f"{m['stage']} ({m['year_dir']}) read another version of {Path(name).name} than "
                                   f"{producer['stage']} ({producer['year_dir']}) wrote last")
        return sorted(set(reasons))

    def manifest_parameter(self, stage: str, name: str, year: int | None = None) -> Any:
        year = year or self.year
        for m in self.manifests:
            if m["stage"] == stage and m["year_dir"] == year:
                if name not in m["parameters"]:
                    raise ReportDataError(f"manifest of {stage} ({year}) has no parameter {name!r}")
                return m["parameters"][name]
        raise ReportDataError(f"no manifest of {stage} for {year}")

    @cached_property
    def synthetic(self) -> bool:
        from .provenance import synthetic_in

        return synthetic_in(self.manifests)

    def report_date(self, lang: str) -> str:
        """The report's date as the cover shows it (analysis.render.source_date: dated by the data)."""
        from .render import source_date  # the cover's rule, one place

        when = source_date(self.plan, self.year, self.processed_root)
        return f"{when.year}年{when.month}月" if lang == "zh" else when.date().isoformat()

    def design_counts(self) -> pd.DataFrame:
        """Per survey year: respondents kept, strata and PSUs, counted from survey_clean.parquet."""
        rows = []
        for y in self.survey_years:
            d = pd.read_parquet(self.path("survey_clean.parquet", y), columns=["stratum", "psu"])
            rows.append({"year": y, "n": len(d), "strata": d["stratum"].nunique(),
                         "psus": d[["stratum", "psu"]].drop_duplicates().shape[0]})
        return pd.DataFrame(rows)

