"""Pandera schema of the clean survey table (survey_clean.parquet) and a readable failure message."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from .clean import CleaningConfig
from .config import Plan
from .dictionary import AGE_GROUPS, load_dictionary
from .errors import safe_value
from .harmonise import division_lookup
from .pseudonymise import personal_kind

ITEM_OPTIONS = ["A", "B", "C", "D"]
FRONT = ["resp_key", "division_code", "county", "stratum", "psu", "design_weight", "sex", "age",
         "age_group", "urban_rural", "education", "occupation", "duration_min", "interview_date"]
SCORES = ["score_knowledge", "score_method", "score_spirit", "score_application", "score_total",
          "n_items_missing", "n_core_missing", "level", "literate_score_rule", "literate_three_dim",
          "literate"]


def clean_columns(items: list[str]) -> list[str]:
    """Column order of survey_clean.parquet."""
    return [*FRONT, *items, *SCORES]


def _text(checks: list[pa.Check] | None = None, nullable: bool = False) -> pa.Column:
    return pa.Column(None, checks=checks or [], nullable=nullable)


def no_personal_data(places: frozenset[str]) -> pa.Check:
    """The stratum and PSU columns hold codes, never a name, phone, ID-card number or address
    (pseudonymise.personal_kind; each distinct value is judged once)."""
    def check(col: pd.Series) -> pd.Series:
        bad = {v for v in pd.unique(col.dropna()) if personal_kind(str(v), places)}
        return ~col.isin(bad)
    return pa.Check(check, name="no_personal_data",
                    error="a design code, not a personal name, phone or ID-card number or address")


def clean_schema(plan: Plan, items: list[str], config: CleaningConfig | None = None) -> pa.DataFrameSchema:
    """Schema of the clean table for this plan and questionnaire (strict: no other columns)."""
    config = config or CleaningConfig.from_plan(plan)
    d = load_dictionary()
    points = {str(x["id"]): float(x["points"]) for x in plan.settings.scoring.score.dimensions}
    levels = [str(x["id"]) for x in plan.settings.scoring.score.levels]
    codes_only = no_personal_data(frozenset(division_lookup(plan)))
    cols: dict[str, pa.Column] = {
        "resp_key": pa.Column(None, pa.Check.str_matches(r"^[0-9a-f]{64}$"), unique=True),
        "division_code": _text([pa.Check.isin(list(plan.division_names))]),
        "county": _text(),
        "stratum": _text([codes_only]),
        "psu": _text([codes_only]),
        "design_weight": pa.Column(float, pa.Check.gt(0)),
        "sex": _text([pa.Check.isin(d.allowed("sex"))]),
        "age": pa.Column("Int64", pa.Check.in_range(config.age_min, config.age_max)),
        "age_group": _text([pa.Check.isin(list(AGE_GROUPS))]),
        "urban_rural": _text([pa.Check.isin(d.allowed("urban_rural"))]),
        "education": _text([pa.Check.isin(d.allowed("education"))]),
        "occupation": _text([pa.Check.isin(d.allowed("occupation"))]),
        "duration_min": pa.Column(float, pa.Check.ge(0), nullable=True),
        "interview_date": pa.Column("datetime64[us]", nullable=True),
    }
    for item in items:
        cols[item] = _text([pa.Check.isin(ITEM_OPTIONS)], nullable=True)
    for dim, pts in points.items():
        cols[f"score_{dim}"] = pa.Column(float, pa.Check.in_range(0, pts))
    cols["score_total"] = pa.Column(float, pa.Check.in_range(0, sum(points.values()) or 100))
    cols["n_items_missing"] = pa.Column(None, pa.Check.in_range(0, len(items)))
    cols["n_core_missing"] = pa.Column(None, pa.Check.ge(0))
    cols["level"] = _text([pa.Check.isin(levels)])
    for flag in ("literate_score_rule", "literate_three_dim", "literate"):
        cols[flag] = pa.Column(bool)
    return pa.DataFrameSchema(cols, strict=True, coerce=False, name="survey_clean")


def first_failure(err: SchemaErrors) -> dict[str, Any]:
    """The first failure case of a lazy validation: column, check, value, index, total count."""
    fc = err.failure_cases
    first = fc.iloc[0]
    index = first.get("index")
    return {
        "column": first.get("column"),
        "check": str(first.get("check")),
        "value": safe_value(first.get("failure_case")),  # may be a free-text cell
        "index": None if index is None or pd.isna(index) else int(index),
        "n_failures": len(fc),
    }
