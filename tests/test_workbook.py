"""The Excel workbook of the report's tables: numbers as numbers with formats, a usable header, no codes."""

from __future__ import annotations

import math

import openpyxl
import pandas as pd
import pytest

from analysis import report_format as rf


@pytest.fixture
def book(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    table = pd.DataFrame({"县（市、区）": ["赤坎区", "霞山区", "吴川市"],
                          "样本量": [192.0, 242.0, 354.0],
                          "直接估计（%）": [40.333, float("nan"), 8.71],
                          "与目标差距（百分点）": [21.56, -0.0004, -6.78],
                          "低于目标的概率": ["<1%", "2%", ">99%"]})
    tables = [("tbl-divisions", "各县（市、区）估计", table)]
    path = rf.write_workbook(tmp_path / "t.xlsx", "标题", "合成数据", tables, lang="zh")
    return path, tables, openpyxl.load_workbook(path)


def test_numbers_are_numbers_with_formats(book):
    _, _, wb = book
    sheet = wb[wb.sheetnames[1]]
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert [r[1] for r in rows] == [192, 242, 354] and all(isinstance(r[1], int) for r in rows)
    assert sheet["B2"].number_format == "0"  # counts as integers
    assert sheet["C2"].number_format == "0.0" and math.isclose(sheet["C2"].value, 40.333)  # percent: one decimal
    assert sheet["D2"].number_format == "0.00"  # the decimals the report prints
    assert sheet["D3"].value == pytest.approx(0) and not str(sheet["D3"].value).startswith("-0.0004")
    assert sheet["C3"].value == "—"  # missing, as the notes sheet says
    assert any("“—”表示无数据" in str(c.value) for c in wb[wb.sheetnames[0]]["A"])
    assert [r[4] for r in rows] == ["<1%", "2%", ">99%"]  # probabilities stay text, as the notes say


def test_header_is_bold_frozen_and_filtered_and_columns_fit(book):
    _, _, wb = book
    sheet = wb[wb.sheetnames[1]]
    assert all(c.font.b for c in sheet[1])
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:E4"
    # CJK counts double: a header of 10 Chinese characters needs about 20 character widths
    assert sheet.column_dimensions["D"].width >= 20
    assert 6 <= sheet.column_dimensions["B"].width < 15


def test_no_internal_labels_and_deterministic(book, tmp_path):
    path, tables, wb = book
    texts = [str(c.value) for ws in wb for row in ws.iter_rows() for c in row if c.value is not None]
    assert not any(t.startswith("tbl-") for t in texts)
    again = rf.write_workbook(tmp_path / "u.xlsx", "标题", "合成数据", tables, lang="zh")
    assert again.read_bytes() == path.read_bytes()  # pin_timestamps: the same tables give the same bytes


@pytest.mark.slow
def test_report_workbook_sheets_have_formats(offline_report):
    wb = openpyxl.load_workbook(offline_report.files["xlsx"])
    for name in wb.sheetnames[1:]:
        sheet = wb[name]
        assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref, name
        numbers = [c for row in sheet.iter_rows(min_row=2) for c in row if isinstance(c.value, (int, float))]
        assert all(c.number_format != "General" for c in numbers), name
