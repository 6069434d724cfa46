"""The catalog of stages and outputs, and the structure rules it makes checkable."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pandas as pd
import pytest

from analysis import catalog
from analysis.config import load_plan

ROOT = Path(__file__).resolve().parents[1]
ANALYSIS = ROOT / "analysis"


def _imports(path: Path) -> set[str]:
    """Modules of analysis/ that a file imports (relative or absolute)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level or mod.startswith("analysis"):
                base = mod.removeprefix("analysis").lstrip(".")
                out |= {base} if base else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name.removeprefix("analysis.") for a in node.names if a.name.startswith("analysis.")}
    return out


def test_no_stage_imports_another_stage():
    found = {}
    for path in sorted(ANALYSIS.glob("*_stage.py")):
        others = {m for m in _imports(path) if m.endswith("_stage") and m != path.stem}
        if others:
            found[path.name] = sorted(others)
    assert not found, f"stages importing other stages (read upstream outputs through analysis.catalog): {found}"


def test_report_reads_no_stage_module():
    """The report reads results through the catalog (report_data), never through a stage module."""
    found = {}
    for path in [*sorted((ROOT / "reports").rglob("*.qmd")), *sorted(ANALYSIS.glob("report_*.py")),
                 ANALYSIS / "vocabulary.py"]:
        if path.suffix == ".py":
            stages = sorted(m for m in _imports(path) if m.endswith("_stage"))
        else:
            stages = re.findall(r"analysis\.(\w+_stage)", path.read_text(encoding="utf-8"))
        if stages:
            found[path.name] = stages
    assert not found, found


def test_pipeline_runs_the_catalog_graph():
    from analysis import pipeline

    assert pipeline.STAGES is catalog.STAGES
    names = [s.name for s in catalog.STAGES]
    for s in catalog.STAGES:
        assert all(names.index(n) < names.index(s.name) for n in s.needs), s
        assert (ROOT / "notebooks" / f"{s.name}.ipynb").is_file()
    assert {o.stage for o in catalog.OUTPUTS} == {*names, "all"}


def test_every_output_has_one_writer():
    assert catalog.writer("estimates.parquet") == "02_weight_estimate"
    assert catalog.writer("figures/map_estimate.png") == "04_county_gaps"
    assert catalog.writer("figures/fan_chart.png") == "03_trajectory"
    assert catalog.writer("manifest-01_clean.json") == "all"
    with pytest.raises(KeyError, match="not in the catalog"):
        catalog.writer("estimates.csv")
    exact = [o.name for o in catalog.OUTPUTS if "*" not in o.name]
    assert len(exact) == len(set(exact))


def test_contracts_md_is_generated_from_the_catalog():
    text = catalog.CONTRACTS.read_text(encoding="utf-8")
    assert catalog.BEGIN in text and catalog.END in text
    assert text == catalog.contracts_text(text), "docs/contracts.md is stale: run python -m analysis.catalog"
    for o in catalog.OUTPUTS:
        assert f"| {o.name} |" in text


def test_missing_output_names_the_notebook(tmp_path):
    plan = load_plan("zhanjiang")
    with pytest.raises(catalog.MissingOutput, match=r"2025/trajectory.json not found: run notebook 03_trajectory"):
        catalog.read_json(plan, "trajectory.json", 2025, tmp_path)
    with pytest.raises(KeyError):
        catalog.output_path(plan, "nowhere.parquet", 2025, tmp_path)


def test_write_outputs_then_read_back(tmp_path):
    plan = load_plan("zhanjiang")
    table = pd.DataFrame({"resp_key": ["a" * 64], "weight": [1.5], "design_weight": [1.0]})
    written = catalog.write_outputs(plan, "02_weight_estimate", 2021, tmp_path,
                                    {"weights.parquet": table, "weighting_diagnostics.json": {"n": 1}})
    assert sorted(written) == ["weighting_diagnostics.json", "weights.parquet"]
    pd.testing.assert_frame_equal(catalog.read_table(plan, "weights.parquet", 2021, tmp_path), table)
    assert catalog.read_json(plan, "weighting_diagnostics.json", 2021, tmp_path) == {"n": 1}
    # a stage may write only its own outputs
    with pytest.raises(KeyError, match="output of 02_weight_estimate, not 01_clean"):
        catalog.write_outputs(plan, "01_clean", 2021, tmp_path, {"weights.parquet": table})
    # the contract columns are checked on read
    table.drop(columns="weight").to_parquet(written["weights.parquet"])
    with pytest.raises(catalog.OutputError, match=r"missing column\(s\) \['weight'\]"):
        catalog.read_table(plan, "weights.parquet", 2021, tmp_path)
