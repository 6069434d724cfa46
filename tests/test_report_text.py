"""The report's sentences and rules on small hand-made results (no pipeline run)."""

from __future__ import annotations

import copy
import re

import pandas as pd
import pytest

from analysis import report_text as rt
from analysis.vocabulary import term

CODES = re.compile(r"\b(worsened|improved|no_clear_change|widening|closing|insufficient_years|same_rule|"
                   r"logit_linear|linear_pp|national_gap|not_due|no_data)\b")


def traj_final(**over):
    t = {
        "latest_year": 2025, "latest_estimate": 14.715, "latest_ci": [13.29, 16.26],
        "baseline_year": 2020, "baseline": 10.0, "change_since_baseline_pp": 4.7116,
        "observed": [{"year": 2018, "estimate": 8.4}, {"year": 2020, "estimate": 10.0034}],
        "target": 16.0, "target_year": 2025, "target_year_observed": True,
        "p_exceeds_target": 0.0493, "forecast": 14.7545, "forecast_interval": [13.82, 15.69],
        "model_chosen": "linear_pp", "model_chosen_label_zh": "百分点线性趋势", "year_target_reached": 2027,
        "implied_path": {"2020": 10.0, "2023": 13.2578, "2025": 16.0},
    }
    t.update(over)
    return t


def traj_monitoring(**over):
    t = traj_final(latest_year=2023, latest_estimate=12.92, latest_ci=[11.6, 14.37],
                   change_since_baseline_pp=2.9165, target_year_observed=False, p_exceeds_target=0.3002,
                   forecast=15.28, forecast_interval=[12.81, 18.12], model_chosen="logit_linear",
                   model_chosen_label_zh="logit线性趋势", year_target_reached=2026)
    t.update(over)
    return t


def division(code, name, est, p, name_en=None):
    d = {"division_code": code, "name_zh": name, "benchmarked": est, "gap_to_target": est - 16.0,
         "p_below_target": p}
    if name_en:
        d["name_en"] = name_en
    return d


def county(below=None, by=None, improved=False, p_likely_below=0.9, year=2025):
    """county_gaps.json as stage 04 writes it: the "very likely below" list is the stage's, with its cut-off."""
    below = [division("1", "甲县", 8.4, 0.99999, "Jia"), division("2", "乙县", 12.7, 0.85, "Yi"),
             division("3", "丙县", 9.2, 0.995, "Bing"), division("4", "丁县", 15.5, 0.6, "Ding")] \
        if below is None else below
    likely = sorted((d for d in below if d["p_below_target"] >= p_likely_below), key=lambda d: -d["p_below_target"])
    return {"year": year, "target": 16.0, "target_year": 2025, "divisions_below_target": below,
            "p_likely_below": p_likely_below, "divisions_likely_below_target": likely,
            "inequality": {"first_year": 2021},
            "imbalance_improved": {"by": by or {"divisions": "worsened", "sex": "no_clear_change"},
                                   "divisions_improved": improved}}


def indicator(**over):
    i = {"id": "x", "name_zh": "国家级科普教育基地", "target": 5.0, "comparison": ">=", "unit": "个",
         "deadline": 2025, "values_by_year": {"2024": 3.0, "2025": 4.0}, "value": 4.0, "value_year": 2025,
         "status": "missed"}
    i.update(over)
    return i


TUTORS = indicator(id="tutors", name_zh="每年培训科技辅导员", target=350.0, unit="人/年", deadline="every_year",
                   values_by_year={"2021": 335.0, "2022": 344.0, "2023": 353.0, "2024": 383.0, "2025": 395.0},
                   value=395.0, years_missed=2)


def progress(indicators=None, overdue=3, report_year=2025, errors=0):
    return {"report_year": report_year, "measures_total": 61, "measures_completed": 37, "completed_share": 60.6557,
            "overdue_count": overdue, "indicators": [TUTORS] if indicators is None else indicators,
            "problems": {"errors": errors, "files_with_errors": ["a.xlsx"] if errors else []}}


