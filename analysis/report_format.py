"""Markdown building blocks for the report: numbers, tables and figures with cross-reference labels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .config import ROOT

SUPPRESSED = {"zh": "（抑制）", "en": "(suppressed)"}


def pct(value: float | None, digits: int = 1) -> str:
    """'13.5%'; a dash for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}%"


def num(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}"


def interval(low: float | None, high: float | None, digits: int = 1, unit: str = "%") -> str:
    """'11.2%–15.8%'."""
    if low is None or high is None or any(isinstance(v, float) and math.isnan(v) for v in (low, high)):
        return "—"
    return f"{low:.{digits}f}{unit}–{high:.{digits}f}{unit}"


def _cell(value: object) -> str:
    text = "—" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(df: pd.DataFrame, caption: str, label: str, align: Sequence[str] | None = None) -> str:
    """A pipe table with a caption and a `tbl-` label, for Quarto and pandoc alike."""
    if not label.startswith("tbl-"):
        raise ValueError(f"table label must start with 'tbl-': {label}")
    if df.empty:
        raise ValueError(f"table {label} has no rows")
    align = list(align) if align else ["l"] + ["r"] * (df.shape[1] - 1)
    rule = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(_cell(c) for c in df.columns) + " |",
             "|" + "|".join(rule[a] for a in align) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + f"\n\n: {caption} {{#{label}}}\n"


def md_figure(path: Path, caption: str, label: str, width: str = "90%") -> str:
    """An image with a caption and a `fig-` label.

    Paths inside the project are written project-root-relative ('/data/...'),
    as Quarto reads them; others (tests on temporary folders) stay absolute.
    """
    if not label.startswith("fig-"):
        raise ValueError(f"figure label must start with 'fig-': {label}")
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"figure {label}: {path} does not exist (did its notebook run?)")
    try:
        ref = "/" + str(path.relative_to(ROOT))
    except ValueError:
        ref = str(path)
    return f"![{caption}]({ref}){{#{label} width={width}}}\n"
