"""The malformed-input corpus (tests/malformed_corpus.py): each case ends in its documented
message or a correct clean result, leaves the processed folder as it was when it fails, and
never lets planted personal data into a message, a log, an output file or an executed notebook.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from malformed_corpus import (
    CITY,
    LIST_CASES,
    MARGINS_CASES,
    PII,
    PUBLISHED_CASES,
    RETURNS_CASES,
    SURVEY,
    SURVEY_CASES,
    YEAR,
    add_plan_lists,
    build_base,
    copy_raw,
    csv_bytes,
    read_base,
)
from openpyxl import load_workbook
from test_clean import messy_frames

from analysis.clean import (
    RULE_IDS,
    CleaningConfig,
    CleaningStopped,
    check_drop_share,
    clean,
    dropped_examples,
)
from analysis.clean_stage import run_clean
from analysis.config import load_plan
from analysis.errors import UserError, safe_value
from analysis.harmonise import harmonise
from analysis.ingest import read_survey
from analysis.pipeline import survey_years_up_to
from analysis.progress_returns import MEASURE_SHEET, read_return
from analysis.pseudonymise import pseudonymise
from analysis.scoring import QuestionnaireError, load_questionnaire
from analysis.weighting import WeightingError, calibrate, read_census_margins, weighting_settings

FIX = Path(__file__).parent / "fixtures"


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def leaked(text: str) -> list[str]:
    return [v for v in PII.values() if v in text]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return build_base(tmp_path_factory.mktemp("raw"))


@pytest.fixture(scope="module")
def good(base, tmp_path_factory):
    """Stage 01 on the unchanged delivery: (processed root, result)."""
    out = tmp_path_factory.mktemp("processed")
    return out, run_clean(load_plan(CITY, base), YEAR, out, key=b"k")


# --- survey files -------------------------------------------------------------------------------

@pytest.mark.parametrize("case", SURVEY_CASES, ids=[c.id for c in SURVEY_CASES])
def test_survey_case(case, base, good, tmp_path, caplog):
    raw = copy_raw(base, tmp_path / "raw")
    case.mutate(raw)
    out = tmp_path / "processed"
    shutil.copytree(good[0], out)  # last year's good outputs must survive a failed run
    before = snapshot(out)
    plan = load_plan(CITY, raw)
    caplog.set_level(logging.DEBUG)
    message = case.message(good[1].ledger) if callable(case.message) else case.message
    if message is None:
        res = run_clean(plan, YEAR, out, key=b"k")
        assert res.source.format == case.fmt
        if case.id == "no_faults":
            assert (res.ledger["status"] == "kept").all() and len(res.clean) == res.n_in > 0
            assert dropped_examples(res.ledger).empty
        else:  # the same delivery in another format cleans to the same table
            pd.testing.assert_frame_equal(res.clean, good[1].clean)
            assert res.ledger["status"].tolist() == good[1].ledger["status"].tolist()
        assert YEAR in survey_years_up_to(plan, YEAR)
    else:
        with pytest.raises(UserError) as err:
            run_clean(plan, YEAR, out, key=b"k")
        msg = str(err.value)
        assert re.search(message, msg), msg
        assert "\n" not in msg
        assert snapshot(out) == before
    assert not leaked(caplog.text + (msg if message else ""))
    assert not any(leaked(p.read_bytes().decode("utf-8", "replace")) for p in out.rglob("*") if p.is_file())


def test_planner_names_an_unsupported_survey_file(base, tmp_path):
    raw = copy_raw(base, tmp_path / "raw")
    (raw / SURVEY).rename((raw / SURVEY).with_suffix(".et"))  # a WPS spreadsheet
    with pytest.raises(UserError, match=r"zhanjiang-2025-synthetic\.et: unsupported file type in the "
                                        r"survey folder; value \.et; expected one of \.csv"):
        survey_years_up_to(load_plan(CITY, raw), YEAR)


def test_planner_names_a_survey_file_under_another_name(base, tmp_path):
    from analysis.pipeline import PipelineError

    raw = copy_raw(base, tmp_path / "raw")
    companions = {f"{CITY}-truth-synthetic.csv", f"{CITY}-{YEAR}-synthetic-faults.csv"}
    assert companions <= {p.name for p in (raw / "survey").iterdir()}  # the demo's, not deliveries
    (raw / SURVEY).rename(raw / "survey" / "2025年调查数据.xlsx")
    with pytest.raises(PipelineError, match=r"no raw survey file for any year up to 2025 under \S+survey "
                                            r"\(expected names like zhanjiang-2025-synthetic\.csv; the survey "
                                            r"folder holds 2025年调查数据\.xlsx, which no survey year's name matches\)"):
        survey_years_up_to(load_plan(CITY, raw), YEAR)


def test_excel_2003_xml_is_named(tmp_path):
    path = tmp_path / "s.xls"
    path.write_text('<?xml version="1.0"?>\n<Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet">'
                    "</Workbook>", encoding="utf-8")
    with pytest.raises(UserError, match=r"s\.xls: an Excel 2003 XML spreadsheet, which cannot be read; "
                                        r"expected the file saved again as \.xlsx"):
        read_survey(path)


_cell_text = st.lists(st.sampled_from(["a", "张", ",", '"', "\n", "\r\n", " "]), max_size=8).map("".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(_cell_text, st.booleans()), min_size=1, max_size=12))
def test_file_line_is_where_the_row_starts(tmp_path, rows):
    """Whatever quotes, commas and line breaks the remarks hold (and blank lines between rows),
    the file line given for a data row is the line on which that row starts."""
    import csv
    import io

    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["编号", "区县", "stratum", "psu", "权重", "性别", "年龄", "城乡", "文化程度", "职业", "备注", "q01"])
    for k, (remark, blank) in enumerate(rows):
        if blank:
            buf.write("\n")
        w.writerow([f"R{k}", "赤坎区", "s", "p", "1", "男", "30", "城镇", "初中", "农民", remark, "A"])
    path = tmp_path / "lines.csv"
    path.write_bytes(buf.getvalue().encode("utf-8"))
    df, source = read_survey(path)
    lines = buf.getvalue().split("\n")
    assert df["resp_id"].tolist() == [f"R{k}" for k in range(len(rows))]
    for row, rid in zip(df["row"], df["resp_id"], strict=True):
        assert lines[source.file_row(row) - 1].startswith(rid + ","), (row, rid)


def test_line_numbers_follow_quoted_line_breaks(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text('编号,区县,stratum,psu,权重,性别,年龄,城乡,文化程度,职业,备注,q01\n'
                    '1,赤坎区,s,p,1,男,30,城镇,初中,农民,"多行\n备注",A\n'
                    '\n'
                    '2,赤坎区,s,p,1,男,30,城镇,初中,农民,"x\r\ny\nz",B\n'
                    '3,赤坎区,s,p,1,X星人,30,城镇,初中,农民,,C\n', encoding="utf-8")
    df, source = read_survey(path)
    assert df["row"].tolist() == [0, 2, 3]  # the blank line is data row 1
    assert [source.file_row(r) for r in (0, 1, 2, 3)] == [2, 4, 5, 8]
    with pytest.raises(UserError, match=r"row 8 \(file line; data row 3\), column '性别' \(sex\)"):
        harmonise(df, load_plan(CITY), source)
    path.write_text(path.read_text(encoding="utf-8").replace(",,C\n", ",,C,extra\n"), encoding="utf-8")
    with pytest.raises(UserError, match=r"row 8 \(file line; data row 3\): row has more fields than the "
                                        r"header; value '13 fields'; expected 12 fields"):
        read_survey(path)


# --- stopping at stage 01 -----------------------------------------------------------------------

def test_drop_share_threshold_comes_from_the_plan(base):
    df, source = read_survey(base / SURVEY)
    plan = load_plan(CITY, base)
    p = pseudonymise(harmonise(df, plan, source), b"k")
    cfg = CleaningConfig.from_plan(plan)
    res = clean(p, cfg)
    share = 1 - len(res.kept) / len(res.ledger)
    assert 0 < share < cfg.max_drop_share == 0.5
    check_drop_share(res, cfg)
    strict = CleaningConfig(max_drop_share=share / 2)
    with pytest.raises(CleaningStopped, match=rf"cleaning drops {100 * share:.1f}% of the rows, more than "
                                              rf"survey.cleaning.max_drop_share = \d%"):
        check_drop_share(res, strict, source.path)


def test_dropped_examples_in_rule_order_and_empty():
    ledger = pd.DataFrame({"row": [0, 1, 2, 3, 4, 5], "resp_key": list("abcdef"),
                           "status": ["dropped", "kept", "dropped", "dropped", "dropped", "dropped"],
                           "rule": ["speeder", None, "missing_id", "speeder", "speeder", "missing_id"],
                           "detail": list("uvwxyz")})
    ex = dropped_examples(ledger, per_rule=2)
    assert ex.values.tolist() == [[2, "missing_id", "w"], [5, "missing_id", "z"],
                                  [0, "speeder", "u"], [3, "speeder", "x"]]
    none = dropped_examples(ledger.assign(status="kept"))
    assert none.empty and list(none.columns) == ["row", "rule", "detail"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messy_frames())
def test_a_row_with_several_faults_carries_the_first_rule(df):
    """Rows with several faults at once: every row with a fault a rule can see alone is dropped,
    and by that rule or an earlier one in RULES, never a later one."""
    cfg = CleaningConfig()
    res = clean(df, cfg, [f"q{i:02d}" for i in range(1, 11)])
    order = {r: i for i, r in enumerate(RULE_IDS)}
    age = df["age"].astype("float64")
    alone = pd.DataFrame({
        "missing_id": df["resp_key"].isna(),
        "unknown_division": df["division_code"].isna(),
        "missing_required": df[["sex", "age", "urban_rural", "education", "occupation", "stratum", "psu",
                                "design_weight"]].isna().any(axis=1),
        "age_out_of_range": (age < cfg.age_min) | (age > cfg.age_max),
        "speeder": df["duration_min"] < cfg.min_duration_minutes,
    }).fillna(False).astype(bool)
    first = alone.apply(lambda r: min((order[c] for c in alone.columns if r[c]), default=None), axis=1)
    led = res.ledger
    for i, f in first.items():
        if f is None or pd.isna(f):
            continue
        assert led.at[i, "status"] == "dropped", (i, f)
        assert order[led.at[i, "rule"]] <= f, (i, led.at[i, "rule"], RULE_IDS[int(f)])
    assert (led["rule"].isna() == (led["status"] == "kept")).all()


# --- personal data ------------------------------------------------------------------------------

def _planted(base: Path) -> pd.DataFrame:
    """The base survey with a personal-data column set and an unknown remarks column."""
    df = read_base(base)
    df.insert(1, "身份证号", PII["id_card"])
    df.insert(2, "住址", PII["address"])
    df["备注"] = PII["address"]
    return df


def test_personal_data_in_any_column_is_never_echoed(base):
    """Every column in turn carries each kind of personal data: the run goes on or stops with a
    message that describes the value; neither the message nor the log may contain it."""
    plan = load_plan(CITY, base)
    df0, source = read_survey(base / SURVEY)
    stopped = {}
    items = [c for c in df0.columns if re.fullmatch(r"q\d+", c)]
    for col in [c for c in df0.columns if c != "row" and c not in items[1:-1]]:  # items: one code path
        for kind, value in PII.items():
            df = df0.copy()
            df[col] = df[col].astype(object)
            df.loc[5, col] = value
            try:
                res = clean(pseudonymise(harmonise(df, plan, source), b"k"), CleaningConfig())
            except UserError as err:
                assert not leaked(str(err)), (col, kind, str(err))
                stopped.setdefault(col, set()).add(kind)
                continue
            text = res.ledger.to_csv() + res.kept.to_csv()
            assert not leaked(text), (col, kind)
    assert {"stratum", "psu", "age", "sex", "q01", "design_weight"} <= set(stopped)
    assert "resp_id" not in stopped and "county" not in stopped and "name" not in stopped


def run_stage_01(raw: Path, out: Path, executed: Path) -> None:
    """Stage 01 as `python -m analysis run --only 01_clean` runs it: the notebook in a staging folder,
    its outputs moved under `out` only when it succeeds, the executed copy and log under `executed`."""
    from analysis.pipeline import run_pipeline

    run_pipeline(load_plan(CITY, raw), YEAR, processed_root=out, only={"01_clean"}, executed_root=executed,
                 echo=lambda _: None)


def test_personal_data_never_reaches_any_written_file(base, tmp_path):
    """Stage 01 as the pipeline runs it (the notebook) on a file with personal data in the free-text
    columns (respondent id, name, phone, ID card, address, division, remarks): no file it writes,
    executed notebook included, holds a planted value; then a run that stops on personal data in
    the age column: neither its message nor its executed notebook does."""
    from analysis.pipeline import NotebookFailed

    raw = copy_raw(base, tmp_path / "raw")
    df = _planted(raw)
    df.loc[3, "resp_id"] = PII["phone"]
    df.loc[4, "county"] = PII["address"]
    df.loc[6, "name"] = PII["name"]
    (raw / SURVEY).write_bytes(csv_bytes(df, encoding="gbk"))
    out = tmp_path / "processed"
    run_stage_01(raw, out, tmp_path / "nb")
    ledger = pd.read_parquet(out / CITY / str(YEAR) / "ledger.parquet")
    assert ledger.loc[ledger["row"] == 4, "detail"].item() == (
        "not a division of the plan: Chinese text of 16 characters, not shown")
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "raw" not in p.relative_to(tmp_path).parts]
    assert len(written) >= 6 and (tmp_path / "nb" / CITY / str(YEAR) / "01_clean-2025.ipynb") in written
    for p in written:
        assert not leaked(p.read_bytes().decode("utf-8", "replace")), p

    df.loc[8, "age"] = PII["name"]
    (raw / SURVEY).write_bytes(csv_bytes(df, encoding="gbk"))
    before = snapshot(out)
    with pytest.raises(NotebookFailed) as err:
        run_stage_01(raw, out, tmp_path / "nb2")
    failed = tmp_path / "nb2" / CITY / str(YEAR) / "01_clean-2025-failed.ipynb"
    assert "row 10 (file line; data row 8), column 'age'" in str(err.value) and str(failed) in str(err.value)
    assert not leaked(str(err.value))
    assert failed.is_file()
    for p in (tmp_path / "nb2").rglob("*"):  # the executed copy and the log
        assert not p.is_file() or not leaked(p.read_bytes().decode("utf-8", "replace")), p
    assert snapshot(out) == before


@pytest.mark.parametrize(("value", "shown"), [
    (35, "35"), (-3.0, "-3"), ("250.5", "'250.5'"), ("E", "'E'"), ("-", "'-'"), (None, "an empty cell"),
    (PII["phone"], "a number of 11 digits, not shown"),
    (PII["id_card"], "letters and digits of 18 characters, not shown"),
    (PII["name"], "Chinese text of 4 characters, not shown"),
    (PII["address"], "Chinese text of 16 characters, not shown"),
    ("Wang Fang", "text of 9 characters, not shown"), ("abc", "3 letters, not shown"),
])
def test_safe_value_examples(value, shown):
    assert repr(safe_value(value)) == shown


@given(st.text(alphabet=st.sampled_from("0123456789赤坎区中山路号张伟XxAB-. "), min_size=1))
def test_safe_value_never_shows_chinese_text_or_long_numbers(text):
    """Whatever is echoed holds no Chinese character (a name, an address) and no run of more
    than 6 digits (a phone or ID-card number)."""
    shown = repr(safe_value(text))
    core = text.strip()
    if core and core in shown:
        assert not re.search(r"[\u3400-\u9fff]|\d{7}", core), shown


# --- stratum and PSU codes that are personal data ------------------------------------------------

@functools.cache
def _places() -> frozenset[str]:
    from analysis.harmonise import division_lookup

    return frozenset(division_lookup(load_plan(CITY)))


PLACE_NAMES = sorted({n for d in load_plan(CITY).divisions for n in [d["name_zh"], d.get("name_en"), *d["aliases"]]
                      if n and " " not in n} | {z["name_zh"] for z in load_plan(CITY).settings.management_zones})
_cjk = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)
_suffix = st.sampled_from(["", "-01", "-U", "_R", "/2", "-12"])
LEGIT_CODES = st.one_of(
    st.from_regex(r"[A-Za-z]{1,4}[_\-.]?[0-9]{1,4}", fullmatch=True),            # S01, PSU_12, str-3
    st.from_regex(r"[1-6][0-9]{5}([0-9]{3}([0-9]{3})?)?([_\-][UR])?", fullmatch=True),   # 440803, 440803001001, 440802-U
    st.tuples(st.sampled_from(PLACE_NAMES), st.sampled_from(["", "城镇", "乡村"]), _suffix).map("".join),
    st.tuples(st.text(_cjk, min_size=1, max_size=4), st.sampled_from(["区", "县", "镇", "村", "社区", "街道"]),
              _suffix).map("".join),                                             # 某某镇-01, 赤坎区-01
    st.from_regex(r"[A-Z]?[a-z]{1,12}(-[0-9]{1,3})?", fullmatch=True),            # Xiashan, chikan-2
    st.from_regex(r"[A-Za-z]{1,8}[0-9]{1,6}[A-Za-z]{0,3}", fullmatch=True),       # ZhangWei01 is a code
)


@settings(max_examples=300, deadline=None)
@given(LEGIT_CODES)
def test_legitimate_design_codes_are_never_refused(code):
    from analysis.harmonise import _BAD, design_code

    assert design_code(code, _places()) is not _BAD, code


_surname = st.sampled_from(["Zhang", "Wang", "Li", "Chen", "Huang", "Ouyang", "Sima", "Zhuge", "Lin", "Xie"])
_given = st.sampled_from(["Wei", "Fang", "Na", "Xiaoming", "Jianguo", "Li", "Qing", "Yuhang", "Hui", "Zhiqiang"])
_sep = st.sampled_from([" ", "_", ".", "-", ""])


@settings(max_examples=200, deadline=None)
@given(_surname, _given, _sep, st.booleans(), st.sampled_from([str, str.upper, str.lower]))
def test_pinyin_names_are_refused_in_any_order_and_spelling(surname, given_name, sep, family_last, case):
    from analysis.harmonise import _BAD, design_code

    if sep == "":
        case = str  # written together, only the capitals separate the parts: ZhangWei
    first, last = (given_name, surname) if family_last else (surname, given_name)
    assert design_code(case(first) + sep + case(last), _places()) is _BAD


@pytest.mark.parametrize("value", [
    "Zhang Wei", "ZhangWei", "zhang_wei", "WANG.Fang", "Wei-Zhang", "Ouyang Xiaoming", "张晓伟", "司马青禾", "李先生",
    "王建国-01", "陈海燕", "李江华-2", "13912345678", "139-1234-5678", "１３９１２３４５６７８", "8613912345678", "0759-3312345",
    PII["id_card"], "440802850612345", PII["address"],
])
def test_personal_data_is_refused_as_a_design_code(value):
    from analysis.harmonise import _BAD, design_code

    assert design_code(value, _places()) is _BAD


def test_the_plan_places_and_codes_pass(base):
    """Division names and aliases that look like a name alone (吴川: 吴 is a surname) are places."""
    from analysis.harmonise import _BAD, design_code

    for code in ["S01", "440803", "赤坎区-01", "PSU_12", "吴川", "吴川-03", "麻章城镇", "Lianjiang-U", "金沙湾-01", "李村", "张家山-3",
                 "黄略", "吴阳-2", "林屋", "高塘"]:  # towns and villages written as surname + one character
        assert design_code(code, _places()) is not _BAD, code


def test_clean_schema_refuses_personal_data_in_psu(good):
    """The schema of survey_clean.parquet checks the same: a table built around harmonise still fails."""
    from pandera.errors import SchemaErrors

    from analysis.schema import clean_schema, first_failure

    table = good[1].clean
    items = [c for c in table.columns if re.fullmatch(r"q\d+", c)]
    schema = clean_schema(load_plan(CITY), items)
    schema.validate(table, lazy=True)
    bad = table.copy()
    bad.loc[bad.index[3], "psu"] = "Zhang_Wei"
    with pytest.raises(SchemaErrors) as err:
        schema.validate(bad, lazy=True)
    first = first_failure(err.value)
    assert (first["column"], repr(first["value"])) == ("psu", "text of 9 characters, not shown")
    assert first["check"] == "a design code, not a personal name, phone or ID-card number or address"


# --- questionnaire / answer key -----------------------------------------------------------------

def _questionnaire(base: Path, tmp_path: Path, mutate) -> Path:
    q = pd.read_csv(base / "survey/questionnaire-synthetic.csv", dtype=str, keep_default_na=False)
    q = mutate(q)
    path = tmp_path / "q.csv"
    path.write_bytes(csv_bytes(q))
    return path


def test_questionnaire_line_numbers_with_line_breaks(base, tmp_path):
    def mutate(q):
        q.loc[0, "text_zh"] = "第一行\n第二行"
        q.loc[2, "text_zh"] = "甲\n乙\n丙"
        q.loc[4, "core"] = "maybe"
        return q
    path = _questionnaire(base, tmp_path, mutate)
    with pytest.raises(QuestionnaireError, match=r"q\.csv row 6 \(file line 9, data row 5\), column 'core': "
                                                 r"core must be true/false, got 'maybe'"):
        load_questionnaire(path, load_plan(CITY, base))


def test_questionnaire_in_gbk_is_read_and_bad_bytes_named(base, tmp_path):
    path = _questionnaire(base, tmp_path, lambda q: q)
    path.write_bytes(path.read_bytes().decode("utf-8").encode("gbk"))
    assert len(load_questionnaire(path, load_plan(CITY, base))) == 50
    path.write_bytes(path.read_bytes().replace(b"\n", b"\n\xff", 1))
    with pytest.raises(QuestionnaireError, match=r"questionnaire file \S+q\.csv: row 2 \(file line\): text "
                                                 r"encoding not recognised"):
        load_questionnaire(path, load_plan(CITY, base))


# --- census margins -----------------------------------------------------------------------------

def _census(base: Path, tmp_path: Path, mutate) -> Path:
    src = load_plan(CITY, base).census_margins_path
    df = pd.read_csv(src, dtype=str, keep_default_na=False)
    path = tmp_path / src.name
    path.write_bytes(csv_bytes(mutate(df)))
    return path


def _census_total(path: Path) -> int:
    """Population of the first margin (division_urban) as the census file states it."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    return int(df.loc[df["margin"] == "division_urban", "population"].astype(int).sum())


