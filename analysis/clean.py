"""Cleaning rules and the ledger: every input row is kept or dropped by exactly one rule.

Rules run in the order of RULES; a row dropped by an earlier rule is not
tested by later ones, so each dropped row carries the first rule that fires.
Thresholds come from the plan file (survey.cleaning.*, defaults in settings.CleaningSettings).

Order and why:
 1. missing_id          no respondent id: the row cannot be traced or de-duplicated.
 2. duplicate_id        same resp_id as an earlier row (the first copy is kept).
 3. duplicate_answers   same division, demographics and answers as an earlier row
                        (only rows with at least `duplicate_min_answered_share` of
                        items answered, so two blank forms are not called copies).
 4. unknown_division    the recorded division is no division or zone in the plan.
 5. missing_required    sex, age, urban/rural, education, occupation, stratum, psu or
                        design weight is missing.
 6. age_out_of_range    age outside [age_min, age_max] (the survey population).
 7. incomplete          share of core items unanswered above max_missing_core_share.
 8. speeder             interview shorter than min_duration_minutes (missing duration
                        is not judged).
 9. straightline        longest run of the same answer on consecutive items above
                        max_straightline_run.
10. implausible         a combination listed in survey.cleaning.implausible (default:
                        settings.DEFAULT_IMPLAUSIBLE).
Duplicates come first so that a resubmitted copy is recorded as a copy whatever
else is wrong with it; identification problems before content problems.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .config import Plan
from .dictionary import ITEM_RE
from .errors import UserError, safe_value
from .harmonise import ITEM_OPTIONS, arrow_of
from .settings import CleaningSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    id: str
    label_zh: str
    threshold: str | None = None  # config attribute shown in the summary


RULES = (
    Rule("missing_id", "缺少受访者编号"),
    Rule("duplicate_id", "重复受访者（编号相同）"),
    Rule("duplicate_answers", "重复问卷（人口特征与作答完全相同）", "duplicate_min_answered_share"),
    Rule("unknown_division", "县（市、区）无法识别"),
    Rule("missing_required", "必填项缺失"),
    Rule("age_out_of_range", "年龄超出调查范围", "age_range"),
    Rule("incomplete", "问卷不完整（核心题缺答过多）", "max_missing_core_share"),
    Rule("speeder", "答题过快", "min_duration_minutes"),
    Rule("straightline", "连续相同作答", "max_straightline_run"),
    Rule("implausible", "人口特征组合不合理", "implausible"),
)
RULE_IDS = tuple(r.id for r in RULES)

REQUIRED_VALUES = ("sex", "age", "urban_rural", "education", "occupation", "stratum", "psu",
                   "design_weight")
DEMOGRAPHICS = ("division_code", "sex", "age", "urban_rural", "education", "occupation")


@dataclass(frozen=True)
class CleaningConfig(CleaningSettings):
    """The cleaning thresholds in use: the plan's survey.cleaning (every default is in CleaningSettings)."""

    @classmethod
    def from_settings(cls, settings: CleaningSettings) -> CleaningConfig:
        return cls(**{f.name: getattr(settings, f.name) for f in fields(CleaningSettings)})

    @classmethod
    def from_plan(cls, plan: Plan) -> CleaningConfig:
        return cls.from_settings(plan.settings.survey.cleaning)

    def threshold_text(self, key: str | None) -> str:
        if key is None:
            return ""
        if key == "age_range":
            return f"{self.age_min}–{self.age_max}"
        if key == "implausible":
            return "；".join(c.get("label_zh", c.get("id", "")) for c in self.implausible)
        return str(getattr(self, key))


@dataclass
class CleanResult:
    kept: pd.DataFrame
    ledger: pd.DataFrame
    summary: pd.DataFrame


def item_columns(df: pd.DataFrame) -> list[str]:
    return sorted(c for c in df.columns if ITEM_RE.match(c))


def answer_codes(df: pd.DataFrame, items: list[str]) -> np.ndarray:
    """(rows, items) int8 array: A..D -> 0..3, missing -> -1."""
    out = np.full((len(df), len(items)), -1, dtype=np.int8)
    for j, col in enumerate(items):
        arr = arrow_of(df[col])
        if arr is not None:
            idx = pc.fill_null(pc.index_in(arr, value_set=ITEM_OPTIONS), -1)
            if isinstance(idx, pa.ChunkedArray):
                idx = idx.combine_chunks()
            out[:, j] = idx.to_numpy(zero_copy_only=False)
            continue
        codes, uniques = pd.factorize(df[col], use_na_sentinel=True)
        table = np.array([{"A": 0, "B": 1, "C": 2, "D": 3}.get(u, -1) for u in uniques] + [-1],
                         dtype=np.int8)
        out[:, j] = table[codes]
    return out


