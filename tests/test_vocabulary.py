"""The vocabulary (codes -> words per language) and the report's tables built from it."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from analysis import report_tables as tables
from analysis import vocabulary as vocab
from analysis.config import load_plan

CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


@pytest.fixture(scope="module")
def plan():
    return load_plan("zhanjiang")


def test_every_term_has_every_language_and_english_has_no_chinese():
    for kind, entries in vocab.TERMS.items():
        for code, words in entries.items():
            assert set(words) == set(vocab.LANGS), (kind, code)
            assert not CJK.search(words["en"]), (kind, code, words["en"])


def test_term_lookup_and_errors():
    assert vocab.term("verdict", "worsened", "en") == "widened clearly"
    assert vocab.term("verdict", "worsened") == "明显扩大"
    assert vocab.term("model", "new_model", "en", default="new model") == "new model"
    with pytest.raises(KeyError, match="unknown verdict code 'better'"):
        vocab.term("verdict", "better", "en")
    with pytest.raises(KeyError, match="no vocabulary kind"):
        vocab.term("colour", "red", "en")
    with pytest.raises(ValueError, match="lang must be one of zh, en"):
        vocab.term("verdict", "worsened", "fr")


def test_join_and_capitalise():
    assert vocab.join(["a"], "en") == "a"
    assert vocab.join(["a", "b"], "en") == "a and b"
    assert vocab.join(["a", "b", "c"], "en") == "a, b and c"
    assert vocab.join(["甲", "乙", "丙"], "zh") == "甲、乙、丙"
    assert vocab.capitalise("farmers (2.1%)") == "Farmers (2.1%)" and vocab.capitalise("") == ""


def test_official_english_division_names_from_the_plan(plan):
    names = vocab.division_names(plan, "en")
    assert names["440802"] == "Chikan District" and names["440823"] == "Suixi County"
    assert names["440881"] == "Lianjiang"  # county-level cities: the plain name
    assert vocab.division_names(plan, "zh")["440802"] == "赤坎区"
    assert vocab.level_label(plan, "division", "440825", "en") == "Xuwen County"
    assert vocab.level_label(plan, "key_group", "farmers", "en") == "Farmers"
    assert vocab.level_label(plan, "urban_rural", "乡村", "en") == "Rural"
    assert vocab.level_label(plan, "city", "all", "en") == "Zhanjiang"
    assert vocab.plan_word(plan, "units", "市科协", "en") == "Municipal Association for Science and Technology"
    assert vocab.plan_word(plan, "units", "市科协", "zh") == "市科协"
    assert vocab.plan_word(plan, "units", "新单位", "en") == "新单位"  # unlisted: kept as it is


TRAJ = {"target_year": 2025, "groups": {
    "key_group": {"levels": {"farmers": {"observed": {"2025": 2.1}, "avg_change_pp_per_year": 0.1}},
                  "gaps": {"farmers-city": {"slope_pp_per_year": -0.81, "verdict": "widening"}}},
    "urban_rural": {"levels": {"乡村": {"observed": {"2025": 7.3}}, "城镇": {"observed": {"2025": 23.3}}},
                    "gaps": {"城镇-乡村": {"slope_pp_per_year": 1.05, "verdict": "no_clear_change"}}}}}


def test_groups_table_shows_a_gap_between_two_rows_once(plan):
    zh = tables.groups_table(TRAJ, plan, "zh")
    assert zh["人群"].tolist() == ["农民", "城镇", "乡村"]  # levels in natural order (issue 11): urban first
    assert zh["差距年均变化（百分点）"].tolist() == [-0.81, 1.05, ""]
    assert zh["差距变化"].tolist() == ["差距扩大", "差距无明显变化", ""]
    assert zh["说明"].tolist() == ["", "差距为城镇减乡村", "与城镇行为同一差距"]
    en = tables.groups_table(TRAJ, plan, "en")
    assert en["Group"].tolist() == ["Farmers", "Urban", "Rural"]
    assert en["Gap trend"].tolist() == ["widening", "no clear change", ""]
    assert en["Note"].tolist() == ["", "gap: Urban minus Rural", "same gap as the Urban row"]
    assert not any(CJK.search(str(c)) for c in [*en.columns, *en.astype(str).to_numpy().ravel()])


def test_inequality_and_cleaning_tables_in_english(plan):
    band = {"value": 5.0, "change": -1.0, "ci_low": -2.0, "ci_high": 0.5, "verdict": "no_clear_change"}
    res = {"first": {m: band for m in tables.INEQUALITY_MEASURES}, "latest": {m: band for m in tables.INEQUALITY_MEASURES},
           "change": {m: band for m in tables.INEQUALITY_MEASURES}}
    county = {"inequality": {"first_year": 2021, "latest_year": 2025, "divisions": res, "groups": {"sex": res}}}
    en = tables.inequality_table(county, "en")
    assert list(en.columns) == ["Between", "Measure", "2021", "2025", "Change", "Verdict"]
    assert en["Between"].tolist()[::3] == ["Divisions", "Men and women"]
    assert en.iloc[0]["Change"] == "-1.00 (-2.00 to 0.50)"
    zh = tables.inequality_table(county, "zh")
    assert "2021年" in zh.columns and zh.iloc[0]["变化"] == "-1.00（-2.00～0.50）"
    summary = pd.DataFrame({"order": [1, 2, None], "rule": ["missing_id", "implausible", "kept"],
                            "label_zh": ["缺少受访者编号", "人口特征组合不合理", "保留"],
                            "threshold": ["", "学生且60岁及以上；离退休人员且不满40岁", ""], "n": [0, 3, 97],
                            "share_pct": [0.0, 3.0, 97.0]})
    clean = tables.cleaning_table(summary, "en")
    assert clean["Rule"].tolist() == ["Respondent ID missing", "Implausible profile"]
    assert clean["Threshold"].tolist()[1] == "student aged 60+; retired under 40"
