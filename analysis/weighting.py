"""Calibrate design weights to census margins: raking (IPF) or post-stratification.

Raking without bounds converges to the same weights as R's ``survey::rake()``
(checked in tests/test_weighting.py against r/make_survey_fixtures.R). Bounds keep each
adjustment factor weight / design_weight inside [low, high] by clipping after every
margin step (bounded IPF); a trim cap keeps every weight below ``trim`` times the mean
weight. When bounds or the cap make the margins unreachable, raking stops with a
WeightingError that names the margin cell that is off and by how much.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import UserError

# Columns of the clean survey (and the census margins file) behind each margin name.
MARGIN_COLUMNS: dict[str, tuple[str, ...]] = {
    "division_urban": ("division_code", "urban_rural"),
    "sex_age": ("sex", "age_group"),
    "education": ("education",),
}
MARGIN_TOTAL_TOLERANCE = 1e-3  # margins whose totals differ more than this are refused
# Census total / design-weight total outside [1/x, x] is refused before raking: expansion weights
# come from a frame a few years old, not one off by a factor (a unit error, a wrong file).
MAX_TOTAL_RATIO = 2.0


class WeightingError(UserError, ValueError):
    """Weights cannot be calibrated (bad margins, empty cells, no convergence)."""


@dataclass(frozen=True)
class Margin:
    """Population totals of one margin: cells keyed by tuples of column values."""

    name: str
    columns: tuple[str, ...]
    totals: pd.Series  # index: tuple of str (one per column), values: population
    source: str = "census margins"  # the file, for messages

    def codes(self, df: pd.DataFrame) -> np.ndarray:
        """Cell index (0..G-1) of each row; raises if a row's cell is not in the margin."""
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise WeightingError(f"margin {self.name}: survey has no column(s) {missing}")
        # factorize column by column and look up only the distinct combinations (fast at 1M rows)
        combo = np.zeros(len(df), dtype=np.int64)
        uniques = []
        for c in self.columns:
            f, u = pd.factorize(df[c], use_na_sentinel=True)
            combo = combo * (len(u) + 1) + (f + 1)
            uniques.append(["<NA>", *(str(x) for x in u)])
        distinct, inverse = np.unique(combo, return_inverse=True)
        lookup = {k: i for i, k in enumerate(self.totals.index)}
        cell_of = np.empty(len(distinct), dtype=np.int64)
        for j, value in enumerate(distinct):
            parts, v = [], int(value)
            for u in reversed(uniques):
                v, r = divmod(v, len(u))
                parts.append(u[r])
            key = tuple(reversed(parts))
            if key not in lookup:
                row = int(np.flatnonzero(inverse == j)[0])
                raise WeightingError(
                    f"{self.source}: margin {self.name}: row {row} has "
                    f"{dict(zip(self.columns, key, strict=True))}, a cell the census margins do not "
                    f"have (cells: {list(self.totals.index)[:12]}...)")
            cell_of[j] = lookup[key]
        return cell_of[inverse.ravel()]


