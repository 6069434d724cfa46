"""What a task reads, hashed part by part for its content key, and the stamps that record it.

A task's key covers its notebook (the report: its .qmd files and template), the analysis/
modules it imports, its parameters, the installed versions of the locked packages, the parts
of the plan file it reads, its raw files and the outputs of the tasks upstream of it. Each
part is hashed on its own so that a rerun can say which input changed (`explain`).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from .config import Plan

REPORT_STAGE = "report"
# Plan-file keys (top level, or top.sub) that only some stages read; every other key counts for
# every stage. The report reads the whole plan file. Keep this table in step with the stages:
# a key missing here only costs reruns, a stage missing from a key's set gives stale results.
PLAN_KEYS_READ_ONLY_BY: dict[str, frozenset[str]] = {
    "survey.cleaning": frozenset({"01_clean"}),
    "trajectory": frozenset({"03_trajectory"}),
    "sae": frozenset({"04_county_gaps"}),
    # 02 and 03 draw their figures with report_figures, which imports geo (map settings)
    "map": frozenset({"02_weight_estimate", "03_trajectory", "04_county_gaps"}),
    "report": frozenset({"04_county_gaps"}),  # report.p_likely_below
    "tasks": frozenset({"05_plan_progress"}),
    "indicators": frozenset({"05_plan_progress"}),
}
# Per-year entries: a survey-year task reads only its own year's entry.
PLAN_KEYS_BY_YEAR = ("scoring.rule_by_year",)
# Which years exist is the runner's business: a survey-year task does not read this list.
PLAN_KEYS_NOT_READ_BY_SURVEY_YEAR = ("survey.years",)


def is_report_stage(stage: str) -> bool:
    return stage.startswith(REPORT_STAGE + "-")


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def plan_parts(plan: Plan, stage: str, year: int, survey_year: bool) -> dict[str, str]:
    """Digest of each part of the plan file the stage reads: 'top' or 'top.sub' -> SHA-256."""
    parts: dict[str, str] = {}
    report = is_report_stage(stage)
    for key, value in plan.data.items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, sub_value in items:
            name = key if sub is None else f"{key}.{sub}"
            readers = PLAN_KEYS_READ_ONLY_BY.get(name, PLAN_KEYS_READ_ONLY_BY.get(key))
            if not report and readers is not None and stage not in readers:
                continue
            if survey_year and name in PLAN_KEYS_NOT_READ_BY_SURVEY_YEAR:
                continue
            if survey_year and name in PLAN_KEYS_BY_YEAR and isinstance(sub_value, dict):
                sub_value = {k: v for k, v in sub_value.items() if str(k) == str(year)}
            parts[name] = digest(sub_value)
    return parts


def raw_inputs(plan: Plan, stage: str, year: int) -> list[Path]:
    """Raw files a task reads, as far as they are known before it runs (its manifest adds the rest)."""
    raw = Path(plan.raw_dir)

    def files(folder: Path) -> list[Path]:
        return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []

    if stage == "01_clean":
        base = plan.raw_survey_path(year)
        found = sorted(base.parent.glob(glob.escape(base.stem) + ".*"))
        return found + [plan.questionnaire_path]
    if stage == "02_weight_estimate":
        return [plan.census_margins_path]
    if stage == "03_trajectory":
        return files(raw / "benchmarks")
    if stage == "04_county_gaps":
        return files(raw / "census")
    if stage == "05_plan_progress":
        returns = raw / plan.settings.tasks.returns_dir
        return sorted(p for p in (raw / "plan").glob("*.csv")) + files(returns)
    if is_report_stage(stage):
        return files(raw / "benchmarks") + files(raw / "census")
    # a stage this table does not know: every raw file counts
    return [p for p in files(raw) if p != plan.path]


def report_sources(reports: Path) -> list[Path]:
    """The report's own files: the .qmd and its sections, the Typst template, the Quarto project."""
    reports = Path(reports)
    found = [p for p in sorted(reports.glob("*.qmd"))]
    for folder in ("sections", "template"):
        found += sorted(p for p in (reports / folder).rglob("*") if p.is_file())
    quarto = reports.parent / "_quarto.yml"
    return found + ([quarto] if quarto.is_file() else [])


def rel_path(path: Path, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(base).resolve()))
    except ValueError:
        return str(Path(path).resolve())


def environment_digest() -> str:
    """The installed versions of the locked packages (all packages when there is no lock file)."""
    from .provenance import LOCK_FILE, installed_versions, locked_versions

    installed = installed_versions()
    names = locked_versions(LOCK_FILE) if LOCK_FILE.is_file() else installed
    return digest({"python": sys.version.split()[0], "packages": {n: installed.get(n) for n in sorted(names)}})


# --- stamps -----------------------------------------------------------------------------------

def read_stamp(path: Path) -> dict[str, Any] | None:
    try:
        stamp = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    # a stamp of an older runner (no components) counts as no stamp: the task runs once more
    return stamp if isinstance(stamp, dict) and "key" in stamp and "components" in stamp else None


def write_stamp(path: Path, stamp: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(stamp, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def output_path(name: str, processed_root: Path) -> Path:
    path = Path(name)
    return path if path.is_absolute() else Path(processed_root) / path


def missing_outputs(stamp: dict[str, Any], processed_root: Path) -> list[str]:
    return [name for name, (_, size) in stamp.get("outputs", {}).items()
            if not (p := output_path(name, processed_root)).is_file() or p.stat().st_size != size]


def outputs_digest(stamp: dict[str, Any] | None, with_manifests: bool) -> str | None:
    """What downstream tasks see of an upstream task: its outputs' hashes (manifests aside for notebooks,
    since they carry the run's time)."""
    if stamp is None:
        return None
    outputs = {n: v[0] for n, v in stamp.get("outputs", {}).items()
               if with_manifests or not Path(n).name.startswith("manifest-")}
    return digest(outputs)


def diff_names(old: dict[str, str], new: dict[str, str]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def explain(old: dict[str, Any] | None, new: dict[str, Any], what: str) -> list[str]:
    """Why new components differ from a stamp's: one phrase per changed input."""
    if old is None:
        return ["no earlier run"]
    reasons = []
    if old.get("source") != new["source"]:
        reasons.append(f"{what} changed")
    for name in diff_names(old.get("code", {}), new["code"]):
        reasons.append(f"{name} changed")
    for name in diff_names(old.get("plan", {}), new["plan"]):
        reasons.append(f"plan file: {name} changed")
    for name in diff_names(old.get("raw", {}), new["raw"]):
        state = "added" if name not in old.get("raw", {}) else "removed" if name not in new["raw"] else "changed"
        reasons.append(f"input {name} {state}")
    if old.get("parameters") != new["parameters"]:
        reasons.append("parameters changed")
    if old.get("environment") != new["environment"]:
        reasons.append("installed package versions changed")
    changed = diff_names(old.get("upstream", {}), new["upstream"])
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        reasons.append(f"outputs of {', '.join(changed[:3])}{more} changed")
    return reasons
