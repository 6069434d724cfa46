"""Progress returns and their evaluation: template, reader, demo round trip, arithmetic."""

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook
from openpyxl.utils import range_boundaries

from analysis.config import load_plan
from analysis.plan_tasks import load_tasks, load_units, measures_for_unit
from analysis.progress import (
    MISSING_AS_NONE,
    annual_by_year,
    completion_by_group,
    completion_by_unit,
    indicator_progress,
    indicator_summary,
    indicator_table_zh,
    measure_progress,
    merge_statuses,
)
from analysis.progress_returns import (
    FIRST_ROW,
    INDICATOR_SHEET,
    MEASURE_SHEET,
    STATUSES,
    indicator_specs,
    read_return,
    read_returns,
    write_return,
)
from analysis.progress_stage import run_progress
from analysis.synth_progress import build_demo_returns, demo_truth

FIX = Path(__file__).parent / "fixtures" / "progress"


@pytest.fixture(scope="module")
def mini():
    return load_plan("mini", raw_dir=FIX / "raw")


@pytest.fixture(scope="module")
def mini_tasks(mini):
    return load_tasks(mini)


@pytest.fixture(scope="module")
def zj():
    return load_plan("zhanjiang")


@pytest.fixture(scope="module")
def demo(zj, tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    return raw, build_demo_returns(zj, raw_dir=raw)


def _in_sqref(sqref, cell_col: int, cell_row: int) -> bool:
    for rng in str(sqref).split():
        c1, r1, c2, r2 = range_boundaries(rng)
        if c1 <= cell_col <= c2 and r1 <= cell_row <= r2:
            return True
    return False


# --------------------------------------------------------------------------- template

def test_template_dropdown_protection_and_rows(zj, tmp_path):
    tasks = load_tasks(zj)
    path = write_return(zj, "市科协", tmp_path / "t.xlsx", tasks=tasks)
    wb = load_workbook(path)
    ws = wb[MEASURE_SHEET]
    headers = [c.value for c in ws[3]]
    status_col = headers.index("完成状态") + 1
    n_rows = len(measures_for_unit(tasks, "市科协")) * 5
    assert n_rows == 41 * 5
    assert ws.max_row == FIRST_ROW + n_rows - 1
    lists = [dv for dv in ws.data_validations.dataValidation if dv.type == "list"]
    assert len(lists) == 1
    dv = lists[0]
    assert dv.formula1 == '"已完成,推进中,未启动"'
    assert dv.formula1.strip('"').split(",") == list(STATUSES)
    assert dv.showErrorMessage and dv.allow_blank
    assert not dv.showDropDown  # openpyxl inverts it: True would hide the arrow
    for r in range(FIRST_ROW, FIRST_ROW + n_rows):
        assert _in_sqref(dv.sqref, status_col, r)
    assert not _in_sqref(dv.sqref, status_col, 3)  # not the header
    assert not _in_sqref(dv.sqref, status_col - 1, FIRST_ROW)  # only the status column
    years = [d for d in ws.data_validations.dataValidation if d.type == "whole"][0]
    assert (years.formula1, years.formula2) == ("2021", "2025")
    # protected header and descriptive cells; inputs unlocked
    assert ws.protection.sheet
    assert ws.cell(3, status_col).protection.locked
    assert ws.cell(FIRST_ROW, 1).protection.locked
    assert not ws.cell(FIRST_ROW, status_col).protection.locked
    assert not ws.cell(FIRST_ROW, headers.index("佐证材料") + 1).protection.locked
    assert ws["B2"].value == "市科协"
    # the unit's indicators: museums per division (9 divisions x 5 years)
    wi = wb[INDICATOR_SHEET]
    ids = [wi.cell(r, 1).value for r in range(FIRST_ROW, wi.max_row + 1)]
    assert ids == ["divisions_with_museum_share"] * 45
    decimal = [d for d in wi.data_validations.dataValidation if d.type == "decimal"][0]
    assert decimal.operator == "greaterThanOrEqual" and decimal.formula1 == "0"
    # a unit owning no indicator gets no indicator sheet
    wb2 = load_workbook(write_return(zj, "市总工会", tmp_path / "u.xlsx", tasks=tasks))
    assert wb2.sheetnames == [MEASURE_SHEET]


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice not installed")
def test_template_opens_in_libreoffice(zj, tmp_path):
    """LibreOffice reads the template and keeps its drop-down when it saves the file again."""
    path = write_return(zj, "市科协", tmp_path / "t.xlsx")
    profile = f"-env:UserInstallation=file://{tmp_path / 'lo-profile'}"
    subprocess.run(["soffice", profile, "--headless", "--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76",
                    "--outdir", str(tmp_path), str(path)], check=True, timeout=180, capture_output=True)
    assert "措施编号" in (tmp_path / "t.csv").read_text(encoding="utf-8")
    resaved = tmp_path / "lo"
    subprocess.run(["soffice", profile, "--headless", "--convert-to", "xlsx", "--outdir", str(resaved), str(path)],
                   check=True, timeout=180, capture_output=True)
    lists = [dv for dv in load_workbook(resaved / "t.xlsx")[MEASURE_SHEET].data_validations.dataValidation
             if dv.type == "list"]
    assert [dv.formula1 for dv in lists] == ['"已完成,推进中,未启动"']


# --------------------------------------------------------------------------- reading

def test_malformed_return_cell_messages(mini):
    r = read_return(FIX / "mini-yi-malformed.xlsx", mini)
    got = {(p.sheet, p.cell, p.code, p.severity) for p in r.problems.itertuples()}
    assert got == {
        ("任务进展", "H5", "bad_status", "error"),
        ("任务进展", "I6", "number_for_text", "error"),
        ("任务进展", "G8", "text_for_number", "error"),
        ("任务进展", "H9", "number_for_text", "error"),
        ("任务进展", "A16", "unknown_measure", "error"),
        ("指标数据", "G5", "text_for_number", "error"),
        ("指标数据", "G6", "numeric_text", "warning"),
        ("指标数据", "G7", "negative", "error"),
        ("指标数据", "J8", "number_for_text", "error"),
    }
    assert set(r.problems["file"]) == {"mini-yi-malformed.xlsx"}
    msg = r.problems.set_index("cell")["problem"]
    assert msg["H5"] == "完成状态“完成”不在下拉列表（已完成/推进中/未启动）中"
    assert msg["G5"].startswith("此处应为数字（场馆数量），实为文字“约3”")
    # the valid rest is kept: 12 rows less the one whose year was text
    m = r.measures.set_index(["measure_id", "year"])
    assert len(m) == 11 and ("P1-1-1", 2022) not in m.index
    assert pd.isna(m.loc[("A1-1-2", 2022), "status"])  # bad status dropped, row kept
    assert m.loc[("A1-1-2", 2022), "evidence"] == "2022年总结"
    assert pd.isna(m.loc[("A1-1-2", 2023), "evidence"])  # number dropped
    assert m.loc[("A1-1-2", 2023), "status"] == "已完成"
    assert pd.isna(m.loc[("P1-1-1", 2023), "status"])
    ind = r.indicators.set_index(["division_code", "year"])["value"]
    assert ind.to_dict() == {("999901", 2021): 1.0, ("999901", 2022): 2.0,
                             ("999901", 2023): 1.0, ("999902", 2023): 1.0}


def test_unreadable_file_is_one_problem_and_others_survive(mini, tmp_path):
    bad = tmp_path / "broken.xlsx"
    bad.write_bytes(b"not a zip")
    good = shutil.copy(FIX / "mini-yi-malformed.xlsx", tmp_path / "b.xlsx")
    r = read_returns([bad, good], mini)
    assert r.problems.query("file == 'broken.xlsx'")["code"].tolist() == ["unreadable"]
    assert len(r.measures) == 11


def test_duplicate_report_across_files(mini, tmp_path):
    a = shutil.copy(FIX / "mini-yi-malformed.xlsx", tmp_path / "a.xlsx")
    b = shutil.copy(FIX / "mini-yi-malformed.xlsx", tmp_path / "b.xlsx")
    r = read_returns([a, b], mini)
    assert len(r.measures) == 11
    dups = r.problems.query("file == 'b.xlsx' and code == 'duplicate'")
    assert len(dups[dups["sheet"] == MEASURE_SHEET]) == 11
    assert len(r.indicators) == 4


# --------------------------------------------------------------------------- demo

def test_demo_returns_round_trip(zj, demo):
    raw, paths = demo
    tasks = load_tasks(zj)
    units = load_units(zj)
    statuses, values = demo_truth(zj, tasks)
    assert len(paths) == 11
    assert all(p.parent == raw / "progress" and p.name.endswith("-synthetic.xlsx") for p in paths)
    r = read_return(raw / "progress" / "zhanjiang-jiaoyuju-synthetic.xlsx", zj, tasks, units)
    assert r.problems.empty
    mine = measures_for_unit(tasks, "市教育局")["measure_id"]
    expected = {(m, y): s for (m, y), s in statuses.items() if m in set(mine)}
    got = {(row.measure_id, row.year): (row.status, None if pd.isna(row.evidence) else
                                        row.evidence, None)
           for row in r.measures.itertuples() if isinstance(row.status, str)}
    assert got == expected
    assert len(r.measures) == len(expected)  # rows left blank are not reports
    ind = {(row.indicator_id, row.division_code, row.year): (row.value, row.evidence)
           for row in r.indicators.itertuples()}
    assert ind == {k: (float(v[0]), v[1]) for k, v in values.items() if k[0] == "tutors_trained"}


def test_demo_returns_say_synthetic_and_are_deterministic(zj, demo, tmp_path):
    _, paths = demo
    for p in paths:
        wb = load_workbook(p)
        for ws in wb:
            assert "合成示例数据" in ws["A1"].value and "合成示例数据" in ws["D2"].value
    again = build_demo_returns(zj, raw_dir=tmp_path)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (paths[0], again[0])]
    assert digest[0] == digest[1]


