"""The catalog: the stage graph, the files each stage writes, and the one reader for each.

Stages find their output paths here (`output_path`, `write_outputs`); later stages, notebooks and
the report read upstream outputs only through the readers below, so no stage imports another and
no file name is written twice. docs/contracts.md's outputs table is generated from `OUTPUTS`
(`python -m analysis.catalog` rewrites it; tests/test_catalog.py checks it is current).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import ROOT, Plan, processed_dir
from .errors import UserError
from .jsonio import dumps


@dataclass(frozen=True)
class Stage:
    name: str          # notebook file stem in notebooks/
    scope: str         # "survey_year": once per survey year; "report_year": once for the report year
    needs: tuple[str, ...] = ()


STAGES: tuple[Stage, ...] = (
    Stage("01_clean", "survey_year"),
    Stage("02_weight_estimate", "survey_year", ("01_clean",)),
    Stage("03_trajectory", "report_year", ("02_weight_estimate",)),
    Stage("04_county_gaps", "report_year", ("02_weight_estimate",)),
    Stage("05_plan_progress", "report_year", ("02_weight_estimate",)),  # reads the literacy estimate
)


@dataclass(frozen=True)
class Output:
    """One file (or a family of files, `name` with a `*`) under data/processed/<city>/<year>/."""

    name: str
    stage: str
    content: str
    columns: tuple[str, ...] = ()  # columns readers rely on, checked on every read


ESTIMATE_COLUMNS = ("year", "indicator", "domain", "level", "n", "estimate", "se", "suppressed")

OUTPUTS: tuple[Output, ...] = (
    Output("survey_clean.parquet", "01_clean",
           "one row per kept respondent: canonical columns less PII, `resp_key` (keyed hash of resp_id), "
           "`division_code`, `age_group`, `score_<dimension>`, `score_total`, `level`, `literate` (by the "
           "year's rule), `literate_score_rule`, `literate_three_dim`", ("resp_key",)),
    Output("ledger.parquet", "01_clean",
           "one row per input row: `row`, `resp_key`, `status` (`kept` or `dropped`), `rule`, `detail`",
           ("row", "status", "rule")),
    Output("cleaning_summary.csv", "01_clean", "rows by rule (`order`, `rule`, `threshold`, `n`, `share_pct`)",
           ("rule", "n")),
    Output("scoring_summary.json", "01_clean", "rule used, n, unweighted shares"),
    Output("weights.parquet", "02_weight_estimate", "`resp_key`, `design_weight`, `weight` (calibrated)",
           ("resp_key", "weight")),
    Output("weighting_diagnostics.json", "02_weight_estimate",
           "method, iterations, converged, Kish deff, effective n, margins before/after"),
    Output("estimates.parquet", "02_weight_estimate",
           "one row per (year, indicator, domain, level): `n`, `estimate`, `se`, `df` (degrees of freedom of the "
           "interval's t: PSUs less strata), `ci_low`, `ci_high`, `deff`, "
           "`n_eff`, `cv`, `suppressed`, `suppress_reason`. Shares in percent (0–100), means in points",
           ESTIMATE_COLUMNS),
    Output("figures/estimates_by_group*.png", "02_weight_estimate", "literacy by group with 95% intervals"),
    Output("trajectory.json", "03_trajectory",
           "latest estimate and CI, forecast and interval, P(target) and its basis (a code), year reached, "
           "model comparison (LOYO), implied path and gaps, benchmarks, backtest, group trends, "
           "decomposition (percent)"),
    Output("trajectory_series.parquet", "03_trajectory",
           "`series`, `year`, `estimate`, `lower`, `upper`, `kind` (observed, published, fitted, forecast, "
           "implied, target, band)", ("series", "year", "estimate", "kind")),
    Output("decomposition.parquet", "03_trajectory",
           "`method`, `component`, `factor`, `value_pp`, `share_of_change`, `start_year`, `end_year`"),
    Output("figures/fan_chart*.png", "03_trajectory", "observed, forecast fan, implied path and target"),
    Output("figures/group_trends*.png", "03_trajectory", "key groups and urban/rural over the years"),
    Output("sae.parquet", "04_county_gaps",
           "per division (report year): `division_code`, `n`, `direct`, `direct_se`, `fh`, `fh_mse`, `fh_rmse`, "
           "`shrinkage`, `benchmarked`, `gap_to_target`, `change_since_baseline`, `p_below_target`, `ci_low`, "
           "`ci_high`, covariates", ("division_code", "benchmarked", "gap_to_target")),
    Output("sae_years.parquet", "04_county_gaps", "as sae.parquet, for every fitted year, with `year`",
           ("year", "division_code", "benchmarked")),
    Output("county_gaps.json", "04_county_gaps",
           "model (refvar, beta), divisions below target, `largest_gaps` (up to 3 divisions with a negative "
           "gap; possibly none), `p_likely_below` (the cut-off used), inequality first vs latest with "
           "intervals, verdicts (codes), map files and class breaks"),
    Output("figures/map_*.png", "04_county_gaps", "choropleth maps of the division estimates"),
    Output("progress_measures.parquet", "05_plan_progress",
           "per measure: status as of the report year, due, completed, completion, overdue"),
    Output("progress_by_group.parquet", "05_plan_progress", "completion by action or project"),
    Output("progress_by_unit.parquet", "05_plan_progress", "completion by lead unit"),
    Output("progress_by_year.parquet", "05_plan_progress", "completion by year for 每年实施 measures"),
    Output("progress_indicators.parquet", "05_plan_progress",
           "indicator values by year for the city and by division, target, due, met"),
    Output("progress_problems.parquet", "05_plan_progress",
           "`file`, `sheet`, `cell`, `problem`, `severity`, `code`, `value`"),
    Output("progress.json", "05_plan_progress",
           "headline numbers: measures, completed share, overdue, indicators met/missed"),
    Output("figures/progress_*.png", "05_plan_progress", "completion and indicator figures"),
    Output("templates/*.xlsx", "05_plan_progress", "empty returns for the lead units, for the next year"),
    Output("manifest-*.json", "all",
           "one per stage: inputs and outputs with SHA-256, parameters, code version, package versions "
           "(`analysis.provenance.write_manifest`)"),
)

STAGE_NAMES = tuple(s.name for s in STAGES)

# The provincial stage (notebook 06_province, run by `python -m analysis batch --province CODE`): not a city
# stage, so not in STAGES; it reads the cities' outputs of these stages and writes under
# data/processed/province-<code>/<year>/ (cities.json, written by the batch, one folder up).
PROVINCE_STAGE = Stage("06_province", "report_year", ("02_weight_estimate", "03_trajectory", "05_plan_progress"))
PROVINCE_BATCH = "batch"  # writer of cities.json
LEAGUE_COLUMNS = ("city", "code", "name_zh", "synthetic", "population", "latest_year", "latest_estimate",
                  "latest_se", "p_exceeds_target", "rank", "rank_low", "rank_high")

PROVINCE_OUTPUTS: tuple[Output, ...] = (
    Output("cities.json", PROVINCE_BATCH,
           "in `province-<code>/` (no year): the province's code, name and benchmark scope, the cities compared "
           "(`city`, `code`, `raw_dir`) and those `left_out` (their tasks failed); written by the batch"),
    Output("league.parquet", PROVINCE_STAGE.name,
           "one row per city, by rank: latest estimate with SE and interval, change since the baseline, "
           "P(target), task completion, adult population, `rank` with its 95% interval `rank_low`..`rank_high`",
           LEAGUE_COLUMNS),
    Output("province_estimates.parquet", PROVINCE_STAGE.name,
           "per year: the population-weighted provincial estimate (cities as strata) `estimate`, `se`, "
           "`ci_low`, `ci_high`, `n_cities`, `population_covered`, the `published` rate and the difference",
           ("year", "estimate", "se", "ci_low", "ci_high", "published")),
    Output("city_estimates.parquet", PROVINCE_STAGE.name, "per city and survey year: `estimate`, `se` (literate)",
           ("city", "year", "estimate", "se")),
    Output("rank_probabilities.parquet", PROVINCE_STAGE.name, "per city: P(rank = k), columns `rank_1`..",
           ("city",)),
    Output("province.json", PROVINCE_STAGE.name,
           "headline: cities (synthetic ones), latest provincial estimate with SE and interval, P(target), "
           "benchmark scope, top and bottom city, rank interval widths"),
    Output("figures/province_map.png", PROVINCE_STAGE.name, "choropleth of the latest city rates"),
    Output("figures/province_vs_published.png", PROVINCE_STAGE.name,
           "provincial estimate with 95% interval against the published rates"),
    Output("figures/rank_intervals.png", PROVINCE_STAGE.name, "each city's rank with its 95% interval"),
    Output("figures/en/*.png", PROVINCE_STAGE.name, "the same three figures with English text"),
)


class OutputError(UserError, ValueError):
    """An upstream output is missing or does not follow its contract."""


class MissingOutput(OutputError, FileNotFoundError):
    """An upstream output does not exist: the message names the file and the notebook that writes it."""


# ---------------------------------------------------------------- graph and names

def stage(name: str) -> Stage:
    for s in STAGES:
        if s.name == name:
            return s
    raise KeyError(f"no stage {name!r}; stages: {', '.join(STAGE_NAMES)}")


def output(name: str) -> Output:
    """The catalog entry of a file name (exact, or matching a family such as figures/map_*.png)."""
    for o in (*OUTPUTS, *PROVINCE_OUTPUTS):
        if name == o.name or ("*" in o.name and fnmatch.fnmatchcase(name, o.name)):
            return o
    raise KeyError(f"{name!r} is not in the catalog of stage outputs (analysis/catalog.py)")


def outputs_of(stage_name: str) -> tuple[Output, ...]:
    stage(stage_name)
    return tuple(o for o in OUTPUTS if o.stage == stage_name)


def writer(name: str) -> str:
    """The stage (notebook) that writes an output."""
    return output(name).stage


def output_path(plan: Plan, name: str, year: int, processed_root: Path | None = None) -> Path:
    """Where output `name` of `year` lives (the name must be catalogued; the file may not exist)."""
    output(name)
    return processed_dir(plan.city, int(year), processed_root) / name


def require(plan: Plan, name: str, year: int, processed_root: Path | None = None) -> Path:
    """The path of an existing output; MissingOutput names the notebook that writes it."""
    path = output_path(plan, name, year, processed_root)
    if not path.is_file():
        writer_stage = writer(name)
        scope = stage(writer_stage).scope if writer_stage in STAGE_NAMES else "report_year"
        raise MissingOutput(f"{path} not found: run notebook {writer_stage} for "
                            f"{'survey year' if scope == 'survey_year' else 'report year'} {int(year)} "
                            f"(python -m analysis run --year {int(year)})")
    return path


# ---------------------------------------------------------------- the provincial stage's files

def _province_output(name: str) -> Output:
    entry = output(name)
    if entry not in PROVINCE_OUTPUTS:
        raise KeyError(f"{name!r} is not an output of the provincial stage (catalog.PROVINCE_OUTPUTS)")
    return entry


def province_output_path(province: str, name: str, year: int | None, processed_root: Path | None = None) -> Path:
    """Where a provincial output lives (province: the id province-<code>; cities.json has no year)."""
    entry = _province_output(name)
    return processed_dir(province, None if entry.stage == PROVINCE_BATCH else int(year), processed_root) / name


def require_province(province: str, name: str, year: int | None, processed_root: Path | None = None) -> Path:
    path = province_output_path(province, name, year, processed_root)
    if not path.is_file():
        raise MissingOutput(f"{path} not found: run the provincial stage "
                            f"(python -m analysis batch --province {province.removeprefix('province-')})")
    return path


def read_province_table(province: str, name: str, year: int, processed_root: Path | None = None,
                        need: Iterable[str] | None = None) -> pd.DataFrame:
    """One table of the provincial stage, its contract columns checked."""
    return read_file_table(require_province(province, name, year, processed_root), need)


def read_province_json(province: str, name: str, year: int | None,
                       processed_root: Path | None = None) -> dict[str, Any]:
    """province.json of a year, or cities.json (year None)."""
    path = require_province(province, name, year, processed_root)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise OutputError(f"{path}: not readable JSON ({err}); rerun the provincial stage") from err


def write_province_outputs(province: str, year: int, processed_root: Path | None,
                           files: dict[str, Any]) -> dict[str, Path]:
    """Write the provincial stage's tables and JSON all at once (as write_outputs)."""
    for name in files:
        if _province_output(name).stage != PROVINCE_STAGE.name:
            raise KeyError(f"{name} is not written by the provincial stage")
    return _write_all(processed_dir(province, int(year), processed_root), PROVINCE_STAGE.name, files)