def _ten_times_message(path: Path, clean: pd.DataFrame) -> str:
    """The census file's total against the kept respondents' design weights (the unchanged file
    agrees with them within the factor 2; ten times over, it does not)."""
    census, total, n = _census_total(path), float(clean["design_weight"].sum()), len(clean)
    assert 0.5 < census / 10 / total < 2
    return (rf"margins-synthetic\.csv: census total {census:,} \(margin division_urban\) is "
            rf"{re.escape(f'{census / total:,.1f}')} times the design-weight total {total:,.0f} of the {n} "
            r"respondents; expected the same population within a factor 2")


def _move_cell(df: pd.DataFrame, *, drop: bool) -> pd.DataFrame:
    """Give the first division_urban cell's population to the second (totals stay equal)."""
    i, j = df.index[df["margin"] == "division_urban"][:2]
    df.loc[j, "population"] = str(int(df.loc[i, "population"]) + int(df.loc[j, "population"]))
    if drop:
        return df.drop(index=i)
    df.loc[i, "population"] = "0"
    return df


CENSUS_CASES = {
    "ten_times_too_large": (
        lambda df: df.assign(population=(df["population"].astype(int) * 10).astype(str)),
        _ten_times_message),
    "cell_with_zero_population": (
        lambda df: _move_cell(df, drop=False),
        r"margins-synthetic\.csv: margin division_urban: census cell \('440802', '城镇'\) has population 0 "
        r"but \d+ respondent\(s\)"),
    "cell_missing": (
        lambda df: _move_cell(df, drop=True),
        r"margins-synthetic\.csv: margin division_urban: row \d+ has \{'division_code': '440802', "
        r"'urban_rural': '城镇'\}, a cell the census margins do not have"),
    "empty_division_cell": (
        lambda df: df.assign(division_code=df["division_code"].where(df.index != 2, "")),
        r"margins-synthetic\.csv: line 4 \(data row 2\), column 'division_code': empty cell; margin "
        r"division_urban needs column 'division_code' filled in every row"),
    "cell_listed_twice": (
        lambda df: pd.concat([df.iloc[:5], df.iloc[[1]], df.iloc[5:]], ignore_index=True),
        r"margins-synthetic\.csv: line 7 \(data row 5\): margin division_urban lists cell "
        r"\('440802', '乡村'\) twice"),
    "empty_population": (
        lambda df: df.assign(population=df["population"].where(df.index != 3, "")),
        r"margins-synthetic\.csv: line 5 \(data row 3\), column 'population': value <NA> is not a "
        r"non-negative number"),
}