def estimates(year=2025, city=14.7, groups=(("farmers", 2.1, False), ("workers", 19.2, False),
                                            ("officials", float("nan"), True))):
    rows = [{"year": year, "domain": "city", "level": "all", "indicator": "literate", "estimate": city,
             "suppressed": False}]
    rows += [{"year": year, "domain": "key_group", "level": g, "indicator": "literate", "estimate": e,
              "suppressed": s} for g, e, s in groups]
    return pd.DataFrame(rows)


KEY_GROUPS = [{"id": "farmers", "name_zh": "农民"}, {"id": "workers", "name_zh": "产业工人"},
              {"id": "officials", "name_zh": "领导干部和公务员"}]


def test_tr_and_verdict_words():
    assert rt.tr("zh", "甲", "A") == "甲" and rt.tr("en", "甲", "A") == "A"
    with pytest.raises(ValueError, match="lang"):
        rt.tr("fr", "甲", "A")
    assert rt.verdict_word("worsened") == "明显扩大"
    assert rt.verdict_word("improved", "en") == "narrowed clearly"
    assert rt.verdict_word("no_clear_change", "en") == "no clear change"
    with pytest.raises(KeyError, match="unknown verdict"):
        rt.verdict_word("better")
    assert term("margin", "sex_age", "en") == "sex × age"
    assert term("model", "something_new", "en", default="something new") == "something new"


def test_headline_final_year_qualifies_below_target_by_interval():
    text = rt.headline(traj_final(), "甲市")
    flat = text.replace(" ", "")
    assert "比例估计为14.7%（95%置信区间13.3%–16.3%）" in flat
    # the change is measured from the 2020 survey estimate; the published baseline is shown separately
    assert "比2020年调查估计10.0%提高4.7个百分点" in flat and "规划基线10.0%" in flat
    assert "点估计低于规划目标16.0%，但置信区间包含目标值" in flat
    whole_below = rt.headline(traj_final(latest_ci=[13.0, 15.9]), "甲市")
    assert "置信区间整体低于目标值" in whole_below and "但置信区间包含" not in whole_below
    above = rt.headline(traj_final(latest_estimate=17.0, latest_ci=[16.2, 17.9]), "甲市")
    assert "点估计高于规划目标 16.0%，置信区间整体高于目标值" in above


def test_headline_change_from_survey_estimate_not_published_baseline():
    t = traj_final(observed=[{"year": 2020, "estimate": 9.6}], change_since_baseline_pp=5.115)
    assert "比2020年调查估计 9.6% 提高 5.1 个百分点（规划基线 10.0%）" in rt.headline(t, "甲市")
    no_survey = traj_final(observed=[], decomposition={})
    assert "比2020年规划基线 10.0% 提高 4.7" in rt.headline(no_survey, "甲市")


def test_headline_no_change_says_level_not_down_zero():
    t = traj_final(change_since_baseline_pp=0.02)
    text = rt.headline(t, "甲市")
    assert "持平" in text and "下降" not in text and "0.0 个百分点" not in text
    assert "level with" in rt.headline(t, "City", "en")


def test_headline_monitoring_year_compares_with_implied_path():
    text = rt.headline(traj_monitoring(), "甲市")
    assert "2023年应达到 13.3%" in text
    # 12.9% shown against 13.3%: the gap is taken from the rounded values so the sentence adds up
    assert "估计为 12.9%" in text and "点估计低于该值 0.4 个百分点，但置信区间包含该值" in text
    assert "低于规划目标" not in text  # the final target is not the yardstick of a monitoring year
    en = rt.headline(traj_monitoring(), "City", "en")
    assert "implied path calls for 13.3% in 2023" in en and "0.4 points below" in en
    ahead = rt.headline(traj_monitoring(latest_estimate=14.8, latest_ci=[13.9, 15.8]), "甲市")
    assert "点估计高于该值 1.5 个百分点，置信区间整体高于该值" in ahead