# ---------------------------------------------------------------- readers

def _check_columns(df: pd.DataFrame, path: Path, need: Iterable[str]) -> pd.DataFrame:
    if missing := [c for c in dict.fromkeys(need) if c not in df.columns]:
        raise OutputError(f"{path}: missing column(s) {missing} (written by {writer(path.name)}; "
                          "expected the contract in docs/contracts.md)")
    return df


def read_file_table(path: Path, need: Iterable[str] | None = None) -> pd.DataFrame:
    """A catalogued parquet or CSV file at a known path, with its contract columns checked."""
    path = Path(path)
    if not path.is_file():
        raise MissingOutput(f"{path} not found: run notebook {writer(path.name)} first")
    try:
        df = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    except Exception as err:  # pyarrow and pandas raise several types for a damaged file
        raise OutputError(f"{path}: not a readable {path.suffix[1:]} file ({err})") from err
    return _check_columns(df, path, output(path.name).columns if need is None else need)


def read_table(plan: Plan, name: str, year: int, processed_root: Path | None = None,
               need: Iterable[str] | None = None) -> pd.DataFrame:
    """One table output (parquet or CSV) of one year, its contract columns checked."""
    return read_file_table(require(plan, name, year, processed_root), need)


def read_json(plan: Plan, name: str, year: int, processed_root: Path | None = None) -> dict[str, Any]:
    """One JSON output of one year."""
    path = require(plan, name, year, processed_root)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise OutputError(f"{path}: not readable JSON ({err}); rerun notebook {writer(name)}") from err


