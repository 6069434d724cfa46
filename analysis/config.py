"""Project paths and the city plan file (the city is data, never code)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(os.environ.get("SCILIT_ROOT", Path(__file__).resolve().parents[1]))
RAW = ROOT / "data" / "raw"
PROCESSED = ROOT / "data" / "processed"
NOTEBOOKS = ROOT / "notebooks"
REPORTS = ROOT / "reports"


class PlanError(ValueError):
    """The plan file is missing or does not say what the code needs."""


@dataclass(frozen=True)
class Plan:
    """A city's plan file, read from data/raw/plan/<city>.yml."""

    data: dict[str, Any]
    path: Path
    raw_dir: Path = field(default=RAW)

    @property
    def city(self) -> str:
        return self.data["city"]["id"]

    @property
    def code(self) -> str:
        return str(self.data["city"]["code"])

    @property
    def name_zh(self) -> str:
        return self.data["city"]["name_zh"]

    @property
    def divisions(self) -> list[dict[str, Any]]:
        return self.data["divisions"]

    @cached_property
    def division_names(self) -> dict[str, str]:
        """Division code -> official Chinese name."""
        return {str(d["code"]): d["name_zh"] for d in self.divisions}

    @property
    def target(self) -> float:
        return float(self.data["literacy"]["target"])

    @property
    def target_year(self) -> int:
        return int(self.data["literacy"]["target_year"])

    @property
    def baseline(self) -> float:
        return float(self.data["literacy"]["baseline"])

    @property
    def baseline_year(self) -> int:
        return int(self.data["literacy"]["baseline_year"])

    @property
    def period(self) -> tuple[int, int]:
        p = self.data["period"]
        return int(p["start"]), int(p["end"])

    @property
    def published_rates(self) -> dict[int, float]:
        return {int(r["year"]): float(r["value"]) for r in self.data["literacy"]["published"]}

    @property
    def survey_years(self) -> list[int]:
        survey = self.data["survey"]
        years = survey.get("years", survey.get("demo_years"))
        if not years:
            raise PlanError(f"{self.path}: survey.years lists no survey year")
        return sorted(int(y) for y in years)

    def scoring_rule(self, year: int) -> str:
        rules = {int(k): v for k, v in self.data["scoring"]["rule_by_year"].items()}
        if year not in rules:
            raise PlanError(f"{self.path}: scoring.rule_by_year has no rule for {year}")
        return rules[year]

    def raw_survey_path(self, year: int) -> Path:
        return self.raw_dir / self.data["survey"]["raw_pattern"].format(city=self.city, year=year)

    @property
    def questionnaire_path(self) -> Path:
        return self.raw_dir / self.data["survey"]["questionnaire"].format(city=self.city)

    @property
    def census_margins_path(self) -> Path:
        return self.raw_dir / self.data["survey"]["census_margins"].format(city=self.city)

    def get(self, dotted: str, default: Any = None) -> Any:
        """Value at a dotted path such as 'survey.cleaning.age_min'."""
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node


REQUIRED_KEYS = ("city", "period", "divisions", "literacy", "scoring", "survey")


def load_plan(city: str, raw_dir: Path | None = None) -> Plan:
    """Read and check data/raw/plan/<city>.yml."""
    raw_dir = Path(raw_dir) if raw_dir is not None else RAW
    path = raw_dir / "plan" / f"{city}.yml"
    if not path.exists():
        known = sorted(p.stem for p in (raw_dir / "plan").glob("*.yml"))
        raise PlanError(f"no plan file {path}; plans present: {', '.join(known) or 'none'}")
    with path.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    missing = [k for k in REQUIRED_KEYS if k not in (data or {})]
    if missing:
        raise PlanError(f"{path}: missing top-level keys {missing}")
    codes = [str(d["code"]) for d in data["divisions"]]
    if len(set(codes)) != len(codes):
        raise PlanError(f"{path}: duplicate division codes")
    if data["city"]["id"] != city:
        raise PlanError(f"{path}: city.id is {data['city']['id']!r}, expected {city!r}")
    return Plan(data=data, path=path, raw_dir=raw_dir)


def processed_dir(city: str, year: int | None = None, root: Path | None = None) -> Path:
    """data/processed/<city>/<year>/ (created on demand by writers, not here)."""
    base = (Path(root) if root is not None else PROCESSED) / city
    return base if year is None else base / str(year)