@pytest.mark.parametrize("case", list(CENSUS_CASES))
def test_census_case(case, base, good, tmp_path):
    mutate, message = CENSUS_CASES[case]
    path = _census(base, tmp_path, mutate)
    message = message(path, good[1].clean) if callable(message) else message
    settings = weighting_settings(load_plan(CITY, base))
    with pytest.raises(WeightingError, match=message):
        calibrate(good[1].clean, read_census_margins(path, settings["margins"]), settings)


def test_relative_design_weights_rake_unbounded_and_are_named_when_bounded(base, good):
    plan = load_plan(CITY, base)
    settings = weighting_settings(plan)
    margins = read_census_margins(plan.census_margins_path, settings["margins"])
    df = good[1].clean.assign(design_weight=lambda d: d["design_weight"] / d["design_weight"].mean())
    res, diag = calibrate(df, margins, {**settings, "bounds": None})
    assert diag["converged"] and np.isclose(res.weights.sum(), margins[0].totals.sum())
    census, n = _census_total(plan.census_margins_path), len(df)
    ratio = re.escape(f"{census / df['design_weight'].sum():,.1f}")
    with pytest.raises(WeightingError, match=rf"census total {census:,} \(margin division_urban\) is {ratio} "
                                             rf"times the design-weight total {n:,} of the {n} respondents; .*"
                                             r"design weights that average about 1 are relative weights"):
        calibrate(df, margins, settings)