def figure(plan: Plan, name: str, year: int, processed_root: Path | None = None) -> Path:
    """An existing figure file (name under figures/, e.g. 'fan_chart.png')."""
    return require(plan, f"figures/{name}", year, processed_root)


# ---------------------------------------------------------------- estimates across years

def estimate_files(plan: Plan, processed_root: Path | None = None, years: list[int] | None = None,
                   up_to: int | None = None, since: int | None = None) -> dict[int, Path]:
    """Existing estimates.parquet per survey year (plan.survey_years or `years`, within since..up_to)."""
    years = plan.survey_years if years is None else years
    out = {}
    for y in sorted(int(y) for y in years):
        if (up_to is not None and y > up_to) or (since is not None and y < since):
            continue
        p = output_path(plan, "estimates.parquet", y, processed_root)
        if p.is_file():
            out[y] = p
    return out


def read_estimates_file(path: Path, year: int | None = None,
                        need: tuple[str, ...] = ESTIMATE_COLUMNS) -> pd.DataFrame:
    """One estimates.parquet, checked: columns `need` present, `year` int (= year if given), level str."""
    df = read_file_table(Path(path), ("year", "level", *need))
    yrs = pd.to_numeric(df["year"], errors="coerce")
    if yrs.isna().any():
        row = int(np.flatnonzero(yrs.isna().to_numpy())[0])
        raise OutputError(f"{path}: row {row}, column 'year': value {df['year'].iloc[row]!r} is not a year")
    df["year"] = yrs.astype("int64")
    if year is not None and (bad := df["year"] != int(year)).any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise OutputError(f"{path}: row {row}, column 'year': value {int(df['year'].iloc[row])} "
                          f"in the file of survey year {year}")
    df["level"] = df["level"].astype(str)
    return df


