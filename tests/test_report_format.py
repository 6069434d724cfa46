"""Markdown building blocks of the report: numbers, tables, figures, cross-references, the workbook."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import openpyxl  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from analysis import report_format as rf  # noqa: E402
from analysis.config import ROOT  # noqa: E402


def test_pct_num_interval():
    assert rf.pct(13.456) == "13.5%" and rf.pct(13.456, 2) == "13.46%"
    assert rf.pct(None) == "—" and rf.pct(math.nan) == "—"
    assert rf.num(12345.678) == "12,345.7" and rf.num(None) == "—"
    assert rf.interval(11.24, 15.76) == "11.2%–15.8%"
    assert rf.interval(11.24, 15.76, unit="") == "11.2–15.8"
    assert rf.interval(None, 3.0) == "—" and rf.interval(1.0, math.nan) == "—"


@pytest.mark.parametrize("p, text", [(0.0, "<1%"), (0.004, "<1%"), (0.0099, "<1%"), (0.01, "1%"),
                                     (0.0493, "5%"), (0.5, "50%"), (0.99, "99%"), (0.99996, ">99%"),
                                     (1.0, ">99%"), (None, "—")])
def test_prob_never_prints_a_rounded_certainty(p, text):
    assert rf.prob(p) == text


def test_prob_rejects_values_outside_0_1():
    with pytest.raises(ValueError, match="out of"):
        rf.prob(1.5)


def test_format_probabilities_and_blank_suppressed():
    t = pd.DataFrame({"名称": ["甲", "乙", "丙"], "直接估计（%）": [38.0, 9.1, float("nan")],
                      "概率": [0.000005, 0.4, 0.99999]})
    out = rf.format_probabilities(t, ["概率"])
    assert out["概率"].tolist() == ["<1%", "40%", ">99%"]
    assert t["概率"].iloc[0] == 0.000005  # the input is not changed
    with pytest.raises(KeyError, match="no column"):
        rf.format_probabilities(t, ["p"])
    blank = rf.blank_suppressed(out, pd.array([False, True, pd.NA], dtype="boolean"), ["直接估计（%）"])
    assert blank["直接估计（%）"].tolist()[:2] == [38.0, "—"]
    assert blank["备注"].tolist()[0] == "" and blank["备注"].tolist()[1].startswith("直接估计不发布")
    assert blank["备注"].tolist()[2] == ""
    with pytest.raises(ValueError, match="2 flags for 3 rows"):
        rf.blank_suppressed(out, [True, False], ["直接估计（%）"])


def test_md_table_caption_label_escaping():
    rf.PUBLISHED.clear()
    t = pd.DataFrame({"项目": ["a|b", "多\n行"], "值": [1.5, None]})
    md = rf.md_table(t, "标题", "tbl-x")
    lines = md.splitlines()
    assert lines[0] == "| 项目 | 值 |"
    # pandoc shares the page width by the dashes: widest cell + 2 (issue 11: numbers get what they need, no more)
    assert lines[1] == "|:-------|-----:|"
    assert lines[2] == "| a\\|b | 1.5 |"
    assert lines[3] == "| 多 行 | — |"
    assert md.rstrip().endswith(": 标题 {#tbl-x}")
    assert rf.PUBLISHED[-1][0] == "tbl-x" and rf.PUBLISHED[-1][2].equals(t)
    mixed = rf.md_table(pd.DataFrame({"年": [2025], "规则": ["百分制"], "比例": ["<1%"], "区间": ["5.8–8.2"]}), "t",
                        "tbl-align").splitlines()[1]
    # text columns left; numbers, also printed as text or as a range, right
    assert mixed == "|:------|:--------|------:|---------:|"
    na = pd.DataFrame({"年": pd.array([2025, None], dtype="Int64")})
    assert "<NA>" not in rf.md_table(na, "t", "tbl-na")
    with pytest.raises(ValueError, match="must start with 'tbl-'"):
        rf.md_table(t, "标题", "fig-x")
    with pytest.raises(ValueError, match="no rows"):
        rf.md_table(t.iloc[0:0], "标题", "tbl-empty")
    rf.PUBLISHED.clear()


def test_md_table_groups_repeats_keeps_intervals_numeric_and_drops_negative_zero():
    rf.PUBLISHED.clear()
    t = pd.DataFrame({"对象": ["县", "县", "城乡"], "指标": ["极差", "变异系数", "极差"],
                      "2020年": ["13.26（10.38～22.00）", "-0.00（-0.19～0.17）", "1"], "p": [0.06, -0.0001, 1.0]})
    lines = rf.md_table(t, "t", "tbl-g").splitlines()
    assert lines[1] == "|:------|:----------|-----------------------:|------:|"  # the interval column: right, full width
    assert lines[2:5] == ["| 县 | 极差 | 13.26（10.38～22.00） | 0.06 |",
                          "|  | 变异系数 | 0.00（-0.19～0.17） | 0.00 |",  # shown once; no negative zero
                          "| 城乡 | 极差 | 1 | 1.00 |"]
    assert rf.PUBLISHED[-1][2]["对象"].tolist() == ["县", "县", "城乡"]  # the workbook keeps every value
    assert rf.no_negative_zero("−0.0%–-0.05") == "0.0%–-0.05"
    grouped = rf.group_rows(pd.DataFrame({"a": [1, 1, 2, 2], "b": ["x", "x", "x", "y"]}), ["a", "b"])
    assert grouped["a"].tolist() == [1, "", 2, ""] and grouped["b"].tolist() == ["x", "", "x", "y"]
    # text columns share what the number columns leave of the page width, in proportion to their need
    wide = pd.DataFrame({"任务": ["很" * 40], "说明": ["长" * 40], "区间": ["13.26（10.38～22.00）"]})
    widths = rf.column_widths(wide)
    assert widths[2] == 23 and widths[0] == widths[1] and sum(widths) <= rf.TABLE_WIDTH
    rf.PUBLISHED.clear()


def test_md_table_fixed_decimals_per_column_and_no_thousands_separator():
    rf.PUBLISHED.clear()
    t = pd.DataFrame({"顺序": [1.0, 10.0], "样本": [3000.0, 12000.0], "估计": [12.7, 14.06],
                      "误差": [0.123456, 1.5], "代码": ["440802", "440803"], "年": [2024, 2025],
                      "直接": pd.Series([38.0, "—"], dtype=object), "阈值": pd.Series([15.0, "18–69"], dtype=object)})
    rows = rf.md_table(t, "t", "tbl-n").splitlines()[2:4]
    assert rows[0] == "| 1 | 3000 | 12.70 | 0.12 | 440802 | 2024 | 38 | 15 |"
    assert rows[1] == "| 10 | 12000 | 14.06 | 1.50 | 440803 | 2025 | — | 18–69 |"
    assert rf.PUBLISHED[-1][2]["估计"].tolist() == [12.7, 14.06]  # the workbook keeps the numbers
    given = rf.md_table(t, "t", "tbl-m", decimals={"估计": 1, "样本": 1}).splitlines()[2]
    assert given.startswith("| 1 | 3000.0 | 12.7 | 0.12 |")
    with pytest.raises(KeyError, match="not in the table"):
        rf.md_table(t, "t", "tbl-k", decimals={"无此列": 1})
    rf.PUBLISHED.clear()


def test_md_figure(tmp_path):
    fig, ax = plt.subplots(figsize=(1, 1))
    path = tmp_path / "f.png"
    fig.savefig(path)
    plt.close(fig)
    # printed at its own size (1 inch of the 15.6 cm text width), not stretched to the 50% asked for at most
    assert rf.md_figure(path, "图题", "fig-a", "50%") == f"![图题]({path.resolve()}){{#fig-a width=16.2%}}\n"
    assert rf.md_figure(path, "图题", "fig-a", "10%").endswith("width=10%}\n")
    fig, ax = plt.subplots(figsize=(2, 20))  # taller than the page: scaled down to the text height less the caption
    fig.savefig(path, dpi=50)
    plt.close(fig)
    assert rf.md_figure(path, "图题", "fig-a").endswith("width=13.7%}\n")
    with pytest.raises(ValueError, match="must start with 'fig-'"):
        rf.md_figure(path, "图题", "tbl-a")
    with pytest.raises(FileNotFoundError, match="fig-b.*does not exist"):
        rf.md_figure(tmp_path / "missing.png", "图题", "fig-b")
    inside = ROOT / "reports" / "evaluation.qmd"  # any file in the project is written root-relative
    assert rf.md_figure(inside, "x", "fig-c").startswith("![x](/reports/evaluation.qmd)")


MD = """# 摘要 {#sec-summary}

