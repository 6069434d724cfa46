"""Stage 02: calibrate weights and estimate every indicator by every domain for one year."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import catalog
from .config import Plan, processed_dir
from .disclosure import disclosure_limits, flag_cells
from .estimate import (
    Calibration,
    Design,
    confidence_interval,
    domain_means,
    estimate_domains,
)
from .report_figures import estimates_by_group
from .vocabulary import DOMAIN_NAMES_ZH  # only its order of the domain codes
from .weighting import Margin, calibrate, read_census_margins, weighting_settings

STAGE = "02_weight_estimate"
COLUMNS = ["year", "indicator", "domain", "level", "n", "estimate", "se", "ci_low", "ci_high",
           "deff", "n_eff", "cv", "suppressed", "suppress_reason"]
# Partition domains: domain name -> column of the clean table
DOMAIN_COLUMNS = {"division": "division_code", "urban_rural": "urban_rural", "sex": "sex",
                  "age_group": "age_group", "education": "education", "occupation": "occupation"}
DIMENSION_FALLBACK = ("knowledge", "method", "spirit", "application")
LEVEL_FALLBACK = ("advanced", "literate", "basic", "low")


class EstimateStageError(ValueError):
    """Stage 02 inputs are missing or do not follow the contract."""


def _indicators(df: pd.DataFrame, plan: Plan) -> list[tuple[str, np.ndarray, bool]]:
    """(indicator id, values per row, is a share) for every indicator the table supports."""
    out = []
    if "literate" not in df.columns:
        raise EstimateStageError("survey_clean has no 'literate' column")
    lit = pd.to_numeric(df["literate"].astype("boolean"), errors="coerce").to_numpy(float, na_value=np.nan)
    out.append(("literate", lit, True))
    levels = [str(x["id"]) for x in plan.settings.scoring.score.levels] or list(LEVEL_FALLBACK)
    if "level" in df.columns:
        lv = df["level"].astype("string")
        for lid in levels:
            v = (lv == lid).astype("boolean").to_numpy(float, na_value=np.nan)
            out.append((f"level_{lid}", v, True))
    dims = [str(x["id"]) for x in plan.settings.scoring.score.dimensions] or list(DIMENSION_FALLBACK)
    for col in ["score_total", *[f"score_{d}" for d in dims]]:
        if col in df.columns:
            out.append((f"mean_{col}", pd.to_numeric(df[col], errors="coerce").to_numpy(float), False))
    return out


def key_group_masks(df: pd.DataFrame, plan: Plan) -> dict[str, np.ndarray]:
    """Membership of each key group of the plan (groups may overlap: elderly farmers)."""
    masks = {}
    for g in plan.settings.literacy.key_groups:
        rule = g.get("rule", {})
        m = np.ones(len(df), bool)
        if "occupation" in rule:
            m &= (df["occupation"].astype("string") == str(rule["occupation"])).fillna(False).to_numpy(bool)
        if "age_min" in rule or "age_max" in rule:
            age = pd.to_numeric(df["age"], errors="coerce").to_numpy(float)
            m &= (age >= float(rule.get("age_min", -np.inf))) & (age <= float(rule.get("age_max", np.inf)))
        masks[str(g["id"])] = m
    return masks


def level_order(plan: Plan) -> dict[str, list[str]]:
    """Natural order of the levels of each domain (plan order of divisions, dictionary order)."""
    order = {"city": ["all"], "division": list(plan.division_names),
             "key_group": [str(g["id"]) for g in plan.settings.literacy.key_groups]}
    try:
        from .dictionary import load_dictionary
        d = load_dictionary()
        for dom, col in DOMAIN_COLUMNS.items():
            if dom not in order and d.allowed(col):
                order[dom] = list(d.allowed(col))
    except (ImportError, OSError, KeyError):  # ordering is cosmetic; fall back to sorted
        pass
    return order


def _level_rank(table: pd.DataFrame, plan: Plan) -> np.ndarray:
    order = level_order(plan)
    return np.array([order.get(d, []).index(lv) if lv in order.get(d, []) else 999
                     for d, lv in zip(table["domain"], table["level"].astype(str), strict=True)])


def _rows(res: pd.DataFrame, year: int, indicator: str, domain: str, share: bool) -> pd.DataFrame:
    res = res.copy()
    if share:  # contract: shares in percent
        for c in ("estimate", "se", "ci_low", "ci_high"):
            res[c] = res[c] * 100
    res["year"], res["indicator"], res["domain"] = year, indicator, domain
    return res


def estimate_table(df: pd.DataFrame, design: Design, plan: Plan, year: int) -> pd.DataFrame:
    """Every indicator by every domain (tidy, contract columns), disclosure flags included."""
    parts = []
    groups = key_group_masks(df, plan)
    for indicator, y, share in _indicators(df, plan):
        if np.isnan(y).all():
            continue
        parts.append(_rows(estimate_domains(design, y, None, share), year, indicator, "city", share))
        for domain, col in DOMAIN_COLUMNS.items():
            if col in df.columns:
                labels = df[col].astype("string").reset_index(drop=True)
                res = estimate_domains(design, y, labels.fillna("<NA>"), share)
                parts.append(_rows(res[res["level"] != "<NA>"], year, indicator, domain, share))
        for gid, mask in groups.items():
            codes = np.where(mask, 0, -1)
            res = domain_means(design, y, codes, 1)
            res.insert(0, "level", [gid])
            res["ci_low"], res["ci_high"] = confidence_interval(res["estimate"], res["se"],
                                                                res["df"], share)
            with np.errstate(invalid="ignore", divide="ignore"):
                res["n_eff"] = res["n"] / res["deff"]
                res["cv"] = res["se"] / res["estimate"].abs()
            parts.append(_rows(res, year, indicator, "key_group", share))
    table = pd.concat(parts, ignore_index=True)
    table = table.iloc[np.lexsort((_level_rank(table, plan), table["domain"].map(
        {d: i for i, d in enumerate(DOMAIN_NAMES_ZH)}).to_numpy(),
        table["indicator"].map({k: i for i, k in enumerate(dict.fromkeys(
            p[0] for p in _indicators(df, plan)))}).to_numpy()))].reset_index(drop=True)
    min_n, max_cv = disclosure_limits(plan)
    table = flag_cells(table, min_n, max_cv)
    table["n"] = table["n"].astype("int64")
    table["year"] = table["year"].astype("int64")
    table["level"] = table["level"].astype(str)
    return table[COLUMNS]


def design_for(df: pd.DataFrame, weights: np.ndarray, plan: Plan, codes: list[np.ndarray],
               method: str) -> Design:
    """The sample design with the final weights and the calibration the variance accounts for."""
    lonely = plan.settings.survey.variance.lonely_psu
    cal = None
    if plan.settings.survey.variance.calibration:
        if method == "rake":
            cal = Calibration("raking", tuple(codes))
        elif method == "poststratify":
            cal = Calibration("poststratify", tuple(codes),
                              design_weights=df["design_weight"].to_numpy(float))
    return Design.from_frame(df, weights, "stratum", "psu", lonely_psu=lonely, calibration=cal)


@dataclass
class EstimateInputs:
    clean: pd.DataFrame
    margins: list[Margin]
    weighting: dict[str, Any]
    files: list[Path]  # read, for the manifest


@dataclass
class EstimateResult:
    """Stage 02 for one survey year: weights, estimates by domain, diagnostics, the city share."""

    year: int
    n: int
    weights: pd.DataFrame
    estimates: pd.DataFrame
    diagnostics: dict[str, Any]
    literate: dict[str, float]
    params: dict[str, Any]
    inputs: list[Path]
    outputs: dict[str, Path] = field(default_factory=dict)
    manifest: Path | None = None


CLEAN_NEEDS = ("resp_key", "stratum", "psu", "design_weight", "division_code", "urban_rural", "sex",
               "age_group", "education")


def load_inputs(plan: Plan, year: int, processed_root: Path | None = None) -> EstimateInputs:
    """Stage 01's clean table of the year and the census margins the plan weights to."""
    clean = catalog.read_table(plan, "survey_clean.parquet", year, processed_root, need=CLEAN_NEEDS)
    weighting = weighting_settings(plan)
    margins = read_census_margins(plan.census_margins_path, weighting["margins"])
    files = [catalog.output_path(plan, "survey_clean.parquet", year, processed_root),
             plan.census_margins_path, plan.path]
    return EstimateInputs(clean.reset_index(drop=True), margins, weighting, files)