def test_demo_mistakes_show_up(zj, demo):
    _, paths = demo
    r = read_returns(paths, zj)
    got = {(p.file, p.sheet, p.cell, p.code) for p in r.problems.itertuples()}
    old = "zhanjiang-laoganbuju-synthetic.xlsx"  # fewest measures: 1
    assert {(old, MEASURE_SHEET, "H5", "bad_status"), (old, MEASURE_SHEET, "I6", "number_for_text"),
            (old, MEASURE_SHEET, "G7", "text_for_number")} <= got
    kexie = [p for p in got if p[0] == "zhanjiang-kexie-synthetic.xlsx"]
    assert {p[3] for p in kexie} == {"unknown_measure", "text_for_number"}
    assert len(r.problems) == 5


# --------------------------------------------------------------------------- arithmetic

def _reports(rows):
    return pd.DataFrame(rows, columns=["unit", "measure_id", "year", "status"])


HAND = _reports([
    ("单位甲", "A1-1-1", 2021, "未启动"), ("单位甲", "A1-1-1", 2022, "推进中"),
    ("单位甲", "A1-1-1", 2023, "已完成"),
    ("单位甲", "A1-1-2", 2021, "已完成"), ("单位甲", "A1-1-2", 2022, "已完成"),
    ("单位甲", "A1-1-2", 2023, "已完成"),
    ("单位乙", "A1-1-2", 2021, "已完成"), ("单位乙", "A1-1-2", 2022, "推进中"),
    ("单位乙", "P1-1-1", 2021, "推进中"), ("单位乙", "P1-1-1", 2022, "已完成"),
    ("单位乙", "P1-1-2", 2023, "推进中"),
])