# --- progress returns ---------------------------------------------------------------------------

def test_merged_cell_in_a_return_is_reported(tmp_path):
    mini = load_plan("mini", raw_dir=FIX / "progress" / "raw")
    path = shutil.copy(FIX / "progress" / "mini-yi-malformed.xlsx", tmp_path / "r.xlsx")
    clean_problems = read_return(path, mini).problems
    wb = load_workbook(path)
    wb[MEASURE_SHEET].merge_cells("H5:H7")
    wb.save(path)
    problems = read_return(path, mini).problems
    merged = problems[problems["code"] == "merged_cell"]
    assert merged[["file", "sheet", "cell", "severity"]].values.tolist() == [
        ["r.xlsx", MEASURE_SHEET, "H5:H7", "error"]]
    assert merged["problem"].item().startswith("合并单元格 H5:H7：只有左上角单元格有内容")
    assert len(clean_problems[clean_problems["code"] == "merged_cell"]) == 0


def test_notebook_01_on_a_file_without_faults(base, tmp_path):
    """The stage notebook on a delivery where cleaning drops nothing (it used to fail on an empty
    table of dropped-row examples after replacing the outputs)."""
    from malformed_corpus import no_faults

    raw = copy_raw(base, tmp_path / "raw")
    no_faults(raw)
    out = tmp_path / "processed"
    run_stage_01(raw, out, tmp_path / "nb")
    ledger = pd.read_parquet(out / CITY / str(YEAR) / "ledger.parquet")
    assert len(ledger) == len(read_base(raw)) and (ledger["status"] == "kept").all()