def _variance_diagnostics(design: Design) -> dict[str, Any]:
    return {"method": "taylor_ultimate_clusters",  # with replacement, as R's survey package
            "lonely_psu": design.lonely_psu,
            "calibration_adjustment": design.calibration is not None,
            "strata": design.n_strata, "psus": design.n_psu,
            "single_psu_strata": int((design.psu_per_stratum == 1).sum()),
            "matches_r": "survey::svydesign(ids=~psu, strata=~stratum, nest=TRUE) + "
                         "rake()/postStratify(); svyby, svyciprop(method='logit')"}


def compute(plan: Plan, year: int, inputs: EstimateInputs) -> EstimateResult:
    """Calibrated weights, the design with its variance settings, and every estimate."""
    df, settings = inputs.clean, inputs.weighting
    result, diag = calibrate(df, inputs.margins, settings)
    design = design_for(df, result.weights, plan, result.codes, result.method)
    diag |= {"year": year, "census_margins": str(plan.census_margins_path),
             "variance": _variance_diagnostics(design)}
    table = estimate_table(df, design, plan, year)
    weights = pd.DataFrame({"resp_key": df["resp_key"], "design_weight": df["design_weight"].astype(float),
                            "weight": result.weights})
    min_n, max_cv = disclosure_limits(plan)
    params = {"city": plan.city, "year": year, **{f"weighting_{k}": v for k, v in settings.items()},
              "lonely_psu": design.lonely_psu, "min_n": min_n, "max_cv": max_cv}
    city = table[(table["indicator"] == "literate") & (table["domain"] == "city")].iloc[0]
    literate = {k: float(city[k]) for k in ("estimate", "se", "ci_low", "ci_high", "deff")}
    return EstimateResult(year=year, n=len(df), weights=weights, estimates=table, diagnostics=diag,
                          literate=literate, params=params, inputs=inputs.files)


