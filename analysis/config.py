"""Project paths and the city plan file (the city is data, never code)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .settings import PlanError, Settings, parse_settings, read_plan_yaml

__all__ = ["NOTEBOOKS", "PROCESSED", "RAW", "REPORTS", "ROOT", "Plan", "PlanError", "load_plan",
           "processed_dir"]
ROOT = Path(os.environ.get("SCILIT_ROOT", Path(__file__).resolve().parents[1]))
RAW = ROOT / "data" / "raw"
PROCESSED = ROOT / "data" / "processed"
NOTEBOOKS = ROOT / "notebooks"
REPORTS = ROOT / "reports"


@dataclass(frozen=True)
class Plan:
    """A city's plan file, read from data/raw/plan/<city>.yml."""

    data: dict[str, Any]
    path: Path
    raw_dir: Path = field(default=RAW)

    @cached_property
    def settings(self) -> Settings:
        """The typed settings of this plan (analysis.settings); parsed on first use."""
        return parse_settings(self.data, self.path)

    @property
    def city(self) -> str:
        return self.settings.city.id

    @property
    def code(self) -> str:
        return self.settings.city.code

    @property
    def name_zh(self) -> str:
        return self.settings.city.name_zh

    @property
    def divisions(self) -> list[dict[str, Any]]:
        return self.settings.divisions

    @cached_property
    def division_names(self) -> dict[str, str]:
        """Division code -> official Chinese name."""
        return {str(d["code"]): d["name_zh"] for d in self.divisions}

    @property
    def target(self) -> float:
        return self.settings.literacy.target

    @property
    def target_year(self) -> int:
        return self.settings.literacy.target_year

    @property
    def baseline(self) -> float:
        return self.settings.literacy.baseline

    @property
    def baseline_year(self) -> int:
        return self.settings.literacy.baseline_year

    @property
    def period(self) -> tuple[int, int]:
        return self.settings.period.start, self.settings.period.end

    @property
    def published_rates(self) -> dict[int, float]:
        return {int(r["year"]): float(r["value"]) for r in self.settings.literacy.published}

    @property
    def survey_years(self) -> list[int]:
        survey = self.settings.survey
        years = survey.years if survey.years is not None else survey.demo_years
        if not years:
            raise PlanError(f"{self.path}: key 'survey.years' lists no survey year")
        return sorted(years)

    def scoring_rule(self, year: int) -> str:
        rules = self.settings.scoring.rule_by_year
        if year not in rules:
            raise PlanError(f"{self.path}: key 'scoring.rule_by_year' has no rule for {year}")
        return rules[year]

    def _raw(self, pattern: str, **fill: Any) -> Path:
        return self.raw_dir / pattern.format(city=self.city, **fill)

    def raw_survey_path(self, year: int) -> Path:
        return self._raw(self.settings.survey.raw_pattern, year=year)

    @property
    def questionnaire_path(self) -> Path:
        return self._raw(self.settings.survey.questionnaire)

    @property
    def census_margins_path(self) -> Path:
        return self._raw(self.settings.survey.census_margins)


REQUIRED_KEYS = ("city", "period", "divisions", "literacy", "scoring", "survey")


def load_plan(city: str, raw_dir: Path | None = None) -> Plan:
    """Read and check data/raw/plan/<city>.yml."""
    raw_dir = Path(raw_dir) if raw_dir is not None else RAW
    path = raw_dir / "plan" / f"{city}.yml"
    if not path.exists():
        known = sorted(p.stem for p in (raw_dir / "plan").glob("*.yml"))
        raise PlanError(f"no plan file {path}; plans present: {', '.join(known) or 'none'}")
    data = read_plan_yaml(path)
    if not isinstance(data, dict):
        raise PlanError(f"{path}: expected a mapping of keys (city:, period:, ...), found no keys")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise PlanError(f"{path}: missing top-level keys {missing}")
    plan = Plan(data=data, path=path, raw_dir=raw_dir)
    if plan.settings.city.id != city:
        raise PlanError(f"{path}: key 'city.id' is {plan.settings.city.id!r}, expected {city!r}")
    return plan


def processed_dir(city: str, year: int | None = None, root: Path | None = None) -> Path:
    """data/processed/<city>/<year>/ (created on demand by writers, not here)."""
    base = (Path(root) if root is not None else PROCESSED) / city
    return base if year is None else base / str(year)
