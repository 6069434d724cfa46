"""Published benchmark series (national, provincial, other cities): load and check."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .config import RAW
from .errors import UserError

COLUMNS = ("scope", "year", "value", "kind", "source")
KINDS = ("observed", "target")


class BenchmarkError(UserError, ValueError):
    """The benchmark file does not follow docs/contracts.md."""


def default_path(raw_dir: Path | None = None) -> Path:
    return (Path(raw_dir) if raw_dir is not None else RAW) / "benchmarks" / "published.csv"


def validate_benchmarks(df: pd.DataFrame, path: Path | str = "<frame>") -> pd.DataFrame:
    """Check and type a benchmark table; errors name the file, CSV line, column and value."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise BenchmarkError(f"{path}: missing columns {missing}; expected {list(COLUMNS)}")
    out = df[list(COLUMNS)].copy()
    problems: list[str] = []
    for i, row in out.iterrows():
        line = int(i) + 2  # header is line 1
        where = f"{path}: line {line}"
        scope, kind, source = row["scope"], row["kind"], row["source"]
        if pd.isna(scope) or not str(scope).strip():
            problems.append(f"{where}: column scope is empty")
        if kind not in KINDS:
            problems.append(f"{where}: column kind is {kind!r}, expected one of {KINDS}")
        if pd.isna(source) or not str(source).strip():
            problems.append(f"{where}: column source is empty (every figure needs its outlet)")
        year = pd.to_numeric(pd.Series([row["year"]]), errors="coerce").iloc[0]
        if pd.isna(year) or year != int(year) or not 1990 <= year <= 2100:
            problems.append(f"{where}: column year is {row['year']!r}, expected a year 1990-2100")
        value = pd.to_numeric(pd.Series([row["value"]]), errors="coerce").iloc[0]
        if pd.isna(value) or not 0 < value < 100:
            problems.append(f"{where}: column value is {row['value']!r}, expected percent in (0, 100)")
    if problems:
        raise BenchmarkError("\n".join(problems))
    out["scope"] = out["scope"].astype(str).str.strip()
    out["year"] = pd.to_numeric(out["year"]).astype(int)
    out["value"] = pd.to_numeric(out["value"]).astype(float)
    out["kind"] = out["kind"].astype(str)
    out["source"] = out["source"].astype(str).str.strip()
    dup = out.duplicated(["scope", "year", "kind"], keep=False)
    if dup.any():
        lines = [int(i) + 2 for i in out.index[dup]]
        raise BenchmarkError(f"{path}: duplicate (scope, year, kind) on lines {lines}")
    return out.sort_values(["scope", "kind", "year"]).reset_index(drop=True)


def load_benchmarks(path: Path | None = None, raw_dir: Path | None = None) -> pd.DataFrame:
    """Read data/raw/benchmarks/published.csv (UTF-8, BOM tolerated) and validate it."""
    path = Path(path) if path is not None else default_path(raw_dir)
    if not path.exists():
        raise BenchmarkError(f"no benchmark file {path}")
    df = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False,
                     na_values=[""])
    return validate_benchmarks(df, path)


def series(df: pd.DataFrame, scope: str, kind: str = "observed") -> pd.Series:
    """Values of one scope and kind, indexed by year (empty Series when absent)."""
    sub = df[(df["scope"] == scope) & (df["kind"] == kind)]
    return pd.Series(sub["value"].to_numpy(float), index=sub["year"].to_numpy(int),
                     name=f"{scope}_{kind}").sort_index()
