"""Report tables of issue 11's content: the indicator table with the one verdict, and the annex of measures.

The generic layout helpers stay in report_tables.py; this module builds on them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from . import report_tables as tables
from .verdict import HEADLINE_INDICATOR, Thresholds, verdict_label
from .vocabulary import capitalise, term


def indicator_table(ind: pd.DataFrame, specs: list[dict[str, Any]], traj: dict[str, Any], lang: str,
                    thresholds: Thresholds | None = None) -> pd.DataFrame:
    """The numeric indicators by year (report_tables.progress_indicator_table) with the headline indicator's
    target-year cell saying the one verdict (analysis/verdict.py) instead of met/missed by its point estimate."""
    out = tables.progress_indicator_table(ind, specs, lang)
    spec = next((s for s in specs if s["id"] == HEADLINE_INDICATOR), None)
    if spec is None:
        return out
    name = capitalise(str(spec.get(f"name_{lang}") or spec["name_zh"]))
    col_ind, col_year, col_met = (term("header", c, lang) for c in ("indicator", "year", "met"))
    rows = (out[col_ind] == name) & (out[col_year].astype(int) == int(traj["target_year"]))
    if int(traj["latest_year"]) >= int(traj["target_year"]):
        out.loc[rows, col_met] = verdict_label(traj, lang, thresholds)
    return out