# --- task and unit lists, returns folder, published figures, census margins (stages 04, 05, demo) ---

@pytest.mark.parametrize("cls", ["analysis.progress_stage.ProgressStageError",
                                 "analysis.county_gaps_stage.CountyGapsError",
                                 "analysis.synth_census.CensusInputError", "analysis.plan_tasks.TasksError",
                                 "analysis.benchmarks.BenchmarkError", "analysis.geo.BoundaryError"])
def test_input_errors_are_user_errors(cls):
    """Shown by the CLI as one message with exit status 1 (traceback only with --debug)."""
    import importlib

    module, name = cls.rsplit(".", 1)
    assert issubclass(getattr(importlib.import_module(module), name), UserError)


def _failed_run_changes_nothing(run, message: str, good_root: Path, out: Path) -> str:
    shutil.copytree(good_root, out)  # last year's outputs must survive a failed run
    before = snapshot(out)
    with pytest.raises(UserError) as err:
        run(out)
    msg = str(err.value)
    assert re.search(message, msg), msg
    assert snapshot(out) == before
    assert not leaked(msg)
    return msg


@pytest.mark.parametrize("case", LIST_CASES, ids=[c.id for c in LIST_CASES])
def test_plan_list_case(case, base, good, tmp_path):
    """Stage 05 on a task or unit list saved the ways Excel and WPS save it: read as the committed
    list, or stopped with the documented message and the processed folder as it was."""
    from analysis.plan_tasks import load_tasks, load_units
    from analysis.progress_stage import run_progress

    raw = add_plan_lists(copy_raw(base, tmp_path / "raw"))
    plan = load_plan(CITY, raw)
    units = load_units(plan)
    tasks = load_tasks(plan, units)
    case.mutate(raw)
    if case.message is None:
        assert load_units(plan) == units
        pd.testing.assert_frame_equal(load_tasks(plan), tasks)
    else:
        _failed_run_changes_nothing(lambda out: run_progress(plan, YEAR, out), case.message, good[0],
                                    tmp_path / "processed")


