"""Deterministic synthetic demo inputs: questionnaire, survey microdata per year, faults, census margins.

``build_demo(plan)`` writes every demo input the pipeline reads; the same seed
gives byte-identical files. The population model and its assumptions are in
``synth_census``; the survey model, the calibration and the fault rates in
``synth_survey`` (``FAULT_RATES``, ``DEMO_PATH``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from .ingest import faults_path, truth_name
from .synth_census import census_margins
from .synth_survey import (
    BORDERLINE_RATES,
    DEMO_PATH,
    FAULT_RATES,
    SynthError,
    build_population,
    generate_survey,
    make_questionnaire,
    population_truth,
)

DEFAULT_SEED = 20210601

__all__ = ["BORDERLINE_RATES", "DEFAULT_SEED", "DEMO_PATH", "FAULT_RATES", "SynthError", "build_demo",
           "build_population", "census_margins", "faults_path", "generate_survey", "make_questionnaire",
           "population_truth", "truth_path"]


def truth_path(plan: Any, raw_dir: Path | None = None) -> Path:
    """The synthetic population's true values: ``<survey dir>/<city>-truth-synthetic.csv``."""
    survey_dir = Path(plan.raw_survey_path(plan.survey_years[0])).parent
    if raw_dir is not None:
        survey_dir = _under(plan, survey_dir, raw_dir)
    return survey_dir / truth_name(plan.city)


def _under(plan: Any, path: Path, raw_dir: Path) -> Path:
    return Path(raw_dir) / Path(path).relative_to(plan.raw_dir)


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, index=False, encoding="utf-8", lineterminator="\n")
    tmp.replace(path)
    return path


def build_demo(plan: Any, raw_dir: Path | None = None, seed: int = DEFAULT_SEED, n_per_year: int = 3000,
               years: list[int] | None = None) -> dict[str, list[Path]]:
    """Write the demo inputs under raw_dir (default: the plan's raw dir).

    Returns {"questionnaire": [...], "census": [...], "survey": [...], "faults": [...], "truth": [...]}.
    The truth file holds the synthetic population's true shares (city, divisions, groups)
    for every year of the demo path; each survey year is an independent sample from it.
    """
    raw_dir = Path(raw_dir) if raw_dir is not None else Path(plan.raw_dir)
    years = [int(y) for y in (years if years is not None else plan.survey_years)]
    q = make_questionnaire(plan, seed)
    margins = census_margins(plan, raw_dir)
    written: dict[str, list[Path]] = {"questionnaire": [], "census": [], "survey": [], "faults": [],
                                      "truth": []}
    written["questionnaire"].append(_write_csv(q, _under(plan, plan.questionnaire_path, raw_dir)))
    written["census"].append(_write_csv(margins, _under(plan, plan.census_margins_path, raw_dir)))
    pop = build_population(plan, seed, q, margins)
    written["truth"].append(_write_csv(population_truth(plan, pop), truth_path(plan, raw_dir)))
    for year in years:
        raw, faults = generate_survey(plan, year, n_per_year, seed, questionnaire=q, margins=margins,
                                      population=pop)
        path = _under(plan, plan.raw_survey_path(year), raw_dir)
        written["survey"].append(_write_csv(raw, path))
        written["faults"].append(_write_csv(faults, faults_path(path)))
    return written
