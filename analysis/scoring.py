"""Literacy scoring: items against an answer key, dimension scores, levels and the literacy flag.

Two rules class a respondent as having scientific literacy (which one a survey
year uses comes from the plan, ``scoring.rule_by_year``):

- ``score``: the 100-point total (knowledge 40, method 20, spirit 20,
  application 20) is at least ``scoring.score.literate_min``;
- ``three_dimension``: knowledge, method and spirit are each passed at once,
  a dimension being passed when its score is at least
  ``scoring.three_dimension.pass_share[dim]`` x that dimension's points.

Both flags are always computed so a year can be compared under either rule.
Answers must already be harmonised to the option letters of the key (ingest
does that); an unanswered item (missing or empty) scores 0.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import UserError

DIMENSIONS = ("knowledge", "method", "spirit", "application")
# The national 100-point split, used when no plan is given to check a questionnaire against.
DEFAULT_DIMENSION_POINTS = {"knowledge": 40.0, "method": 20.0, "spirit": 20.0, "application": 20.0}
QUESTIONNAIRE_COLUMNS = ("item_id", "dimension", "points", "correct", "core", "text_zh")
OPTIONS = ("A", "B", "C", "D")
RULES = ("score", "three_dimension")
# Scores are sums of item points; compare with a tolerance so 0.1-point items
# summing to 69.99999999 still reach 70.
_EPS = 1e-9

_TRUE = {"true", "1", "yes", "y", "t", "是"}
_FALSE = {"false", "0", "no", "n", "f", "否", ""}


class QuestionnaireError(UserError, ValueError):
    """The questionnaire / answer key file is not usable."""


class ScoringError(UserError, ValueError):
    """Survey data or plan cannot be scored as asked."""


def plan_dimension_points(plan: Any | None) -> dict[str, float]:
    """Dimension id -> points, from plan ``scoring.score.dimensions`` (national split if no plan)."""
    if plan is None:
        return dict(DEFAULT_DIMENSION_POINTS)
    dims = plan.settings.scoring.score.dimensions
    if not dims:
        raise ScoringError(f"{plan.path}: scoring.score.dimensions is missing")
    return {str(d["id"]): float(d["points"]) for d in dims}


def _parse_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
    text = text.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise QuestionnaireError(f"{where}: core must be true/false, got {value!r}")


def validate_questionnaire(q: pd.DataFrame, plan: Any | None = None, source: str = "questionnaire",
                           lines: list[int] | None = None) -> pd.DataFrame:
    """Check and normalise a questionnaire table; return it with typed columns.

    lines: the file line of each data row (header excluded), when read from a file.
    """
    missing = [c for c in QUESTIONNAIRE_COLUMNS if c not in q.columns]
    if missing:
        raise QuestionnaireError(f"{source}: missing columns {missing}; expected {list(QUESTIONNAIRE_COLUMNS)}")
    if q.empty:
        raise QuestionnaireError(f"{source}: no items")
    q = q.loc[:, list(QUESTIONNAIRE_COLUMNS)].copy()
    q["item_id"] = q["item_id"].astype(str).str.strip()
    dup = q["item_id"][q["item_id"].duplicated()].tolist()
    if dup:
        raise QuestionnaireError(f"{source}: duplicate item_id {dup}")
    q["dimension"] = q["dimension"].astype(str).str.strip()
    q["correct"] = q["correct"].astype(str).str.strip().str.upper()
    points = pd.to_numeric(q["points"], errors="coerce")
    def line(k: int) -> str:
        return f" (file line {lines[k]}, data row {k + 1})" if lines and k < len(lines) else ""

    for i, row in q.iterrows():
        where = f"{source} row {int(i) + 2} (item {row['item_id']}){line(int(i))}"  # +2: header, 1-based
        if row["dimension"] not in DIMENSIONS:
            raise QuestionnaireError(
                f"{where}: dimension {row['dimension']!r} is not one of {list(DIMENSIONS)}")
        if row["correct"] not in OPTIONS:
            raise QuestionnaireError(f"{where}: correct {row['correct']!r} is not one of {list(OPTIONS)}")
        if pd.isna(points.loc[i]) or points.loc[i] <= 0:
            raise QuestionnaireError(f"{where}: points {q.at[i, 'points']!r} is not a positive number")
    q["points"] = points.astype(float)
    q["core"] = [_parse_bool(v, f"{source} row {k + 2}{line(k)}, column 'core'")
                 for k, v in enumerate(q["core"])]
    q["text_zh"] = q["text_zh"].astype(str)

    expected = plan_dimension_points(plan)
    got = q.groupby("dimension")["points"].sum()
    problems = []
    for dim, pts in expected.items():
        have = float(got.get(dim, 0.0))
        if abs(have - pts) > 1e-6:
            problems.append(f"{dim}: items add up to {have:g} points, the plan says {pts:g}")
    extra = sorted(set(got.index) - set(expected))
    if extra:
        problems.append(f"dimensions {extra} are not in the plan")
    if problems:
        raise QuestionnaireError(f"{source}: points per dimension do not match: " + "; ".join(problems))
    return q.reset_index(drop=True)


def load_questionnaire(path: str | Path, plan: Any | None = None) -> pd.DataFrame:
    """Read the questionnaire / answer key CSV (docs/contracts.md) and validate it.

    Points per dimension must match the plan's ``scoring.score.dimensions``
    (the national 40/20/20/20 split when no plan is given).
    """
    path = Path(path)
    if not path.exists():
        raise QuestionnaireError(f"questionnaire file {path} does not exist")
    from .ingest import IngestError, csv_record_lines, decode_text

    try:
        text = decode_text(path)
    except IngestError as err:
        raise QuestionnaireError(f"questionnaire file {path}: row {err.row}: text encoding not "
                                 f"recognised; expected {err.expected}") from None
    try:
        q = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise QuestionnaireError(f"questionnaire file {path}: not a readable CSV table ({err}); expected "
                                 f"the columns {', '.join(QUESTIONNAIRE_COLUMNS)}") from None
    return validate_questionnaire(q, plan, source=str(path), lines=csv_record_lines(text, skip_blank=True)[1:])


def _answers_match(col: pd.Series, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(correct, missing) boolean arrays for one item column."""
    if not (isinstance(col.dtype, pd.StringDtype) or col.dtype == object):
        col = col.astype("str")
    missing = (col.isna() | col.eq("")).to_numpy(dtype=bool, na_value=True)
    correct = col.eq(key).to_numpy(dtype=bool, na_value=False)
    return correct, missing