def test_completion_arithmetic_by_hand(mini, mini_tasks):
    st = merge_statuses(HAND, 2023)
    # co-leads disagree on A1-1-2 in 2022: the least advanced status counts
    assert st.set_index(["measure_id", "year"]).loc[("A1-1-2", 2022), "status"] == "推进中"
    prog = measure_progress(mini_tasks, st, 2023, mini.period).set_index("measure_id")
    assert prog["completed"].to_dict() == {
        "A1-1-1": True, "A1-1-2": False, "P1-1-1": True, "P1-1-2": False, "P1-2-1": False}
    assert prog.loc["A1-1-2", "completion"] == pytest.approx(2 / 3)
    assert prog.loc["A1-1-2", "category"] == "部分年度未完成"
    assert prog.loc["P1-1-1", "status"] == "已完成" and prog.loc["P1-1-1", "status_year"] == 2022
    assert prog.loc["P1-2-1", "status"] == "未报送"
    assert prog["overdue"].sum() == 3  # A1-1-2, P1-1-2, P1-2-1

    g = completion_by_group(prog.reset_index()).set_index("kind")
    assert g.loc["提升行动", "completed_share"] == pytest.approx(50.0)
    assert g.loc["提升行动", "mean_completion"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert g.loc["重点工程", "completed_share"] == pytest.approx(100 / 3)
    assert g.loc["重点工程", ["n_completed", "n_in_progress", "n_not_reported"]].tolist() == [1, 1, 1]
    assert (g[["n_completed", "n_in_progress", "n_not_started", "n_partial", "n_not_reported"]]
            .sum(axis=1) == g["n_measures"]).all()

    u = completion_by_unit(mini_tasks, HAND, 2023, mini.period, ["单位甲", "单位乙"],
                           returned={"单位甲", "单位乙"}).set_index("unit")
    assert u.loc["单位甲", "completed_share"] == pytest.approx(100.0)  # its own A1-1-2 is complete
    assert u.loc["单位乙", "n_measures"] == 4
    assert u.loc["单位乙", "completed_share"] == pytest.approx(25.0)
    assert u.loc["单位乙", "mean_completion"] == pytest.approx(100 * (1 / 3 + 1) / 4)

    y = annual_by_year(mini_tasks, st, 2023, mini.period).set_index("year")
    assert y["n_done"].to_dict() == {2021: 1, 2022: 0, 2023: 1}


def test_not_due_before_the_deadline(mini, mini_tasks):
    prog = measure_progress(mini_tasks, merge_statuses(HAND, 2022), 2022,
                            mini.period).set_index("measure_id")
    assert prog.loc["A1-1-1", "status"] == "推进中"
    assert not prog.loc["A1-1-1", "due"] and not prog.loc["A1-1-1", "overdue"]
    assert prog.loc["A1-1-2", "years_due"] == 2 and prog.loc["A1-1-2", "years_done"] == 1
    assert prog["overdue"].sum() == 1  # only the annual measure


def test_indicator_arithmetic(mini, mini_tasks):
    specs = indicator_specs(mini, mini_tasks)
    values = pd.DataFrame([
        ("tutors", "", 2021, 12.0), ("tutors", "", 2022, 9.0),
        ("halls_share", "999901", 2022, 1.0),
        ("halls_share", "999901", 2023, 1.0), ("halls_share", "999902", 2023, 0.0),
        ("bases", "", 2021, 2.0), ("bases", "", 2022, 4.0), ("bases", "", 2023, 5.0),
    ], columns=["indicator_id", "division_code", "year", "value"])
    survey = pd.DataFrame({"year": [2023], "value": [12.0]})
    ind = indicator_progress(specs, values, 2023, mini.period, mini.divisions, survey)
    city = ind[ind["scope"] == "city"].set_index(["indicator_id", "year"])
    assert city.loc[("halls_share", 2023), "value"] == pytest.approx(50.0)
    assert bool(city.loc[("halls_share", 2023), "met"])
    assert city.loc[("halls_share", 2022), "note"] == MISSING_AS_NONE  # a code; the words are the table's
    assert city.loc[("halls_share", 2022), "n_missing"] == 1
    table = indicator_table_zh(ind).set_index(["指标", "年度"])
    assert table.loc[(city.loc[("halls_share", 2022), "name_zh"], 2022), "说明"] == "1个县（市、区）未报送，按未建成计"
    assert pd.isna(city.loc[("halls_share", 2021), "value"])
    assert city.loc[("tutors", 2022), "met"] == False  # noqa: E712
    div = ind[(ind["scope"] == "division") & (ind["year"] == 2023)]
    assert div.set_index("level")["value"].to_dict() == {"999901": 1.0, "999902": 0.0}
    summary = {s["id"]: s for s in indicator_summary(specs, ind, 2023)}
    assert summary["tutors"]["status"] == "missed" and summary["tutors"]["years_missed"] == 1
    assert summary["halls_share"]["status"] == "met"
    assert summary["bases"]["status"] == "met" and summary["bases"]["value"] == 5.0
    assert summary["literacy_rate"]["status"] == "missed"  # 12.0 is not above 12.0
    early = {s["id"]: s for s in indicator_summary(specs, ind[ind["year"] <= 2022], 2022)}
    assert early["bases"]["status"] == "not_due" and early["bases"]["value"] == 4.0


def test_run_progress_on_the_mini_plan(mini, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(FIX / "raw", raw)
    (raw / "progress").mkdir()
    shutil.copy(FIX / "mini-yi-malformed.xlsx", raw / "progress")
    plan = load_plan("mini", raw_dir=raw)
    est = tmp_path / "proc" / "mini" / "2023"
    est.mkdir(parents=True)
    pd.DataFrame({"year": [2023, 2023], "indicator": ["literate", "literate"],
                  "domain": ["city", "sex"], "level": ["all", "男"], "estimate": [12.5, 11.0]}
                 ).to_parquet(est / "estimates.parquet")
    h = run_progress(plan, 2023, processed_root=tmp_path / "proc").headline
    out = tmp_path / "proc" / "mini" / "2023"
    assert json.loads((out / "progress.json").read_text(encoding="utf-8")) == h
    assert h["measures_total"] == 5 and h["synthetic"] is True
    assert h["returns"]["units_missing"] == ["单位甲"]
    assert h["problems"] == {"errors": 8, "warnings": 1,
                             "files_with_errors": ["mini-yi-malformed.xlsx"]}
    # only 单位乙 reported: A1-1-1 (单位甲 alone) is not reported
    m = pd.read_parquet(out / "progress_measures.parquet").set_index("measure_id")
    assert m.loc["A1-1-1", "status"] == "未报送" and m.loc["P1-1-2", "completed"]
    problems = pd.read_parquet(out / "progress_problems.parquet")
    assert list(problems.columns[:4]) == ["file", "sheet", "cell", "problem"]
    assert len(problems) == 9
    for name in ("by_group", "by_unit", "annual_by_year", "indicators_division"):
        assert (out / "figures" / f"progress_{name}.png").stat().st_size > 10_000
    manifest = json.loads((out / "manifest-05_plan_progress.json").read_text(encoding="utf-8"))
    assert any(k.endswith("mini-yi-malformed.xlsx") for k in manifest["inputs"])
    assert (out / "templates" / "mini-jia-template.xlsx").exists()
    lit = {i["id"]: i for i in h["indicators"]}["literacy_rate"]
    assert (lit["status"], lit["value"], lit["value_year"]) == ("met", 12.5, 2023)
    # literacy and halls (both divisions have one in 2023) met; tutors and bases: 单位甲 missing
    assert h["indicators_met"] == 2 and h["indicators_no_data"] == 2


def test_run_progress_without_returns_fails_and_makes_no_data(tmp_path):
    from analysis.progress_stage import ProgressStageError

    raw = tmp_path / "raw"
    shutil.copytree(FIX / "raw", raw)
    plan = load_plan("mini", raw_dir=raw)
    with pytest.raises(ProgressStageError, match=r"no filled progress returns .* in .*raw/progress "
                                                 r"\(the folder does not exist\).*python -m analysis demo"):
        run_progress(plan, 2023, processed_root=tmp_path / "proc")
    # a folder holding only templates and an Excel lock file counts as empty
    (raw / "progress").mkdir()
    (raw / "progress" / "mini-jia-template.xlsx").write_bytes(b"")
    (raw / "progress" / "~$mini-yi.xlsx").write_bytes(b"")
    with pytest.raises(ProgressStageError, match=r"no filled progress returns .*raw/progress: put"):
        run_progress(plan, 2023, processed_root=tmp_path / "proc")
    # nothing synthetic was written anywhere, no stage output either
    assert sorted(p.name for p in (raw / "progress").iterdir()) == ["mini-jia-template.xlsx", "~$mini-yi.xlsx"]
    assert not (tmp_path / "proc").exists()