def test_headline_monitoring_without_implied_path_gives_distance_to_target():
    text = rt.headline(traj_monitoring(implied_path={}), "甲市")
    assert "距2025年目标（超过 16.0%）还差 3.1 个百分点" in text


def test_target_sentence_formats_extreme_probabilities():
    assert "概率为 <1%" in rt.target_sentence(traj_final(p_exceeds_target=0.004))
    assert "概率为 >99%" in rt.target_sentence(traj_final(p_exceeds_target=0.99996))
    assert "概率为 5%" in rt.target_sentence(traj_final())
    monitoring = rt.target_sentence(traj_monitoring())
    assert "预计2025年为 15.3%（12.8%–18.1%），超过目标 16.0% 的概率为 30%" in monitoring
    assert "2026年达到目标" in monitoring
    assert "not reached" in rt.target_sentence(traj_final(year_target_reached=None), "en")


def test_division_sentence_largest_gaps_only_below_target_and_one_cutoff():
    c = county()
    c["divisions_below_target"].append(division("5", "戊区", 18.0, 0.01))  # above target: never a "gap"
    text = rt.division_sentence(c)
    assert text.startswith("4个县（市、区）的小区域估计低于目标 16.0%，其中2个低于目标的概率在 90% 及以上")
    assert "差距最大的是甲县（8.4%）、丙县（9.2%）、乙县（12.7%）" in text
    assert "戊区" not in text
    # the count and cut-off are stage 04's (county_gaps.json), not recomputed in the report
    assert "其中3个" in rt.division_sentence(county(p_likely_below=0.8)) and "80% 及以上" in rt.division_sentence(
        county(p_likely_below=0.8))
    stale = {k: v for k, v in c.items() if k != "p_likely_below"}
    with pytest.raises(KeyError, match="rerun notebooks/04_county_gaps"):
        rt.division_sentence(stale)


def test_division_sentence_monitoring_year_names_the_final_target():
    text = rt.division_sentence(county(year=2023))
    assert text.startswith("以2025年目标 16.0% 衡量，4个县（市、区）的小区域估计低于该目标，其中2个")
    assert rt.division_sentence(county(year=2023), "en").startswith(
        "Measured against the 2025 target of 16.0%, 4 divisions are below it on the small-area estimates")
    assert "衡量" not in rt.division_sentence(county())
    found = rt.recommendations(traj_monitoring(), county(year=2023), progress(overdue=0, indicators=[]),
                               estimates(year=2023, groups=()), KEY_GROUPS)
    assert {f.rule: f for f in found}["divisions_behind"].finding.startswith("以2025年目标 16.0% 衡量，甲县")
    assert "与2021年相比，县（市、区）差异明显扩大；性别差异无明显变化。" in text


def test_division_sentence_none_below_and_english_words():
    c = county(below=[division("5", "戊区", 18.0, 0.01)], by={"divisions": "improved"}, improved=True)
    assert rt.division_sentence(c).startswith("所有县（市、区）的模型估计均达到目标（16.0%）")
    en = rt.division_sentence(county(), "en")
    assert "largest gaps are in Jia (8.4%), Bing (9.2%) and Yi (12.7%)" in en
    assert ("Since 2021, differences between divisions have widened clearly; those between men and women show "
            "no clear change.") in en
    both = rt.imbalance_summary({"by": {"divisions": "no_clear_change", "sex": "no_clear_change",
                                        "age_group": "worsened"}}, "en")
    assert both == ("differences between divisions and between men and women show no clear change; those between "
                    "age groups have widened clearly")
    assert not CODES.search(en) and "{" not in en


def test_group_sentence_shown_hidden_and_empty():
    text = rt.group_sentence(estimates(), 2025, KEY_GROUPS)
    assert text == ("2025年重点人群中，农民 2.1%、产业工人 19.2%。"
                    "领导干部和公务员样本量不足或估计不稳定，按精度要求不予发布。")
    only_hidden = rt.group_sentence(estimates(groups=()), 2025, KEY_GROUPS[:1], "en")
    assert only_hidden == "The estimate for 农民 is not published (too few respondents or too unstable)."