见 @fig-a、@tbl-b、@sec-two 与 @sec-app-x；邮件 a@fig-a 与 `@tbl-b` 不变。

![A](a.png){#fig-a}

: 表 {#tbl-b}

# 第二 {#sec-two}

## 小节 {#sec-two-sub}

: 表二 {#tbl-c}

# 附录A 方法 {#sec-app .unnumbered}

## 附录小节 {#sec-app-x .unnumbered}

# 第三 {#sec-three}

见 @tbl-c、@sec-two-sub、@sec-three 和 @sec-app。
"""


def test_number_crossrefs_numbers_and_skips_unnumbered():
    out = rf.number_crossrefs(MD)
    assert "见 [图 1](#fig-a)、[表 1](#tbl-b)、[第2节](#sec-two) 与 [附录小节](#sec-app-x)" in out
    assert "邮件 a@fig-a 与 `@tbl-b` 不变" in out
    # the appendix takes no number, so the section after it is the third
    assert "见 [表 2](#tbl-c)、[第2.1节](#sec-two-sub)、[第3节](#sec-three) 和 [附录A 方法](#sec-app)。" in out
    en = rf.number_crossrefs(MD, "en")
    assert "[Figure 1](#fig-a)" in en and "[Section 2.1](#sec-two-sub)" in en and "[Section 3](#sec-three)" in en


def test_number_crossrefs_refuses_a_reference_without_target():
    with pytest.raises(ValueError, match="@fig-missing has no target"):
        rf.number_crossrefs(MD + "\n另见 @fig-missing。\n")


def test_write_workbook_reads_back(tmp_path):
    tables = [("tbl-a", "各年度样本", pd.DataFrame({"年份": [2024, 2025], "比例（%）": [13.8, 14.72]})),
              ("tbl-b", "名称含:非法*字符/很长很长很长很长很长很长很长很长很长", pd.DataFrame({"x": ["甲"]}))]
    path = rf.write_workbook(tmp_path / "out" / "t.xlsx", "报告标题", "合成数据说明", tables)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames[0] == "说明"
    assert wb.sheetnames[1] == "表1 各年度样本"
    assert len(wb.sheetnames) == 3 and len(wb.sheetnames[2]) <= 31
    assert not set(":*/?[]\\") & set(wb.sheetnames[2])
    head = wb["说明"]
    assert head["A2"].value == "报告标题" and head["A3"].value == "合成数据说明"
    notes = [head.cell(r, 1).value for r in range(4, 4 + len(rf.NOTES["zh"]))]
    assert any("设有“备注”列的表格" in n for n in notes) and any("文本" in n for n in notes)
    contents = {(head.cell(r, 1).value, head.cell(r, 2).value, head.cell(r, 3).value) for r in range(1, 12)}
    # the contents list the sheet's full name and the caption; no internal label (tbl-a) since issue 11
    assert ("表1 各年度样本", "各年度样本", None) in contents
    sheet = wb["表1 各年度样本"]
    assert [c.value for c in sheet[1]] == ["年份", "比例（%）"]
    assert sheet["B3"].value == pytest.approx(14.72) and sheet["A3"].value == 2025
    assert not (tmp_path / "out" / "t.tmp.xlsx").exists()
    with pytest.raises(ValueError, match="no tables"):
        rf.write_workbook(tmp_path / "e.xlsx", "t", None, [])
    en = openpyxl.load_workbook(rf.write_workbook(tmp_path / "en.xlsx", "Title", None,
                                                  [("tbl-a", "Samples", tables[0][2])], lang="en"))
    assert en.sheetnames == ["Notes", "Table 1 Samples"]
    assert any("Note column" in (c.value or "") for c in en["Notes"]["A"])


def test_report_data_reads_processed_and_names_missing_files(tmp_path):
    """ReportData (the report's only reader): years up to the report year, latest SAE year, clear errors."""
    import json

    from analysis.config import load_plan
    from analysis.report_data import ReportData, ReportDataError

    plan = load_plan("zhanjiang")
    base = tmp_path / plan.city
    for y, est in [(2023, 12.9), (2025, 14.7), (2026, 15.0)]:
        (base / str(y)).mkdir(parents=True)
        pd.DataFrame({"year": [y], "domain": ["city"], "level": ["all"], "indicator": ["literate"],
                      "n": [900], "estimate": [est], "se": [0.7], "suppressed": [False]}
                     ).to_parquet(base / str(y) / "estimates.parquet")
    pd.DataFrame({"year": [2024, 2025, 2025], "name_zh": ["甲", "甲", "乙"]}).to_parquet(base / "2025" / "sae.parquet")
    (base / "2025" / "manifest-02_weight_estimate.json").write_text(json.dumps(
        {"stage": "02_weight_estimate", "inputs": {"survey/x-synthetic.csv": "ab"}, "parameters": {"min_n": 30},
         "packages": {}}), encoding="utf-8")
    d = ReportData(plan, 2025, processed_root=tmp_path)
    assert d.survey_years == [2023, 2025]
    assert d.estimate(2025).estimate == 14.7
    assert d.sae["year"].unique().tolist() == [2025] and len(d.sae) == 2
    assert d.manifest_parameter("02_weight_estimate", "min_n") == 30 and d.synthetic
    with pytest.raises(ReportDataError, match="no parameter 'max_cv'"):
        d.manifest_parameter("02_weight_estimate", "max_cv")
    with pytest.raises(ReportDataError, match="trajectory.json is missing: run notebook 03_trajectory"):
        d.trajectory  # noqa: B018
    with pytest.raises(ReportDataError, match="expected one row for 2024/city/all/literate, found 0"):
        d.estimate(2024)


def test_every_table_and_figure_of_the_report_is_referenced_in_its_text():
    import re

    sections = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "reports" / "sections").glob("_*.qmd")))
    labels = set(re.findall(r"[\"']((?:tbl|fig)-[\w-]+)[\"']", sections))
    assert {"tbl-cleaning", "fig-groups-bar", "tbl-inequality", "tbl-overdue", "tbl-provenance"} <= labels
    unreferenced = sorted(x for x in labels if f"@{x}" not in sections)
    assert unreferenced == []