def save_outputs(plan: Plan, res: EstimateResult, processed_root: Path | None = None) -> EstimateResult:
    """Weights, diagnostics, estimates, the figure and the manifest."""
    from .provenance import write_manifest

    res.outputs = catalog.write_outputs(plan, STAGE, res.year, processed_root, {
        "weights.parquet": res.weights, "weighting_diagnostics.json": res.diagnostics,
        "estimates.parquet": res.estimates})
    fig = catalog.output_path(plan, "figures/estimates_by_group.png", res.year, processed_root)
    res.outputs["figures/estimates_by_group.png"] = estimates_by_group(res.estimates, plan, res.year, "zh", fig)
    res.manifest = write_manifest(processed_dir(plan.city, res.year, processed_root), STAGE, res.inputs, list(res.outputs.values()),
                                  res.params)
    return res


def run_estimate(plan: Plan, year: int, processed_root: Path | None = None) -> EstimateResult:
    """Weight and estimate one survey year; write weights, diagnostics, estimates, figure, manifest."""
    # Load inputs
    inputs = load_inputs(plan, int(year), processed_root)
    # Process data
    result = compute(plan, int(year), inputs)
    # Save outputs
    return save_outputs(plan, result, processed_root)


def compare_years(table: pd.DataFrame, indicator: str = "literate", domain: str = "city") -> pd.DataFrame:
    """One indicator for one domain across years, wide by level (estimate, CI, suppressed)."""
    t = table[(table["indicator"] == indicator) & (table["domain"] == domain)]
    return t.pivot_table(index="level", columns="year", values="estimate", aggfunc="first")
