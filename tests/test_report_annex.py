"""The annex of all measures: every measure listed, overdue ones marked, English without the Chinese wording."""

from __future__ import annotations

import re

import pandas as pd

from analysis import report_annex as annex
from analysis.config import load_plan


def measures():
    d = pd.DataFrame({
        "measure_id": ["A1-1-1", "A1-1-2", "P1-1-1"], "measure_text": ["坚持立德树人。", "开展科技节。", "建设平台。"],
        "task_name": ["甲", "乙", "丙"], "lead_units": ["市教育局;市科协", "市科协", "市科协"],
        "responsible_units": ["市科技局", "", "市委宣传部;市教育局"], "deadline": ["2025年底", "每年实施", "2025年底"],
        "category": ["已完成", "部分年度未完成", "推进中"], "overdue": [False, True, True],
        "evidence": ["2023年进展报告", "", "平台方案"]})
    d["year_completed"] = pd.array([2023, pd.NA, pd.NA], dtype="Int64")
    return d


def test_annex_lists_every_measure_with_units_status_year_and_evidence():
    plan = load_plan("zhanjiang")
    t = annex.measures_annex(measures(), plan, "zh")
    assert len(t) == 3
    assert list(t.columns) == ["措施编号", "具体措施", "牵头单位和责任单位", "完成时限", "状态", "完成年份", "佐证材料"]
    assert t.iloc[0].tolist() == ["A1-1-1", "坚持立德树人。", "牵头：市教育局、市科协；责任：市科技局", "2025年底", "已完成", "2023",
                                  "2023年进展报告"]
    assert t["状态"].tolist() == ["已完成", "部分年度未完成（逾期）", "推进中（逾期）"]
    assert t["牵头单位和责任单位"].iloc[1] == "牵头：市科协"


def test_english_annex_has_no_chinese():
    plan = load_plan("zhanjiang")
    t = annex.measures_annex(measures(), plan, "en")
    assert "Evidence" not in t.columns and "Measure" in t.columns
    text = " ".join(map(str, t.to_numpy().ravel())) + " ".join(t.columns)
    assert not re.search(r"[\u4e00-\u9fff]", text), text
    assert t["Status"].tolist() == ["Completed", "Some years not done (overdue)", "In progress (overdue)"]
    assert t["Deadline"].tolist()[1] == "every year"


def test_indicators_before_their_deadline_are_checked_against_the_path():
    ind = pd.DataFrame({"indicator_id": "bases", "name_zh": "国家级科普教育基地", "year": [2021, 2023, 2024],
                        "scope": "city", "value": [2.0, 3.6, 4.0], "target": 5.0, "comparison": ">=", "unit": "个",
                        "deadline": "2025", "due": False, "note": "", "n_missing": 0})
    ind["met"] = pd.array([pd.NA] * 3, dtype="boolean")
    specs = [{"id": "bases", "name_zh": "国家级科普教育基地", "name_en": "national bases"}]
    traj = {"target_year": 2025, "latest_year": 2024, "implied_path": {}}
    # path: 2 in 2021 to 5 in 2025, so 4.25 in 2024 (3.5 in 2023)
    assert annex.indicator_table(ind, specs, traj, "zh")["是否达标"].tolist() == ["2024年低于进度（应达 4.2）"]
    assert annex.judgements(ind[ind.year <= 2023], traj, "en") == {"bases": "on path in 2023 (due 3.5)"}
    assert annex.path_value(ind, 2021, traj) is None  # the first year is the path's start, not judged
