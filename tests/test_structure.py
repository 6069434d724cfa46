"""Structure rules of analysis/: short functions."""

from __future__ import annotations

import ast
from pathlib import Path

ANALYSIS = Path(__file__).resolve().parents[1] / "analysis"
MAX_FUNCTION_LINES = 80
# Functions of modules another helper is rewriting; remove an entry when the function is split.
NOT_YET_SPLIT = {
    ("synth_survey.py", "generate_survey"),   # the demo-data generator (issue 12)
    ("trajectory_stage.py", "run_trajectory"),
    ("county_gaps_stage.py", "run_county_gaps"),
    ("county_gaps_stage.py", "fit_year"),
}


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_no_function_is_longer_than_80_lines():
    long = [f"{path.name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in sorted(ANALYSIS.glob("*.py")) for node in _functions(path)
            if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
            and (path.name, node.name) not in NOT_YET_SPLIT]
    assert not long, "functions longer than 80 lines: " + "; ".join(long)
