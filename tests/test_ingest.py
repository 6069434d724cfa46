"""Ingest of messy files: encodings, title rows, merged headers, SPSS/Stata value labels, bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis.config import load_plan
from analysis.harmonise import harmonise
from analysis.ingest import IngestError, detect_encoding, find_raw_file, read_survey
from analysis.pseudonymise import pseudonymise

FIX = Path(__file__).parent / "fixtures" / "ingest"
PLAN = load_plan("zhanjiang")
ITEMS = [f"q{i:02d}" for i in range(1, 11)]

# What every fixture file must harmonise to (the same six respondents, see make_fixtures.py).
EXPECTED = pd.DataFrame({
    "resp_id": ["R001", "R002", "R003", "R004", "R005", "R006"],
    "division_code": ["440802", "440811", "440825", "440882", "440823", "440883"],
    "stratum": ["440802-U", "440811-R", "440825-U", "440882-R", "440823-U", "440883-R"],
    "design_weight": [120.5, 98.25, 150.0, 210.75, 88.0, 175.5],
    "sex": ["男", "女", "男", "女", "男", "女"],
    "age": [25, 34, 47, 52, 61, 68],
    "age_group": ["18-29", "30-39", "40-49", "50-59", "60-69", "60-69"],
    "urban_rural": ["城镇", "乡村", "城镇", "乡村", "城镇", "乡村"],
    "education": ["本科及以上", "初中", "高中", "小学及以下", "大专", "初中"],
    "occupation": ["专业技术人员", "农民", "产业工人", "农民", "离退休人员", "无业或失业"],
    "duration_min": [25.5, 18.0, 30.2, 12.0, 40.0, 22.0],
    "interview_date": ["2025-05-10", "2025-05-11", "2025-05-12", "2025-05-12", "2025-05-13", "2025-05-14"],
    "q01": list("ABCDAB"), "q02": ["B", "B", None, "A", "C", "D"], "q03": ["C", "C", "C", None, "D", "A"],
    "q06": ["B", None, "D", "C", "C", "B"], "q08": ["D", "C", "B", "A", None, "A"], "q10": list("BADCBC"),
})

FILES = {
    # file: (format, encoding reported, 1-based header rows, first data row)
    "gbk_title.csv": ("csv", "gbk", [2], 3),
    "gb18030_title.csv": ("csv", "gb18030", [2], 3),
    "utf8_bom.csv": ("csv", "utf-8-sig", [1], 2),
    "merged_header.xlsx": ("xlsx", None, [2, 3], 4),
    "labelled.sav": ("sav", "UTF-8", [0], 1),
    "labelled.dta": ("dta", None, [0], 1),
}


def as_values(df: pd.DataFrame) -> pd.DataFrame:
    out = df[EXPECTED.columns].copy()
    out["interview_date"] = out["interview_date"].dt.strftime("%Y-%m-%d")
    out["age"] = out["age"].astype("int64")
    return out.astype(object).where(out.notna(), None)


@pytest.mark.parametrize("name", list(FILES))
def test_fixture_harmonises_to_expected(name):
    df, source = read_survey(FIX / name)
    fmt, enc, header_rows, first = FILES[name]
    assert (source.format, source.header_rows, source.first_data_row) == (fmt, header_rows, first)
    if fmt == "csv":
        assert source.encoding == enc
    assert df["row"].tolist() == list(range(6))
    assert set(ITEMS) <= set(df.columns)
    h = harmonise(df, PLAN, source)
    expected = EXPECTED.astype(object).where(EXPECTED.notna(), None)
    pd.testing.assert_frame_equal(as_values(h), expected, check_dtype=False)


def test_gbk_title_row_and_unknown_column_dropped():
    df, source = read_survey(FIX / "gbk_title.csv")
    assert source.headers["sex"] == "性别" and source.headers["q01"] == "第1题"
    assert source.dropped_columns == ["备注"]
    assert "备注" not in df.columns


def test_gb18030_only_character_decodes():
    df, _ = read_survey(FIX / "gb18030_title.csv")
    assert df["name"].iloc[5] == "孙𫖯"
    with pytest.raises(UnicodeDecodeError):
        (FIX / "gb18030_title.csv").read_bytes().decode("gbk")


def test_excel_merged_headers_use_parent():
    _, source = read_survey(FIX / "merged_header.xlsx")
    assert source.sheet == "调查数据"
    assert source.headers["q01"] == "1" and source.headers["q10"] == "10"
    assert source.headers["resp_id"] == "问卷编号"


def test_sav_value_labels_kept_and_variable_labels_map():
    df, source = read_survey(FIX / "labelled.sav")
    assert source.headers["sex"] == "s1"  # found through its variable label 性别
    assert source.value_labels["s1"] == {1.0: "男", 2.0: "女"}
    assert source.value_labels["s4"][5.0] == "本科及以上"
    assert df["sex"].tolist() == ["男", "女", "男", "女", "男", "女"]
    assert df["q01"].tolist() == list("ABCDAB")


def test_pii_never_passes_ingest():
    df, source = read_survey(FIX / "gbk_title.csv")
    out = pseudonymise(harmonise(df, PLAN, source), b"k")
    assert not {"name", "phone", "id_card", "address", "resp_id"} & set(out.columns)
    text = out.astype(str).to_csv()
    assert "张三" not in text and "13800000001" not in text and "R001" not in text


# --- encodings ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, codec, expected", [
    ("编号,性别\n1,男\n", "utf-8", "utf-8"),
    ("编号,性别\n1,男\n", "utf-8-sig", "utf-8-sig"),
    ("编号,性别\n1,男\n", "gbk", "gbk"),
    ("编号,姓名\n1,陈𫖯\n", "gb18030", "gb18030"),
    ("id,sex\n1,1\n", "ascii", "utf-8"),
])
def test_detect_encoding(text, codec, expected):
    assert detect_encoding(text.encode(codec)) == expected


def test_undecodable_bytes_named():
    data = "编号,性别\n1,男\n".encode() + b"2,\xff\xfe\xfd\n"
    with pytest.raises(IngestError, match=r"row 3 \(file line\).*encoding not recognised.*GBK"):
        detect_encoding(data, "x.csv")


# --- bad files: one clear error -------------------------------------------------------------

def _csv(tmp_path: Path, text: str, name: str = "bad.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


GOOD_HEADER = "编号,区县,层,村居,权数,性别,年龄,城乡,文化程度,职业,第1题\n"


def test_bad_age_names_file_line_column_value(tmp_path):
    path = _csv(tmp_path, "调查数据\n" + GOOD_HEADER +
                "1,赤坎区,s,p,1,男,30,城镇,初中,农民,A\n"
                "2,赤坎区,s,p,1,男,abc,城镇,初中,农民,B\n", encoding="gbk")
    df, source = read_survey(path)
    with pytest.raises(IngestError) as e:
        harmonise(df, PLAN, source)
    msg = str(e.value)
    for part in ("bad.csv", "row 4 (file line; data row 1)", "'年龄' (age)", "3 letters, not shown", "expected an age"):
        assert part in msg, msg


def test_missing_required_column(tmp_path):
    path = _csv(tmp_path, "编号,区县,性别,年龄,第1题\n1,赤坎区,男,30,A\n")
    with pytest.raises(IngestError, match=r"bad.csv, row 1 \(header\).*stratum.*required columns missing"):
        read_survey(path)


def test_no_header_found(tmp_path):
    path = _csv(tmp_path, "a,b,c\n1,2,3\n")
    with pytest.raises(IngestError, match="no header row found"):
        read_survey(path)


def test_two_columns_same_field(tmp_path):
    path = _csv(tmp_path, GOOD_HEADER.strip() + ",sex\n1,赤坎区,s,p,1,男,30,城镇,初中,农民,A,男\n")
    with pytest.raises(IngestError, match=r"column sex: two columns map to the same field.*'性别', 'sex'"):
        read_survey(path)


def test_unreadable_item_answer(tmp_path):
    path = _csv(tmp_path, GOOD_HEADER + "1,赤坎区,s,p,1,男,30,城镇,初中,农民,E\n")
    df, source = read_survey(path)
    with pytest.raises(IngestError, match=r"row 2 .*'第1题' \(q01\).*'E'.*A, B, C or D"):
        harmonise(df, PLAN, source)


def test_not_an_excel_file(tmp_path):
    path = _csv(tmp_path, "not a workbook", name="x.xlsx")
    with pytest.raises(IngestError, match="cannot open as an Excel workbook"):
        read_survey(path)


def test_find_same_stem_other_extension(tmp_path):
    shutil.copy(FIX / "labelled.sav", tmp_path / "city-2025-synthetic.sav")
    assert find_raw_file(tmp_path / "city-2025-synthetic.csv").suffix == ".sav"
    with pytest.raises(IngestError, match="no survey file found"):
        find_raw_file(tmp_path / "other.csv")


def test_blank_lines_keep_row_numbers(tmp_path):
    path = _csv(tmp_path, GOOD_HEADER + "1,赤坎区,s,p,1,男,30,城镇,初中,农民,A\n,,,,,,,,,,\n"
                "3,霞山区,s,p,1,女,40,乡村,高中,其他,B\n")
    df, source = read_survey(path)
    assert df["row"].tolist() == [0, 2]
    assert source.file_row(2) == 4


def test_ids_and_codes_stay_text(tmp_path):
    path = _csv(tmp_path, GOOD_HEADER + "0012,440882101001,s,p,1,男,30,城镇,初中,农民,A\n")
    df, source = read_survey(path)
    h = harmonise(df, PLAN, source)
    assert h["resp_id"].iloc[0] == "0012" and h["division_code"].iloc[0] == "440882"


@pytest.mark.parametrize("lines, line_no", [
    (["1,赤坎区,s,p,1,男,30,城镇,初中,农民,A", "2,赤坎区,s,p,1,男,30,城镇,初中,农民,A,extra"], 3),
    (["1,赤坎区,s,p,1,男,30,城镇,初中,农民,A,extra", "2,赤坎区,s,p,1,男,30,城镇,初中,农民,A"], 2),
])
def test_row_with_extra_fields_stops(tmp_path, lines, line_no):
    path = _csv(tmp_path, GOOD_HEADER + "\n".join(lines) + "\n")
    with pytest.raises(IngestError, match=rf"row {line_no} .*more fields than the header.*12 fields.*11 fields"):
        read_survey(path)


def test_fast_and_careful_parsers_agree(tmp_path):
    body = "".join(f"{i},霞山区,s,p,1,女,{20 + i},乡村,高中,其他,{'ABCD'[i % 4]}\n" for i in range(50))
    fast = read_survey(_csv(tmp_path, GOOD_HEADER + body, "fast.csv"))[0]
    careful = read_survey(_csv(tmp_path, GOOD_HEADER + body + ",,,,,,,,,,\n", "careful.csv"))[0]
    pd.testing.assert_frame_equal(fast, careful)


@pytest.mark.parametrize("codec, sep", [("utf-16", "\t"), ("gbk", ";"), ("utf-8", "\t")])
def test_unicode_text_export_and_other_delimiters(tmp_path, codec, sep):
    rows = [GOOD_HEADER.strip().split(","), "1,赤坎区,s,p,1,男,30,城镇,初中,农民,A".split(",")]
    path = tmp_path / "export.txt"
    path.write_bytes("\r\n".join(sep.join(r) for r in rows).encode(codec))
    df, source = read_survey(path)
    assert (source.encoding, source.delimiter) == (codec, sep)
    assert df[["resp_id", "county", "q01"]].iloc[0].tolist() == ["1", "赤坎区", "A"]
