"""Stage 01: one year's raw survey file -> clean, scored table, ledger and summaries.

Steps: find the file (the plan's raw path, or the same name with another
supported extension) -> ingest (encoding, headers, value labels) -> harmonise
-> pseudonymise (PII dropped, resp_key) -> cleaning rules (ledger) -> scoring
-> pandera validation -> write. Everything is computed before anything is
written, and catalog.write_outputs writes to a temporary folder and then moves
the files, so a bad file stops the run with one IngestError and leaves the
output folder as it was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pandera.errors import SchemaErrors

from . import catalog, scoring
from .clean import CleaningConfig, CleanResult, check_drop_share, clean
from .config import Plan, processed_dir
from .dictionary import ITEM_RE
from .harmonise import harmonise
from .ingest import IngestError, Source, find_raw_file, read_survey
from .provenance import write_manifest
from .pseudonymise import pseudonym_key, pseudonymise
from .schema import SCORES, clean_columns, clean_schema, first_failure

log = logging.getLogger(__name__)
STAGE = "01_clean"


@dataclass
class CleanStageResult:
    """Stage 01 for one survey year: the clean table, the ledger and the summaries."""

    year: int
    raw_path: Path
    source: Source
    clean: pd.DataFrame
    ledger: pd.DataFrame
    summary: pd.DataFrame
    scoring_summary: dict[str, Any]
    config: CleaningConfig
    outputs: dict[str, Path] = field(default_factory=dict)
    out_dir: Path | None = None

    @property
    def n_in(self) -> int:
        return len(self.ledger)

    @property
    def n_kept(self) -> int:
        return len(self.clean)


def scoring_summary(scored: pd.DataFrame, plan: Plan, year: int) -> dict[str, Any]:
    """Rule used, n and unweighted shares (percent) and mean scores."""
    n = len(scored)

    def pct(mask: pd.Series) -> float | None:
        return round(100 * float(mask.mean()), 4) if n else None

    levels = [str(x["id"]) for x in plan.settings.scoring.score.levels]
    return {
        "year": int(year),
        "rule": plan.scoring_rule(int(year)),
        "n": n,
        "weighted": False,
        "literate_pct": pct(scored["literate"]),
        "literate_score_rule_pct": pct(scored["literate_score_rule"]),
        "literate_three_dim_pct": pct(scored["literate_three_dim"]),
        "level_pct": {lv: pct(scored["level"] == lv) for lv in levels},
        "mean_score": {c.removeprefix("score_"): (round(float(scored[c].mean()), 4) if n else None)
                       for c in SCORES if c.startswith("score_")},
    }


def _check_items(df: pd.DataFrame, source: Source, questionnaire: pd.DataFrame) -> pd.DataFrame:
    wanted = list(questionnaire["item_id"])
    have = [c for c in df.columns if ITEM_RE.match(c)]
    absent = [c for c in wanted if c not in have]
    if absent:
        raise source.error("questionnaire items missing from the file", column=", ".join(absent),
                           expected=f"one column per item {wanted[0]}…{wanted[-1]}")
    extra = [c for c in have if c not in wanted]
    if extra:
        log.warning("dropped item columns not in the questionnaire: %s", ", ".join(extra))
    return df.drop(columns=extra)


def _validate(table: pd.DataFrame, rows: pd.Series, plan: Plan, items: list[str],
              config: CleaningConfig, source: Source) -> pd.DataFrame:
    try:
        return clean_schema(plan, items, config).validate(table, lazy=True)
    except SchemaErrors as err:
        f = first_failure(err)
        data_row = None if f["index"] is None else int(rows.iloc[f["index"]])
        raise source.error(
            f"clean table fails schema check {f['check']} ({f['n_failures']} failure(s) in all)",
            data_row=data_row, column=f["column"], value=f["value"],
            expected="values allowed by analysis/schema.py") from None


def process(df: pd.DataFrame, source: Source, plan: Plan, year: int, questionnaire: pd.DataFrame,
            key: bytes, config: CleaningConfig | None = None) -> tuple[pd.DataFrame, CleanResult]:
    """In memory: harmonise, pseudonymise, clean, score, validate. Returns (clean table, result)."""
    config = config or CleaningConfig.from_plan(plan)
    df = _check_items(df, source, questionnaire)
    items = list(questionnaire["item_id"])
    core = list(questionnaire.loc[questionnaire["core"], "item_id"])
    h = harmonise(df, plan, source)
    p = pseudonymise(h, key)
    result = clean(p, config, core)
    check_drop_share(result, config, source.path)
    rows = result.kept["row"]
    scored = scoring.score(result.kept.drop(columns="row"), questionnaire, plan, year)
    table = scored[clean_columns(items)]
    table = _validate(table, rows, plan, items, config, source)
    return table, result


@dataclass
class CleanInputs:
    raw_path: Path
    raw: pd.DataFrame
    source: Source
    questionnaire: pd.DataFrame
    config: CleaningConfig


def load_inputs(plan: Plan, year: int, raw_path: Path | None = None) -> CleanInputs:
    """The year's raw survey file (the plan's path or `raw_path`), the questionnaire, the rules."""
    raw_path = find_raw_file(Path(raw_path) if raw_path is not None else plan.raw_survey_path(year))
    log.info("stage %s: %s %d from %s", STAGE, plan.city, year, raw_path)
    questionnaire = scoring.load_questionnaire(plan.questionnaire_path, plan)
    df, source = read_survey(raw_path)
    return CleanInputs(raw_path, df, source, questionnaire, CleaningConfig.from_plan(plan))


def compute(plan: Plan, year: int, inputs: CleanInputs, key: bytes) -> CleanStageResult:
    """Clean, score and summarise in memory (nothing is written)."""
    table, result = process(inputs.raw, inputs.source, plan, year, inputs.questionnaire, key, inputs.config)
    summary_json = scoring_summary(table, plan, year)
    summary_json.update({
        "n_input": len(result.ledger),
        "n_dropped": int((result.ledger["status"] == "dropped").sum()),
        "source_file": inputs.raw_path.name,
        "source_format": inputs.source.format,
        "source_encoding": inputs.source.encoding,
    })
    return CleanStageResult(year=year, raw_path=inputs.raw_path, source=inputs.source, clean=table,
                            ledger=result.ledger, summary=result.summary, scoring_summary=summary_json,
                            config=inputs.config)


def save_outputs(plan: Plan, res: CleanStageResult, processed_root: Path | None = None) -> CleanStageResult:
    """survey_clean, ledger and summaries (all or nothing), then the manifest."""
    res.outputs = catalog.write_outputs(plan, STAGE, res.year, processed_root, {
        "survey_clean.parquet": res.clean,
        "ledger.parquet": res.ledger,
        "cleaning_summary.csv": res.summary,
        "scoring_summary.json": res.scoring_summary,
    })
    res.out_dir = processed_dir(plan.city, res.year, processed_root)
    write_manifest(
        res.out_dir, stage=STAGE, inputs=[res.raw_path, plan.questionnaire_path, plan.path],
        outputs=list(res.outputs.values()),
        params={"city": plan.city, "year": res.year, "encoding": res.source.encoding,
                "format": res.source.format, "header_rows": str(res.source.header_rows),
                "scoring_rule": res.scoring_summary["rule"],
                **{f"cleaning.{k}": v for k, v in res.config.__dict__.items()}},
    )
    log.info("stage %s: %d rows in, %d kept, literate %.2f%% (unweighted, rule %s) -> %s",
             STAGE, res.n_in, res.n_kept, res.scoring_summary["literate_pct"] or 0,
             res.scoring_summary["rule"], res.out_dir)
    return res


def run_clean(plan: Plan, year: int, processed_root: Path | None = None, *,
              raw_path: Path | None = None, key: bytes | None = None) -> CleanStageResult:
    """Clean and score one survey year; write survey_clean, ledger, summaries and the manifest."""
    # Load inputs
    inputs = load_inputs(plan, int(year), raw_path)
    # Process data
    result = compute(plan, int(year), inputs, key if key is not None else pseudonym_key())
    # Save outputs
    return save_outputs(plan, result, processed_root)


__all__ = ["IngestError", "CleanStageResult", "process", "run_clean", "scoring_summary", "scoring_table_zh"]


def scoring_table_zh(summary: dict[str, Any], plan: Plan) -> pd.DataFrame:
    """Unweighted shares by level and literacy flags with Chinese labels."""
    names = {str(x["id"]): x["name_zh"] for x in plan.settings.scoring.score.levels}
    rows = [("具备科学素质（当年规则：" + {"score": "百分制", "three_dimension": "三维度"}.get(
        summary["rule"], summary["rule"]) + "）", summary["literate_pct"]),
            ("具备科学素质（百分制规则）", summary["literate_score_rule_pct"]),
            ("具备科学素质（三维度规则）", summary["literate_three_dim_pct"])]
    rows += [(names.get(k, k), v) for k, v in summary["level_pct"].items()]
    return pd.DataFrame(rows, columns=["指标", "未加权比例（%）"])