def _cell_keys(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.Series:
    parts = [df[c].astype("string").fillna("<NA>").to_numpy(object) for c in columns]
    return pd.Series(list(zip(*parts, strict=True)), index=df.index, dtype=object)


def margins_from_census(census: pd.DataFrame, names: list[str], source: str = "census") -> list[Margin]:
    """Margins named in the plan from the long census table (docs/contracts.md)."""
    need = {"margin", "population"}
    if not need <= set(census.columns):
        raise WeightingError(f"{source}: needs columns {sorted(need)}, has {list(census.columns)}")
    lines = census.attrs.get("lines")

    def at(i: int) -> str:  # data row i (0-based) as the file's line and data row
        return (f"line {lines[i]} (data row {i})" if lines and i < len(lines) else f"data row {i}")

    out = []
    for name in names:
        if name not in MARGIN_COLUMNS:
            raise WeightingError(f"unknown margin {name!r}; known: {list(MARGIN_COLUMNS)}")
        cols = MARGIN_COLUMNS[name]
        rows = np.flatnonzero((census["margin"] == name).to_numpy(dtype=bool, na_value=False))
        part = census.iloc[rows]
        if part.empty:
            raise WeightingError(f"{source}: no rows with margin == {name!r}")
        for c in cols:
            if c not in part.columns:
                raise WeightingError(f"{source}: margin {name} needs a column {c!r}")
            empty = (part[c].isna() | (part[c].astype(str) == "")).to_numpy()
            if empty.any():
                i = int(rows[np.flatnonzero(empty)[0]])
                raise WeightingError(f"{source}: {at(i)}, column {c!r}: empty cell; margin {name} needs "
                                     f"column {c!r} filled in every row")
        pop = pd.to_numeric(part["population"], errors="coerce")
        if pop.isna().any() or (pop < 0).any():
            k = int(np.flatnonzero((pop.isna() | (pop < 0)).to_numpy())[0])
            raise WeightingError(f"{source}: {at(int(rows[k]))}, column 'population': "
                                 f"margin {name} has population {part['population'].iloc[k]!r}; "
                                 "expected a non-negative number")
        keys = _cell_keys(part, cols)
        totals = pd.Series(pop.to_numpy(float), index=pd.Index(keys.to_list(), tupleize_cols=False))
        if totals.index.duplicated().any():
            where = np.flatnonzero(totals.index.duplicated())[0]
            dup = totals.index[where]
            i = int(rows[where])
            raise WeightingError(f"{source}: {at(i)}: margin {name} lists cell {dup} twice")
        out.append(Margin(name, cols, totals, source))
    ref = out[0].totals.sum()
    for m in out[1:]:
        gap = abs(m.totals.sum() - ref) / ref
        if gap > MARGIN_TOTAL_TOLERANCE:
            raise WeightingError(
                f"{source}: margin {m.name} totals {m.totals.sum():,.0f}, margin {out[0].name} "
                f"{ref:,.0f} (relative gap {gap:.2e}); raking needs equal totals")
    return out




def read_census_table(path: Path) -> pd.DataFrame:
    """The long census margins table (docs/contracts.md), in any encoding ingest detects.

    Text columns are strings (blank -> NA), `population` a float; a file that cannot be
    decoded or parsed, or a population that is not a non-negative number, is refused with
    the file, line, column and value.
    """
    from .ingest import IngestError, csv_record_lines, detect_encoding

    path = Path(path)
    if not path.is_file():
        raise WeightingError(f"census margins file not found: {path}")
    data = path.read_bytes()
    try:
        encoding = detect_encoding(data, path)
    except IngestError as err:
        raise WeightingError(f"census margins file {path}: line {err.row}: text encoding not recognised; "
                             f"bytes {err.value!r}; expected {err.expected}") from err
    try:
        content = data.decode(encoding)
        df = pd.read_csv(io.StringIO(content), dtype="string", skipinitialspace=True,
                         keep_default_na=False, na_values=[""])  # "n/a" in a cell is reported, not read as blank
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise WeightingError(f"census margins file {path} ({encoding}): not a readable CSV table: {err}") from err
    lines = csv_record_lines(content, skip_blank=True)[1:]
    line = lambda i: lines[i] if i < len(lines) else i + 2  # noqa: E731
    df.columns = [str(c).strip() for c in df.columns]
    need = ["margin", "population"]
    if missing := [c for c in need if c not in df.columns]:
        raise WeightingError(f"census margins file {path}: missing column(s) {missing}; "
                             f"has {list(df.columns)}")
    for c in df.columns:
        df[c] = df[c].str.strip().replace("", pd.NA)
    text = df["population"]
    pop = pd.to_numeric(text.str.replace(",", "", regex=False), errors="coerce")
    bad = (pop.isna() | (pop < 0)).fillna(True).to_numpy(bool)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise WeightingError(f"census margins file {path}: line {line(i)} (data row {i}), column "
                             f"'population': value {text.iloc[i]!r} is not a non-negative number")
    df["population"] = pop.astype(float)
    if df["margin"].isna().any():
        i = int(np.flatnonzero(df["margin"].isna().to_numpy(bool))[0])
        raise WeightingError(f"census margins file {path}: line {line(i)} (data row {i}), column "
                             "'margin' is empty")
    df.attrs["encoding"] = encoding
    df.attrs["lines"] = lines
    return df


def read_census_margins(path: Path, names: list[str]) -> list[Margin]:
    """The margins `names` from the census margins file (read with read_census_table)."""
    return margins_from_census(read_census_table(path), names, source=str(path))


@dataclass
class WeightingResult:
    weights: np.ndarray
    method: str
    iterations: int
    converged: bool
    max_gap: float                       # largest relative margin gap at the end
    codes: list[np.ndarray] = field(default_factory=list)
    history: list[float] = field(default_factory=list)


def _check_cells(margin: Margin, codes: np.ndarray, d: np.ndarray) -> None:
    sample = np.bincount(codes, weights=d, minlength=len(margin.totals))
    census = margin.totals.to_numpy()
    empty = (sample <= 0) & (census > 0)
    if empty.any():
        cells = [margin.totals.index[i] for i in np.flatnonzero(empty)]
        raise WeightingError(f"{margin.source}: margin {margin.name}: census cells {cells} have population "
                             "but no respondents; collapse them before weighting")
    zero = (sample > 0) & (census <= 0)
    if zero.any():
        n = np.bincount(codes, minlength=len(census))
        i = int(np.flatnonzero(zero)[0])
        raise WeightingError(f"{margin.source}: margin {margin.name}: census cell {margin.totals.index[i]} "
                             f"has population 0 but {int(n[i])} respondent(s); expected a positive "
                             "population for every cell with respondents (an empty cell in the file?)")


def check_totals(margins: list[Margin], d: np.ndarray, bounded: bool = False,
                 max_ratio: float = MAX_TOTAL_RATIO) -> None:
    """Census totals against the design-weight total, before raking.

    Relative design weights (mean about 1) carry no population size; they are compared only
    when the raking is bounded (bounds on weight / design weight need expansion weights).
    """
    total_d = float(np.sum(d))
    relative = len(d) > 0 and 0.5 <= total_d / len(d) <= 2.0
    if not margins or not len(d) or (relative and not bounded):
        return
    census = float(margins[0].totals.sum())
    ratio = census / total_d
    if not 1 / max_ratio <= ratio <= max_ratio:
        times = f"{ratio:,.1f} times" if ratio >= 1 else f"{ratio:.3g} times (1/{1 / ratio:.1f} of)"
        hint = ("design weights that average about 1 are relative weights, and survey.weighting.bounds "
                "needs expansion weights that add up to the population" if relative else
                "check the census file's unit, e.g. persons vs ten thousands, and that it is the file "
                "for this city and year")
        raise WeightingError(
            f"{margins[0].source}: census total {census:,.0f} (margin {margins[0].name}) is {times} "
            f"the design-weight total {total_d:,.0f} of the {len(d)} respondents; expected the "
            f"same population within a factor {max_ratio:g} ({hint})")


def _gaps(w: np.ndarray, codes: list[np.ndarray], targets: list[np.ndarray]):
    worst, where = 0.0, (0, 0)
    for m, (c, t) in enumerate(zip(codes, targets, strict=True)):
        tot = np.bincount(c, weights=w, minlength=len(t))
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.where(t > 0, np.abs(tot - t) / t, np.abs(tot))
        i = int(np.argmax(rel))
        if rel[i] > worst:
            worst, where = float(rel[i]), (m, i)
    return worst, where


def rake(df: pd.DataFrame, design_weight: np.ndarray | str, margins: list[Margin],
         bounds: tuple[float, float] | None = None, trim: float | None = None,
         max_iter: int = 100, tol: float = 1e-8) -> WeightingResult:
    """Iterative proportional fitting of the design weights to the margins.

    bounds: (low, high) limits on weight / design_weight; trim: cap on weight / mean weight.
    Converged when every margin cell is within tol (relative) of its census total.
    """
    d = (df[design_weight] if isinstance(design_weight, str) else pd.Series(design_weight)).to_numpy(float)
    if not np.all(np.isfinite(d)) or np.any(d <= 0):
        bad = int(np.flatnonzero(~np.isfinite(d) | (d <= 0))[0])
        raise WeightingError(f"design weights must be positive; row {bad} has {d[bad]!r}")
    codes = [m.codes(df) for m in margins]
    targets = [m.totals.to_numpy(float) for m in margins]
    check_totals(margins, d, bounded=bounds is not None or trim is not None)
    for m, c in zip(margins, codes, strict=True):
        _check_cells(m, c, d)
    lo = d * bounds[0] if bounds else None
    hi = d * bounds[1] if bounds else None
    if trim is not None:
        cap = trim * targets[0].sum() / len(d)
        hi = np.minimum(hi, cap) if hi is not None else np.full_like(d, cap)
    w = d.copy()
    history: list[float] = []
    gap = np.inf
    for it in range(1, max_iter + 1):
        for c, t in zip(codes, targets, strict=True):
            tot = np.bincount(c, weights=w, minlength=len(t))
            with np.errstate(invalid="ignore", divide="ignore"):
                f = np.where(tot > 0, t / tot, 1.0)
            w = w * f[c]
            if lo is not None or hi is not None:
                w = np.clip(w, lo, hi)
        gap, _ = _gaps(w, codes, targets)
        history.append(gap)
        if gap < tol:
            return WeightingResult(w, "rake", it, True, gap, codes, history)
    m, i = _gaps(w, codes, targets)[1]
    tot = np.bincount(codes[m], weights=w, minlength=len(targets[m]))[i]
    raise WeightingError(
        f"{margins[m].source}: raking did not converge in {max_iter} iterations: margin {margins[m].name} cell "
        f"{margins[m].totals.index[i]} has weighted total {tot:,.1f} against census "
        f"{targets[m][i]:,.1f} (relative gap {gap:.2e} > tol {tol:g}). The bounds {bounds} "
        f"or trim {trim} may be too tight for these margins, or max_iter too small.")


def poststratify(df: pd.DataFrame, design_weight: np.ndarray | str, margin: Margin) -> WeightingResult:
    """Scale the design weights so each cell of one margin hits its census total (R postStratify)."""
    d = (df[design_weight] if isinstance(design_weight, str) else pd.Series(design_weight)).to_numpy(float)
    c = margin.codes(df)
    check_totals([margin], d)
    _check_cells(margin, c, d)
    t = margin.totals.to_numpy(float)
    tot = np.bincount(c, weights=d, minlength=len(t))
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(tot > 0, t / tot, 1.0)
    w = d * f[c]
    gap, _ = _gaps(w, [c], [t])
    return WeightingResult(w, "poststratify", 1, True, gap, [c], [gap])


def kish_deff(w: np.ndarray) -> float:
    """Kish's design effect of unequal weights: n * sum(w^2) / sum(w)^2."""
    w = np.asarray(w, float)
    return float(len(w) * np.sum(w * w) / np.sum(w) ** 2)


def effective_n(w: np.ndarray) -> float:
    w = np.asarray(w, float)
    return float(np.sum(w) ** 2 / np.sum(w * w))


def weight_summary(w: np.ndarray) -> dict[str, float]:
    q = np.quantile(w, [0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1])
    keys = ["min", "p01", "p05", "p25", "median", "p75", "p95", "p99", "max"]
    out = {k: float(v) for k, v in zip(keys, q, strict=True)}
    out.update(sum=float(np.sum(w)), mean=float(np.mean(w)), cv=float(np.std(w) / np.mean(w)),
               max_to_min=float(q[-1] / q[0]) if q[0] > 0 else float("inf"),
               kish_deff=kish_deff(w), effective_n=effective_n(w))
    return out


def margin_table(df: pd.DataFrame, margins: list[Margin], before: np.ndarray,
                 after: np.ndarray) -> pd.DataFrame:
    """Census total, weighted totals before and after calibration, for every margin cell."""
    rows = []
    for m in margins:
        c = m.codes(df)
        b = np.bincount(c, weights=before, minlength=len(m.totals))
        a = np.bincount(c, weights=after, minlength=len(m.totals))
        n = np.bincount(c, minlength=len(m.totals))
        for i, key in enumerate(m.totals.index):
            rows.append({"margin": m.name, "cell": "|".join(key), "n": int(n[i]),
                         "census": float(m.totals.iloc[i]), "before": float(b[i]), "after": float(a[i])})
    out = pd.DataFrame(rows)
    out["share_census"] = out["census"] / out.groupby("margin")["census"].transform("sum")
    out["share_before"] = out["before"] / out.groupby("margin")["before"].transform("sum")
    out["share_after"] = out["after"] / out.groupby("margin")["after"].transform("sum")
    return out


def weighting_settings(plan) -> dict:
    """Weighting choices from the plan (survey.weighting), with defaults."""
    w = plan.settings.survey.weighting
    return {"method": w.method, "margins": list(w.margins),
            "bounds": tuple(w.bounds) if w.bounds else None, "trim": w.trim,
            "max_iter": w.max_iter, "tol": w.tol, "poststrata": w.poststrata}


def calibrate(df: pd.DataFrame, margins: list[Margin], settings: dict,
              design_weight: str = "design_weight") -> tuple[WeightingResult, dict]:
    """Weights by the plan's method, and the diagnostics saved beside them."""
    d = df[design_weight].to_numpy(float)
    method = settings["method"]
    if method == "rake":
        res = rake(df, d, margins, settings["bounds"], settings["trim"], settings["max_iter"],
                   settings["tol"])
        used = margins
    elif method == "poststratify":
        by_name = {m.name: m for m in margins}
        if settings["poststrata"] not in by_name:
            raise WeightingError(f"poststrata {settings['poststrata']!r} is not among the margins "
                                 f"{list(by_name)}")
        used = [by_name[settings["poststrata"]]]
        res = poststratify(df, d, used[0])
    else:
        raise WeightingError(f"survey.weighting.method must be rake or poststratify, not {method!r}")
    # the other margins too: post-stratification leaves them off, which is worth seeing
    table = margin_table(df, margins, d, res.weights)
    factors = res.weights / d
    diag = {
        "method": res.method,
        "margins": [m.name for m in used],
        "bounds": list(settings["bounds"]) if settings["bounds"] else None,
        "trim": settings["trim"],
        "tol": settings["tol"],
        "iterations": res.iterations,
        "converged": res.converged,
        "max_margin_gap": res.max_gap,
        "gap_history": res.history,
        "n": len(df),
        "population": float(res.weights.sum()),
        "adjustment_factor": {"min": float(factors.min()), "max": float(factors.max()),
                              "median": float(np.median(factors))},
        "design_weights": weight_summary(d),
        "weights": weight_summary(res.weights),
        "kish_deff": kish_deff(res.weights),
        "effective_n": effective_n(res.weights),
        "margins_before_after": table.to_dict(orient="records"),
    }
    return res, diag