def score_items(df: pd.DataFrame, questionnaire: pd.DataFrame) -> pd.DataFrame:
    """Dimension scores, total and missing-item counts, indexed like ``df``.

    Columns: score_knowledge, score_method, score_spirit, score_application,
    score_total, n_items_missing, n_core_missing.
    """
    absent = [c for c in questionnaire["item_id"] if c not in df.columns]
    if absent:
        raise ScoringError(f"survey data has no column for questionnaire items {absent}")
    n = len(df)
    scores = np.zeros((n, len(DIMENSIONS)), dtype=np.float64)
    n_missing = np.zeros(n, dtype=np.int32)
    n_core_missing = np.zeros(n, dtype=np.int32)
    dim_index = {d: i for i, d in enumerate(DIMENSIONS)}
    for item, dim, pts, key, core in questionnaire[
            ["item_id", "dimension", "points", "correct", "core"]].itertuples(index=False):
        correct, missing = _answers_match(df[item], key)
        scores[:, dim_index[dim]] += correct * float(pts)
        n_missing += missing
        if core:
            n_core_missing += missing
    scores = np.round(scores, 9)
    out = pd.DataFrame({f"score_{d}": scores[:, i] for d, i in dim_index.items()}, index=df.index)
    out["score_total"] = np.round(scores.sum(axis=1), 9)
    out["n_items_missing"] = n_missing
    out["n_core_missing"] = n_core_missing
    return out


def _levels(plan: Any) -> list[tuple[str, float]]:
    levels = plan.settings.scoring.score.levels
    if not levels:
        raise ScoringError(f"{plan.path}: scoring.score.levels is missing")
    return sorted(((str(lv["id"]), float(lv["min"])) for lv in levels), key=lambda t: -t[1])


def three_dim_thresholds(plan: Any) -> dict[str, float]:
    """Dimension -> minimum score to pass it under the three-dimension rule."""
    shares = plan.settings.scoring.three_dimension.pass_share
    if not shares:
        raise ScoringError(f"{plan.path}: scoring.three_dimension.pass_share is missing")
    points = plan_dimension_points(plan)
    unknown = [d for d in shares if d not in points]
    if unknown:
        raise ScoringError(f"{plan.path}: three_dimension.pass_share names unknown dimensions {unknown}")
    return {d: float(s) * points[d] for d, s in shares.items()}


def classify(scores: pd.DataFrame, plan: Any, year: int) -> pd.DataFrame:
    """Level, both literacy flags and the flag of the year's rule (``plan.scoring_rule(year)``)."""
    rule = plan.scoring_rule(int(year))
    if rule not in RULES:
        raise ScoringError(f"{plan.path}: scoring rule {rule!r} for {year} is not one of {list(RULES)}")
    total = scores["score_total"].to_numpy(dtype=float)
    levels = _levels(plan)
    conds = [total >= lo - _EPS for _, lo in levels]
    level = np.select(conds, [lid for lid, _ in levels], default=levels[-1][0])
    literate_min = plan.settings.scoring.score.literate_min
    by_score = total >= literate_min - _EPS
    three = np.ones(len(scores), dtype=bool)
    for dim, cut in three_dim_thresholds(plan).items():
        three &= scores[f"score_{dim}"].to_numpy(dtype=float) >= cut - _EPS
    out = pd.DataFrame(index=scores.index)
    out["level"] = pd.array(level, dtype="str")
    out["literate_score_rule"] = by_score
    out["literate_three_dim"] = three
    out["literate"] = by_score if rule == "score" else three
    return out


def score(df: pd.DataFrame, questionnaire: pd.DataFrame, plan: Any, year: int) -> pd.DataFrame:
    """``df`` with dimension scores, missing counts, level and literacy flags added."""
    s = score_items(df, questionnaire)
    c = classify(s, plan, year)
    base = df.drop(columns=[c_ for c_ in (*s.columns, *c.columns) if c_ in df.columns])
    return pd.concat([base, s, c], axis=1)