def load_estimates(plan: Plan, processed_root: Path | None = None, years: list[int] | None = None,
                   up_to: int | None = None, since: int | None = None, indicator: str | None = None,
                   require: list[int] | tuple[int, ...] = (),
                   need: tuple[str, ...] = ESTIMATE_COLUMNS) -> pd.DataFrame:
    """estimates.parquet of every year that has one, stacked (the cross-year comparison).

    years: candidate survey years (default plan.survey_years), kept within since..up_to;
    indicator: keep one indicator only; require: years whose file must exist;
    need: columns every file must have (default the contract columns readers rely on).
    """
    return load_estimates_with_paths(plan, processed_root, years, up_to, since, indicator, require,
                                     need)[0]


def load_estimates_with_paths(plan: Plan, processed_root: Path | None = None,
                              years: list[int] | None = None, up_to: int | None = None,
                              since: int | None = None, indicator: str | None = None,
                              require: list[int] | tuple[int, ...] = (),
                              need: tuple[str, ...] = ESTIMATE_COLUMNS
                              ) -> tuple[pd.DataFrame, list[Path]]:
    """load_estimates and the files it read (inputs of a stage manifest)."""
    files = estimate_files(plan, processed_root, years, up_to, since)
    for y in require:
        if int(y) not in files:
            p = output_path(plan, "estimates.parquet", int(y), processed_root)
            raise MissingOutput(f"{p} not found: run stage 02 for {int(y)} first")
    if not files:
        where = processed_dir(plan.city, None, processed_root)
        span = f" <= {up_to}" if up_to is not None else ""
        raise MissingOutput(f"no estimates.parquet for {plan.city} in survey years{span} under "
                            f"{where}: run stage 02 first")
    parts = []
    for y, p in files.items():
        d = read_estimates_file(p, y, need)
        parts.append(d[d["indicator"] == indicator] if indicator is not None else d)
    table = pd.concat(parts, ignore_index=True)
    return (table.sort_values(["indicator", "domain", "level", "year"], ignore_index=True),
            list(files.values()))