def test_annual_indicator_missed_in_early_years_shows_the_years():
    detail = rt.indicator_detail(TUTORS, 2025)
    assert detail == "每年培训科技辅导员（目标每年≥350人/年；2021年335人、2022年344人未达标）"
    assert "395" not in detail  # the latest value met the target: it is not why the indicator failed
    assert rt.years_missed(TUTORS, 2021) == [2021]
    assert rt.indicator_detail(indicator(), 2025) == "国家级科普教育基地（2025年4个，目标≥5个）"
    pct_ind = indicator(name_zh="比例", unit="percent", comparison=">", target=16.0, value=14.715)
    assert rt.indicator_detail(pct_ind, 2025) == "比例（2025年14.7%，目标＞16.0%）"
    assert "无数据" in rt.indicator_detail(indicator(value=None), 2025)


def test_progress_sentence_counts_not_due_and_no_data():
    inds = [TUTORS, indicator(status="not_due"), indicator(status="not_due"), indicator(status="no_data"),
            indicator(status="met")]
    text = rt.progress_sentence(progress(inds, report_year=2023))
    flat = text.replace(" ", "")
    assert "已完成37项（60.7%）" in flat and "逾期未完成3项" in flat
    assert ("5项量化指标中，达标1项；未达标1项：每年培训科技辅导员（目标每年≥350人/年；2021年335人、2022年344人未达标）；"
            "尚未到考核年份2项；暂无数据1项。") in flat
    en = rt.progress_sentence(progress(inds, report_year=2023), "en")
    assert "2 are not yet due and 1 has no data" in en and not CODES.search(en)
    assert "量化指标" not in rt.progress_sentence(progress([]))


def test_recommendations_rules_and_thresholds():
    found = rt.recommendations(traj_final(), county(), progress(errors=2), estimates(), KEY_GROUPS)
    rules = [f.rule for f in found]
    assert rules == ["target_not_secured", "divisions_behind", "imbalance_not_improved", "groups_far_behind",
                     "groups_unmeasured", "overdue_measures", "indicators_missed", "returns_with_errors"]
    by = {f.rule: f for f in found}
    assert "概率为 5%" in by["target_not_secured"].finding
    assert by["divisions_behind"].finding == ("甲县（8.4%，低于目标概率 >99%）、丙县（9.2%，低于目标概率 >99%）"
                                              "很可能低于目标。")
    assert "by" not in by["divisions_behind"].finding
    assert "农民（2.1%）低于全市水平（14.7%）的 50%" in by["groups_far_behind"].finding
    assert "2021年335人、2022年344人未达标" in by["indicators_missed"].finding
    assert "未达标指标：。" not in by["indicators_missed"].finding
    # thresholds are arguments: a laxer division cut-off lists more divisions, a strict P(target) rule none
    lax = rt.recommendations(traj_final(p_exceeds_target=0.95), county(p_likely_below=0.8), progress(), estimates(),
                             KEY_GROUPS, p_target_secured=0.9, group_far_behind=0.1)
    lax_rules = {f.rule: f for f in lax}
    assert "target_not_secured" not in lax_rules and "groups_far_behind" not in lax_rules
    assert "乙县" in lax_rules["divisions_behind"].finding


def test_recommendations_empty_cases():
    c = county(below=[], by={"divisions": "improved"}, improved=True)
    p = progress(indicators=[indicator(status="met")], overdue=0)
    found = rt.recommendations(traj_final(p_exceeds_target=0.97), c, p,
                               estimates(groups=(("farmers", 12.0, False),)), KEY_GROUPS)
    assert found == []


def test_recommendations_monitoring_year_speaks_of_the_trend():
    found = rt.recommendations(traj_monitoring(), county(below=[]), progress(overdue=0, indicators=[]),
                               estimates(year=2023, groups=()), KEY_GROUPS)
    assert found[0].rule == "target_not_secured"
    assert "按当前趋势，2025年全市比例超过 16.0% 的概率为 30%" in found[0].finding