@pytest.mark.parametrize("case", list(RETURNS_CASES))
def test_returns_folder_case(case, base, good, tmp_path):
    from analysis.progress_stage import run_progress

    mutate, message = RETURNS_CASES[case]
    raw = add_plan_lists(copy_raw(base, tmp_path / "raw"))
    mutate(raw)
    plan = load_plan(CITY, raw)
    _failed_run_changes_nothing(lambda out: run_progress(plan, YEAR, out), message, good[0], tmp_path / "processed")


def test_returns_with_upper_case_suffix_are_found(base, tmp_path):
    from analysis.progress_stage import find_returns, unreadable_returns

    raw = copy_raw(base, tmp_path / "raw")
    (raw / "progress").mkdir()
    for name in ("a-2025.XLSX", "b-2025.xlsx", "b-template.xlsx", "~$a-2025.XLSX", "notes.txt"):
        (raw / "progress" / name).write_bytes(b"x")
    plan = load_plan(CITY, raw)
    assert [p.name for p in find_returns(plan)] == ["a-2025.XLSX", "b-2025.xlsx"]
    assert unreadable_returns(plan) == []


@pytest.mark.parametrize("case", PUBLISHED_CASES, ids=[c.id for c in PUBLISHED_CASES])
def test_published_figures_case(case, base, tmp_path, capsys):
    """The published population figures behind the demo's census margins: read as the committed
    file, or `python -m analysis demo` stops with one message (exit 1, no traceback) and writes nothing."""
    from analysis.cli import main
    from analysis.synth_census import census_margins

    raw = copy_raw(base, tmp_path / "raw")
    plan = load_plan(CITY, raw)
    margins = census_margins(plan)
    case.mutate(raw)
    if case.message is None:
        pd.testing.assert_frame_equal(census_margins(plan), margins)
        return
    before = snapshot(raw)
    assert main(["demo", "--city", CITY, "--raw-dir", str(raw), "--n", "60"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(case.message, err.removeprefix("error: ").strip()), err
    assert not leaked(err)
    assert snapshot(raw) == before


@pytest.mark.parametrize("case", MARGINS_CASES, ids=[c.id for c in MARGINS_CASES])
def test_county_gaps_margins_case(case, base, good, tmp_path):
    from analysis.county_gaps_stage import run_county_gaps

    raw = copy_raw(base, tmp_path / "raw")
    case.mutate(raw)
    plan = load_plan(CITY, raw)
    _failed_run_changes_nothing(lambda out: run_county_gaps(plan, YEAR, out), case.message, good[0],
                                tmp_path / "processed")