# ---------------------------------------------------------------- writer

def write_outputs(plan: Plan, stage_name: str, year: int, processed_root: Path | None,
                  files: dict[str, Any]) -> dict[str, Path]:
    """Write a stage's outputs all at once: to a temporary folder, then moved in (nothing on failure).

    Tables go to parquet or CSV by the name's extension, anything else to JSON.
    """
    for name in files:
        if writer(name) != stage_name:
            raise KeyError(f"{name} is catalogued as an output of {writer(name)}, not {stage_name}")
    return _write_all(processed_dir(plan.city, int(year), processed_root), stage_name, files)


def _write_all(out_dir: Path, stage_name: str, files: dict[str, Any]) -> dict[str, Path]:
    """Write to a temporary folder beside out_dir, then move every file in (nothing on failure)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-{stage_name}-", dir=out_dir.parent))
    try:
        for name, obj in files.items():
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if name.endswith(".parquet"):
                obj.to_parquet(path, index=False)
            elif name.endswith(".csv"):
                obj.to_csv(path, index=False, encoding="utf-8")
            else:
                path.write_text(dumps(obj), encoding="utf-8")
        written = {}
        for name in files:
            (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / name, out_dir / name)
            written[name] = out_dir / name
        return written
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- docs/contracts.md

CONTRACTS = ROOT / "docs" / "contracts.md"
BEGIN, END = "<!-- catalog:outputs (generated by python -m analysis.catalog) -->", "<!-- /catalog:outputs -->"


def outputs_table() -> str:
    """The markdown table of every output, as docs/contracts.md shows it."""
    short = {s.name: s.name[:2] for s in (*STAGES, PROVINCE_STAGE)} | {"all": "all", PROVINCE_BATCH: PROVINCE_BATCH}
    rows = ["| file | stage | content |", "|---|---|---|"]
    rows += [f"| {o.name} | {short[o.stage]} | {o.content} |" for o in OUTPUTS]
    rows += ["", f"The provincial stage ({PROVINCE_STAGE.name}, `python -m analysis batch --province CODE`) writes "
             "under `data/processed/province-<code>/<year>/`:", "",
             "| file | stage | content |", "|---|---|---|"]
    rows += [f"| {o.name} | {short[o.stage]} | {o.content} |" for o in PROVINCE_OUTPUTS]
    return "\n".join(rows)


def contracts_text(current: str) -> str:
    """docs/contracts.md with its generated outputs table replaced by the catalog's."""
    head, _, rest = current.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{outputs_table()}\n{END}{tail}"


def main() -> None:
    CONTRACTS.write_text(contracts_text(CONTRACTS.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote the outputs table of {CONTRACTS}")


if __name__ == "__main__":
    main()
