"""Typed plan settings: one parse, one place for defaults, messages that name the file and key."""

from __future__ import annotations

import ast
import copy
import re
import shutil
from pathlib import Path

import pytest
import yaml

from analysis import disclosure, settings
from analysis.config import RAW, Plan, PlanError, load_plan
from analysis.errors import InputError, UserError

ANALYSIS = Path(__file__).resolve().parents[1] / "analysis"
REPORTS = Path(__file__).resolve().parents[1] / "reports"
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture
def raw(tmp_path):
    (tmp_path / "plan").mkdir()
    shutil.copy(RAW / "plan" / "zhanjiang.yml", tmp_path / "plan" / "zhanjiang.yml")
    return tmp_path


def _edit(raw: Path, old: str, new: str) -> None:
    yml = raw / "plan" / "zhanjiang.yml"
    text = yml.read_text(encoding="utf-8")
    assert old in text
    yml.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_demo_plan_is_typed():
    s = load_plan("zhanjiang").settings
    assert s.literacy.target == 16.0 and isinstance(s.literacy.target, float)
    assert s.literacy.target_rule == "above"
    assert s.survey.weighting.bounds == (0.2, 5.0)
    assert s.survey.weighting.margins == ["division_urban", "sex_age", "education"]
    assert s.survey.cleaning.max_straightline_run == 15
    assert s.scoring.rule_by_year[2016] == "three_dimension"
    assert s.report.p_likely_below == 0.9
    assert s.trajectory.backtest_fit_until == 2020


def test_defaults_fill_absent_sections():
    plan = load_plan("zhanjiang")
    data = copy.deepcopy(plan.data)
    for key in ("map", "tasks", "trajectory", "report"):
        data.pop(key, None)
    del data["survey"]["disclosure"]
    s = Plan(data=data, path=plan.path).settings
    assert s.map.classes == 5 and s.map.scheme == "FisherJenks"
    assert s.tasks.returns_dir == "progress"
    assert s.trajectory.rule_handling == "auto"
    # the two former disagreements: one default each, shared with the modules that use them
    assert s.survey.disclosure.max_cv == disclosure.DEFAULT_MAX_CV == 0.30
    assert s.report.p_likely_below == settings.DEFAULT_P_LIKELY_BELOW == 0.9
    assert disclosure.disclosure_limits(Plan(data=data, path=plan.path)) == (30, 0.30)


def test_text_where_a_number_is_expected_names_file_and_key(raw):
    _edit(raw, "target: 16.0\n", 'target: "超过16%"\n')
    with pytest.raises(PlanError) as err:
        load_plan("zhanjiang", raw)
    msg = str(err.value)
    assert msg == f"{raw / 'plan' / 'zhanjiang.yml'}: key 'literacy.target': expected a number (percent), found text"
    assert isinstance(err.value, UserError)


@pytest.mark.parametrize("old, new, key, expected", [
    ("p_likely_below: 0.9 ", "p_likely_below: 90 ", "report.p_likely_below", "a number (probability) in [0.5, 1)"),
    ("method: rake ", "method: ipf ", "survey.weighting.method", "one of rake, poststratify"),
    ("max_straightline_run: 15", "max_straightline_run: 2.5", "survey.cleaning.max_straightline_run",
     "a whole number"),
    ("bounds: [0.2, 5.0]", "bounds: [0.2]", "survey.weighting.bounds", "a list of 2"),
    ("calibration: true ", "calibration: yes please ", "survey.variance.calibration", "true or false"),
])
def test_bad_values_name_the_key(raw, old, new, key, expected):
    _edit(raw, old, new)
    with pytest.raises(PlanError, match=re.escape(f"key '{key}': expected {expected}, found")):
        load_plan("zhanjiang", raw)