def test_english_output_has_no_placeholders_reprs_or_codes():
    texts = [rt.headline(traj_final(), "City", "en"), rt.headline(traj_monitoring(), "City", "en"),
             rt.target_sentence(traj_monitoring(), "en"), rt.division_sentence(county(), "en"),
             rt.progress_sentence(progress([TUTORS, indicator(status="not_due")]), "en"),
             rt.decomposition_sentence(DECOMP, "en"), rt.packages_sentence(MANIFESTS, "en")]
    for f in rt.recommendations(traj_final(), county(), progress(errors=1), estimates(), KEY_GROUPS, "en"):
        texts += [f.finding, f.recommendation]
    texts += [w for _, w in rt.recommendation_rules("en")]
    texts += [rt.indicator_detail(i, 2025, "en") for i in (TUTORS, indicator(),
                                                              indicator(unit="percent", comparison=">", value=14.7))]
    texts.append(rt.division_sentence(county(year=2023), "en"))
    names_zh = {g["name_zh"] for g in KEY_GROUPS} | {"每年培训科技辅导员", "国家级科普教育基地"}  # plan names without name_en
    for text in texts:
        assert "{" not in text and "}" not in text, text
        assert not CODES.search(text), text
        template = text
        for n in names_zh:
            template = template.replace(n, "")
        assert not re.search(r"[\u3000-\u303f\uff00-\uffef\u4e00-\u9fff]", template), text


DECOMP = {"start_year": 2020, "end_year": 2025, "total_change_pp": 4.7116, "composition_pp": 0.127,
          "within_pp": 4.5846, "method_zh": "Kitagawa分解",
          "factor_labels_zh": {"education": "受教育程度", "age_group": "年龄结构", "urban_rural": "城镇人口比重",
                               "joint": "各因素的联合分布"},
          "margin_shift": {"education": 0.0, "age_group": 0.0, "urban_rural": 0.0},
          "factors_fixed_by_weighting": ["education", "age_group", "urban_rural"]}


def test_decomposition_sentence_states_the_weighting_caveat():
    text = rt.decomposition_sentence(DECOMP)
    assert "人口构成变化贡献 0.13 个百分点，组内提高贡献 4.58 个百分点" in text
    assert "受教育程度、年龄结构、城镇人口比重的边际分布各年相同" in text and "联合分布" in text
    moved = copy.deepcopy(DECOMP) | {"margin_shift": {"education": 0.4, "age_group": 0.0, "urban_rural": 0.0}}
    assert "年龄结构、城镇人口比重的边际分布各年相同" in rt.decomposition_sentence(moved)
    missing = {"error": "microdata_missing", "start_year": 2020, "end_year": 2025}
    assert rt.decomposition_sentence(missing) == "2020—2025年：缺少基线年或最新年份的个体数据，未作变化分解。"
    assert rt.decomposition_sentence(missing | {"error": "not_comparable"}, "en") == (
        "From 2020 to 2025, the baseline and latest surveys were scored differently, so the change is not split.")


def test_decomposition_table_is_empty_with_its_headers_when_the_change_was_not_decomposed():
    from analysis import report_tables

    for lang in ("zh", "en"):
        table = report_tables.decomposition_table({"decomposition": {"error": "microdata_missing"}}, lang)
        assert table.empty and len(table.columns) == 3


MANIFESTS = [{"stage": "01_clean", "year_dir": 2024, "packages": {"pandas": "3.1.1", "numpy": "2.4.6"}},
             {"stage": "03_trajectory", "year_dir": 2025, "packages": {"pandas": "3.1.1", "numpy": "2.4.6"}}]


