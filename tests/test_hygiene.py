"""Project hygiene: notebooks without outputs and with a parameters cell, no city in the library, lint."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from analysis.config import NOTEBOOKS, ROOT
from analysis.pipeline import STAGES

PARAMETERS = {"city", "year", "raw_dir", "processed_root"}


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def test_every_stage_has_a_notebook():
    assert {p.stem for p in notebooks()} >= {s.name for s in STAGES}


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.name)
def test_notebook_has_no_outputs_and_a_parameters_cell(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, f"{path.name} has no code"
    for cell in code:
        assert not cell.get("outputs") and cell.get("execution_count") is None, f"{path.name} has outputs"
    first = code[0]
    assert "parameters" in first.get("metadata", {}).get("tags", []), f"{path.name}: first code cell not tagged"
    names = set(re.findall(r"^(\w+)\s*=", "".join(first["source"]), flags=re.M))
    assert names == PARAMETERS, f"{path.name}: parameters {sorted(names)}"


def test_library_never_names_a_city():
    pattern = re.compile(r"湛江|zhanjiang", re.I)
    hits = [str(p.relative_to(ROOT)) for p in (ROOT / "analysis").rglob("*")
            if p.is_file() and p.suffix in {".py", ".yml", ".yaml", ".json"} and pattern.search(p.read_text(encoding="utf-8"))]
    assert hits == []


def test_generated_files_are_not_tracked():
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "data/processed", "reports", "data/raw"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    generated = [t for t in tracked if t.startswith("data/processed/") and not t.endswith("README.md")]
    generated += [t for t in tracked if (t.endswith((".pdf", ".html")) and not t.startswith("reports/template/"))
                  or "/executed/" in t or "/output/" in t]  # template/: Quarto's title-block.html partial
    generated += [t for t in tracked if "synthetic" in t and t.endswith((".csv", ".xlsx"))
                  and t.startswith(("data/raw/survey", "data/raw/census", "data/raw/progress"))]
    assert generated == []


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(Path(__import__("sys").executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff not installed")
    res = subprocess.run([ruff, "check", "analysis", "tests", "benchmarks"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
