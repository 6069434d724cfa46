"""Structure rules of analysis/: short functions, stages in three parts."""

from __future__ import annotations

import ast
from pathlib import Path

ANALYSIS = Path(__file__).resolve().parents[1] / "analysis"
MAX_FUNCTION_LINES = 80


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_no_function_is_longer_than_80_lines():
    long = [f"{path.name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in sorted(ANALYSIS.glob("*.py")) for node in _functions(path)
            if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, "functions longer than 80 lines: " + "; ".join(long)


def test_stages_have_three_parts():
    """Every *_stage module's run_* calls load_inputs, compute and save_outputs, in that order."""
    missing = {}
    for path in sorted(ANALYSIS.glob("*_stage.py")):
        funcs = {n.name: n for n in _functions(path)}
        runs = [n for name, n in funcs.items() if name.startswith("run_")]
        assert len(runs) == 1, f"{path.name}: expected one run_* function"
        calls = [c.func.id for c in ast.walk(runs[0]) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)]
        parts = [c for c in calls if c in ("load_inputs", "compute", "save_outputs")]
        if parts != ["load_inputs", "compute", "save_outputs"]:
            missing[path.name] = parts
    assert not missing, f"stages whose run_* is not load_inputs -> compute -> save_outputs: {missing}"


RESULT_MODULES = ("trajectory.py", "decompose.py", "inequality.py", "sae.py", "progress.py", "estimate.py")
PLAN_NAMES = {"name_zh"}  # official names copied from the plan file are data, not sentences


def test_results_hold_codes_not_chinese_sentences():
    """No dict written by a stage or its statistics module has a *_zh key (labels come from the vocabulary)."""
    found = []
    paths = [*sorted(ANALYSIS.glob("*_stage.py")), *(ANALYSIS / m for m in RESULT_MODULES)]
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            keys = node.keys if isinstance(node, ast.Dict) else []
            for k in keys:
                if isinstance(k, ast.Constant) and isinstance(k.value, str) and k.value.endswith("_zh") \
                        and k.value not in PLAN_NAMES:
                    found.append(f"{path.name}:{k.lineno} {k.value}")
    assert not found, found