def test_packages_over_all_manifests():
    same = rt.packages_sentence(MANIFESTS)
    assert same == "主要软件版本：pandas 3.1.1，numpy 2.4.6（2 份阶段清单一致）。"
    differ = MANIFESTS + [{"stage": "04_county_gaps", "year_dir": 2025, "packages": {"pandas": "3.0.0",
                                                                                     "numpy": "2.4.6"}}]
    text = rt.packages_sentence(differ)
    assert "numpy 2.4.6" in text
    assert "各阶段所用版本不一致的有：pandas 3.1.1（01_clean（2024）、03_trajectory（2025））/ 3.0.0（04_county_gaps（2025））" \
        in text.replace(" / ", "/ ")
    assert rt.package_versions(differ)["pandas"] == {"3.1.1": ["01_clean（2024）", "03_trajectory（2025）"],
                                                     "3.0.0": ["04_county_gaps（2025）"]}
    assert "no package versions" in rt.packages_sentence([], "en")
    assert "01_clean (2024), 03_trajectory (2025)" in rt.packages_sentence(differ, "en")


def test_recommendation_rules_print_the_thresholds_in_use():
    rules = dict(rt.recommendation_rules("zh", p_likely_below=0.95, p_target_secured=0.8, group_far_behind=0.4))
    assert "95%" in rules["divisions_behind"] and "80%" in rules["target_not_secured"]
    assert "40%" in rules["groups_far_behind"]
    assert [r for r, _ in rt.recommendation_rules()] == [
        "target_not_secured", "divisions_behind", "imbalance_not_improved", "groups_far_behind",
        "groups_unmeasured", "overdue_measures", "indicators_missed", "returns_with_errors"]


def test_safeguards_say_plainly_where_the_returns_have_no_data():
    p = progress(indicators=[indicator(id="bases_national", status="met", value=5.0),
                             indicator(id="bases_provincial", name_zh="省级科普教育基地", status="missed",
                                       target=30.0, value=27.0)], errors=2)
    p["returns"] = {"units_returned": ["a", "b"], "units_expected": ["a", "b", "c"]}
    rows = dict(rt.safeguards(p))
    assert list(rows) == ["经费投入", "科普人才队伍", "科普设施", "部门参与和报送", "科普工作联席会议制度", "各县（市、区）实施方案"]
    assert rows["经费投入"].startswith("部门报表未采集此项，无数据")
    assert "2 项中 1 项达标" in rows["科普设施"] and "省级科普教育基地（2025年27个，目标≥30个）" in rows["科普设施"]
    assert rows["部门参与和报送"] == "应报送进展报表的牵头单位 3 个，实际报送 2 个；报表中填报错误 2 处。"
    en = dict(rt.safeguards(p, "en"))
    assert "2 of the 3 lead units" in en["Participation of the units"] and "cannot be assessed" in en["Funding"]


def test_progress_sentence_counts_completion_over_due_measures_only():
    p = progress(indicators=[], report_year=2023)
    p.update(measures_due=23, measures_completed=15, completed_share=100 * 15 / 23)
    text = rt.progress_sentence(p)
    assert "截至2023年底已到期 23 项，其中已完成 15 项（占到期措施的 65.2%）" in text
    assert "23 were due by the end of 2023; 15 (65.2% of those due) of them were completed" in rt.progress_sentence(
        p, "en")


def test_benchmark_sentence_compares_nation_and_province_with_their_targets():
    traj = {"latest_year": 2025, "latest_estimate": 14.8, "target_year": 2025, "benchmarks": {
        "national_latest_year": 2024, "national_latest": 15.4, "province_scope": "guangdong",
        "province_latest_year": 2022, "province_latest": 14.8, "city_minus_national_latest_common_pp": None,
        "targets": {"national_2025": 15.0}}}
    prov = {"zh": "广东省", "en": "Guangdong"}
    assert rt.benchmark_sentence(traj, prov, "zh").startswith(
        "作为比较，全国2024年公布的比例为 15.4%（全国2025年目标 15.0%）；广东省2022年公布的比例为 14.8%。")
    assert "Guangdong's published share for 2022 is 14.8%" in rt.benchmark_sentence(traj, prov, "en")
    assert "(national 2025 target 15.0%)" in rt.benchmark_sentence(traj, prov, "en")
    no_data = {**traj, "benchmarks": {**traj["benchmarks"], "national_latest": None, "province_latest": None}}
    assert rt.benchmark_sentence(no_data, prov, "zh") == ""