def content_hash(df: pd.DataFrame, codes: np.ndarray) -> np.ndarray:
    """64-bit hash per row of the demographics and the answers (answer codes as bytes)."""
    n = len(df)
    h = np.zeros(n, dtype=np.uint64)
    parts = [pd.factorize(df[c], use_na_sentinel=True)[0].astype(np.int64)
             for c in DEMOGRAPHICS if c in df.columns]
    width = -(-codes.shape[1] // 8) * 8
    padded = np.zeros((n, width), dtype=np.int8)
    padded[:, : codes.shape[1]] = codes
    parts += list(np.ascontiguousarray(padded).view(np.int64).T)
    for k, part in enumerate(parts):
        mixed = pd.util.hash_array(np.ascontiguousarray(part) + np.int64(k))
        h = (h * np.uint64(1099511628211)) ^ mixed
    return h


def longest_run(codes: np.ndarray) -> np.ndarray:
    """Longest run of the same non-missing answer on consecutive items, per row."""
    n, k = codes.shape
    if k == 0:
        return np.zeros(n, dtype=np.int16)
    cur = (codes[:, 0] >= 0).astype(np.int16)
    best = cur.copy()
    for j in range(1, k):
        same = (codes[:, j] == codes[:, j - 1]) & (codes[:, j] >= 0)
        cur = np.where(same, cur + 1, (codes[:, j] >= 0).astype(np.int16))
        np.maximum(best, cur, out=best)
    return best


def _implausible(df: pd.DataFrame, combos: tuple[dict[str, Any], ...]) -> tuple[np.ndarray, np.ndarray]:
    """(mask, first combination label per row)."""
    n = len(df)
    mask = np.zeros(n, dtype=bool)
    label = np.full(n, None, dtype=object)
    age = df["age"].astype("float64").to_numpy()
    for c in combos:
        m = np.ones(n, dtype=bool)
        for col in ("occupation", "education", "sex", "urban_rural"):
            if col in c:
                wanted = c[col] if isinstance(c[col], list) else [c[col]]
                m &= df[col].isin(wanted).to_numpy()
        with np.errstate(invalid="ignore"):
            if "age_min" in c:
                m &= age >= float(c["age_min"])
            if "age_max" in c:
                m &= age <= float(c["age_max"])
        new = m & ~mask
        label[new] = c.get("label_zh", c.get("id"))
        mask |= m
    return mask, label


def _fmt(values: Any, template: str) -> np.ndarray:
    return np.array([template.format(v) for v in values], dtype=object)


def _duplicate_content(df: pd.DataFrame, codes: np.ndarray, eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eligible rows whose demographics and answers repeat an earlier eligible row's, and for
    every eligible row the file row of the first with its content."""
    n = len(df)
    h = content_hash(df, codes)
    pos = np.flatnonzero(eligible)
    dup_content = np.zeros(n, dtype=bool)
    dup_content[pos] = pd.Series(h[pos]).duplicated(keep="first").to_numpy()
    first_of_hash = np.zeros(n, dtype="int64")
    first_of_hash[pos] = (pd.Series(df["row"].to_numpy()[pos]).groupby(h[pos], sort=False)
                          .transform("first").to_numpy())
    return dup_content, first_of_hash


def clean(df: pd.DataFrame, config: CleaningConfig, core_items: list[str] | None = None) -> CleanResult:
    """Apply RULES in order. df: harmonised, pseudonymised frame with `row` and `resp_key`."""
    n = len(df)
    items = item_columns(df)
    core = [c for c in (core_items or items) if c in df.columns] or items
    codes = answer_codes(df, items)
    core_idx = [items.index(c) for c in core]
    n_core_missing = (codes[:, core_idx] < 0).sum(axis=1)
    n_answered = (codes >= 0).sum(axis=1)
    key = df["resp_key"]
    age = df["age"].astype("float64").to_numpy()
    duration = df["duration_min"].astype("float64").to_numpy()
    rule = np.full(n, None, dtype=object)
    detail = np.full(n, None, dtype=object)
    taken = np.zeros(n, dtype=bool)

    def fire(rule_id: str, mask: np.ndarray, make_detail) -> None:
        new = np.asarray(mask, dtype=bool) & ~taken
        if new.any():
            rule[new] = rule_id
            detail[new] = make_detail(new)
            taken[new] = True

    fire("missing_id", key.isna().to_numpy(), lambda m: "resp_id empty")
    first_row = (pd.Series(df["row"].to_numpy(), index=df.index)
                 .groupby(key.to_numpy(), sort=False, dropna=True).transform("first")
                 .fillna(-1).astype("int64"))
    dup_id = key.notna().to_numpy() & key.duplicated(keep="first").to_numpy()
    fire("duplicate_id", dup_id,
         lambda m: _fmt(first_row.to_numpy()[m], "same resp_id as row {}"))

    eligible = n_answered >= config.duplicate_min_answered_share * max(len(items), 1)
    dup_content, first_of_hash = _duplicate_content(df, codes, eligible)
    fire("duplicate_answers", dup_content,
         lambda m: _fmt(first_of_hash[m], "same demographics and answers as row {}"))

    fire("unknown_division", df["division_code"].isna().to_numpy(),
         lambda m: _fmt(map(safe_value, df["county"].to_numpy(dtype=object, na_value=None)[m]),
                        "not a division of the plan: {!r}"))

    present = [c for c in REQUIRED_VALUES if c in df.columns]
    missing = df[present].isna().to_numpy()
    fire("missing_required", missing.any(axis=1),
         lambda m: np.array(["missing: " + ", ".join(np.array(present)[row]) for row in missing[m]],
                            dtype=object))

    with np.errstate(invalid="ignore"):
        fire("age_out_of_range", (age < config.age_min) | (age > config.age_max),
             lambda m: _fmt(age[m].astype(int),
                            f"age {{}} outside {config.age_min}–{config.age_max}"))
        share = n_core_missing / max(len(core), 1)
        fire("incomplete", share > config.max_missing_core_share,
             lambda m: _fmt(n_core_missing[m], f"{{}} of {len(core)} core items missing"))
        fire("speeder", duration < config.min_duration_minutes,
             lambda m: _fmt(duration[m], f"duration {{:.1f}} min < {config.min_duration_minutes:g}"))
    run = longest_run(codes)
    fire("straightline", run > config.max_straightline_run,
         lambda m: _fmt(run[m], f"{{}} consecutive identical answers > {config.max_straightline_run}"))
    implausible, label = _implausible(df, config.implausible)
    fire("implausible", implausible, lambda m: label[m])

    ledger = pd.DataFrame({
        "row": df["row"].to_numpy(dtype="int64"),
        "resp_key": key.to_numpy(),
        "status": np.where(taken, "dropped", "kept"),
        "rule": pd.array(rule, dtype="str"),
        "detail": pd.array(detail, dtype="str"),
    })
    kept = df.loc[~taken].reset_index(drop=True)
    summary = summarise(ledger, config)
    log.info("cleaning: %d rows in, %d kept, %d dropped (%s)", n, len(kept), int(taken.sum()),
             ", ".join(f"{r} {c}" for r, c in zip(summary["rule"], summary["n"], strict=True)
                       if r in RULE_IDS and c))
    return CleanResult(kept=kept, ledger=ledger, summary=summary)


def summarise(ledger: pd.DataFrame, config: CleaningConfig) -> pd.DataFrame:
    """Rows by rule in rule order, then kept and the input total (n and percent of input)."""
    n_in = len(ledger)
    counts = ledger.loc[ledger["status"] == "dropped", "rule"].value_counts()
    rows = [{"order": i + 1, "rule": r.id, "label_zh": r.label_zh,
             "threshold": config.threshold_text(r.threshold), "n": int(counts.get(r.id, 0))}
            for i, r in enumerate(RULES)]
    n_kept = int((ledger["status"] == "kept").sum())
    rows.append({"order": None, "rule": "dropped", "label_zh": "剔除合计", "threshold": "",
                 "n": n_in - n_kept})
    rows.append({"order": None, "rule": "kept", "label_zh": "保留", "threshold": "", "n": n_kept})
    rows.append({"order": None, "rule": "input", "label_zh": "输入行数", "threshold": "", "n": n_in})
    out = pd.DataFrame(rows)
    out["order"] = out["order"].astype("Int64")
    out["share_pct"] = (100 * out["n"] / n_in).round(2) if n_in else 0.0
    return out


class CleaningStopped(UserError, ValueError):
    """Cleaning left no rows, or dropped more than survey.cleaning.max_drop_share of them."""


def check_drop_share(result: CleanResult, config: CleaningConfig, source: Any = "survey file") -> None:
    """Stop when the clean table would be empty or too much was dropped; say what each rule dropped."""
    n_in = len(result.ledger)
    n_kept = len(result.kept)
    dropped = n_in - n_kept
    if n_in == 0:
        raise CleaningStopped(f"survey file {source}: no data rows below the header; expected one row "
                              "per respondent")
    share = dropped / n_in
    if n_kept > 0 and share <= config.max_drop_share:
        return
    by_rule = result.summary.set_index("rule")["n"]
    counts = ", ".join(f"{r.id} {int(by_rule[r.id])}" for r in RULES if by_rule.get(r.id, 0))
    what = ("no row is left after cleaning" if n_kept == 0 else
            f"cleaning drops {share:.1%} of the rows, more than survey.cleaning.max_drop_share "
            f"= {config.max_drop_share:.0%}")
    raise CleaningStopped(
        f"survey file {source}: {what} ({dropped} of {n_in} dropped; by rule: {counts}); "
        "check the file's columns and codes against the ledger rules, or change survey.cleaning "
        "in the plan file")


def dropped_examples(ledger: pd.DataFrame, per_rule: int = 3) -> pd.DataFrame:
    """The first `per_rule` dropped rows of each rule, in rule order (empty when none dropped)."""
    dropped = ledger.loc[ledger["status"] == "dropped", ["row", "rule", "detail"]]
    order = {r: i for i, r in enumerate(RULE_IDS)}
    out = (dropped.assign(_order=dropped["rule"].map(order)).sort_values(["_order", "row"], kind="stable")
           .groupby("rule", sort=False).head(per_rule).drop(columns="_order"))
    return out.reset_index(drop=True)