def test_yaml_syntax_error_gives_line_and_column(raw):
    yml = raw / "plan" / "zhanjiang.yml"
    lines = yml.read_text(encoding="utf-8").splitlines(keepends=True)
    n = next(i for i, line in enumerate(lines) if line.startswith("  target: 16.0"))
    lines[n] = "  target: [16.0\n"
    yml.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(PlanError) as err:
        load_plan("zhanjiang", raw)
    assert isinstance(err.value, InputError)
    assert err.value.line is not None and err.value.line > n
    assert re.match(rf"{re.escape(str(yml))}, line \d+: YAML syntax error at column \d+: ", str(err.value))
    assert "Traceback" not in str(err.value)


def test_missing_required_key_is_named(raw):
    _edit(raw, "  target_year: 2025\n", "")
    with pytest.raises(PlanError, match=r"key 'literacy.target_year' is missing"):
        load_plan("zhanjiang", raw)


def test_plan_has_no_dotted_get():
    assert not hasattr(Plan, "get")


def _dotted_get_calls(tree: ast.AST) -> list[int]:
    """Lines of `<x>.get("a.b", ...)` calls and of any `plan.get(...)` call."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            target = node.func.value
            if isinstance(target, ast.Name) and target.id == "plan":
                out.append(node.lineno)
            elif node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str) \
                    and re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", node.args[0].value):
                out.append(node.lineno)
    return out


def test_only_settings_reads_plan_keys():
    found = {}
    for path in sorted(ANALYSIS.glob("*.py")):
        if path.name == "settings.py":
            continue
        lines = _dotted_get_calls(ast.parse(path.read_text(encoding="utf-8")))
        if lines:
            found[path.name] = lines
    texts = [*REPORTS.rglob("*.qmd"), *NOTEBOOKS.glob("*.ipynb")]
    for path in texts:
        if re.search(r"\bplan\.get\(", path.read_text(encoding="utf-8")):
            found[path.name] = "plan.get"
    assert not found, f"plan keys read outside analysis/settings.py: {found}"


def test_every_dataclass_field_of_the_demo_plan_round_trips():
    plan = load_plan("zhanjiang")
    data = yaml.safe_load(plan.path.read_text(encoding="utf-8"))
    s = settings.parse_settings(data, plan.path)
    assert s == plan.settings
    assert [d["code"] for d in s.divisions] == [str(d["code"]) for d in data["divisions"]]


def test_english_names_are_typed_settings():
    s = load_plan("zhanjiang").settings
    assert s.city.province_en == "Guangdong" and s.city.name_en == "Zhanjiang"
    assert s.names_en.units["市科协"] == "Municipal Association for Science and Technology"
    assert isinstance(s.names_en.actions, dict) and s.names_en.actions
    assert s.city.given()["province_en"] == "Guangdong"
    assert "name_en" not in settings.CitySettings(id="x", code="1", name_zh="某市").given()


@pytest.mark.parametrize("old, new, message", [
    ("names_en:\n  units:\n", "names_en:\n  unit:\n",
     "key 'names_en.unit' is not known; expected units or actions"),
    ("names_en:\n  units:\n", "names_en:\n  units: [市科协]\n  old_units:\n",
     "key 'names_en.units': expected a mapping (key: value), found a list of 1"),
    ("  province_en: Guangdong\n", "  province_en: [Guangdong, Canton]\n",
     "key 'city.province_en': expected text, found a list of 2"),
    ("name_zh: 霞山区, name_en: Xiashan,", "name_zh: 霞山区, name_en: [Xiashan],",
     "key 'divisions[1].name_en': expected text, found a list of 1"),
])
def test_bad_english_names_name_the_file_and_key(raw, old, new, message):
    _edit(raw, old, new)
    with pytest.raises(PlanError) as err:
        load_plan("zhanjiang", raw)
    assert str(err.value) == f"{raw / 'plan' / 'zhanjiang.yml'}: {message}"


def test_english_names_are_not_read_from_the_raw_plan_mapping():
    """render, report_figures and vocabulary read the city and names_en through plan.settings."""
    for name in ("render.py", "report_figures.py", "vocabulary.py"):
        assert "plan.data" not in (ANALYSIS / name).read_text(encoding="utf-8"), name
