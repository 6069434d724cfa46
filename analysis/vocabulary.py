"""Words for every code the results store, in each report language (zh, en).

Results keep codes ('worsened', 'logit_linear', 'urban_rural'); the report and
its figures look the words up here. Generic terms are in TERMS, one entry per
code with a label per language (add a language by adding its key to every
entry: a test checks that none is missing). Names that belong to the city —
its divisions, key groups, indicators, lead units, actions — are read from the
plan file, which gives an English name beside each Chinese one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .config import Plan

LANGS = ("zh", "en")


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {', '.join(LANGS)}, not {lang!r}")
    return lang


def _t(zh: str, en: str) -> dict[str, str]:
    return {"zh": zh, "en": en}


# Order matters in "domain": tables and figures list domains in this order.
TERMS: dict[str, dict[str, dict[str, str]]] = {
    "domain": {
        "city": _t("全市", "City"), "division": _t("县（市、区）", "Division"),
        "urban_rural": _t("城乡", "Urban/rural"), "sex": _t("性别", "Sex"), "age_group": _t("年龄组", "Age group"),
        "education": _t("文化程度", "Education"), "occupation": _t("职业", "Occupation"),
        "key_group": _t("重点人群", "Key group"),
    },
    # units compared in county_gaps.json (inequality, imbalance verdicts), as used in a sentence
    "unit": {
        "divisions": _t("县（市、区）", "divisions"), "urban_rural": _t("城乡", "urban and rural areas"),
        "sex": _t("性别", "men and women"), "age_group": _t("年龄组", "age groups"),
        "education": _t("文化程度", "education levels"), "occupation": _t("职业", "occupations"),
        "key_groups": _t("重点人群", "key groups"),
    },
    "level": {  # category levels of the survey (harmonised values are Chinese)
        "城镇": _t("城镇", "Urban"), "乡村": _t("乡村", "Rural"), "男": _t("男", "Men"), "女": _t("女", "Women"),
        "小学及以下": _t("小学及以下", "Primary or below"), "初中": _t("初中", "Junior secondary"),
        "高中": _t("高中", "Senior secondary"), "大专": _t("大专", "Junior college"),
        "本科及以上": _t("本科及以上", "Bachelor's or above"),
        "农民": _t("农民", "Farmers"), "产业工人": _t("产业工人", "Industrial workers"),
        "领导干部和公务员": _t("领导干部和公务员", "Officials and civil servants"),
        "专业技术人员": _t("专业技术人员", "Professionals"),
        "商业服务业人员": _t("商业服务业人员", "Sales and service workers"), "学生": _t("学生", "Students"),
        "离退休人员": _t("离退休人员", "Retired"), "无业或失业": _t("无业或失业", "Not in work"),
        "其他": _t("其他", "Other"), "all": _t("全体", "All"),
        "city": _t("全市", "City"),
    },
    "verdict": {  # change of an inequality measure between two years (county_gaps.json)
        "improved": _t("明显缩小", "narrowed clearly"), "worsened": _t("明显扩大", "widened clearly"),
        "no_clear_change": _t("无明显变化", "no clear change"),
    },
    "target_verdict": {  # the target judged from the headline probability (analysis/verdict.py)
        "achieved": _t("已达到", "achieved"), "likely_achieved": _t("很可能达到", "very likely achieved"),
        "uncertain": _t("尚难判断", "too close to call"), "likely_missed": _t("很可能未达到", "very likely not achieved"),
        "missed": _t("未达到", "not achieved"),
    },
    "target_outlook": {  # the same verdict before the target year, from the trend forecast
        "achieved": _t("预计如期达到", "on track"), "likely_achieved": _t("很可能如期达到", "very likely on track"),
        "uncertain": _t("尚难判断", "too close to call"),
        "likely_missed": _t("很可能不能如期达到", "very likely off track"),
        "missed": _t("预计不能如期达到", "off track"),
    },
    "gap_trend": {  # fitted trend of a group's gap (trajectory.json)
        "closing": _t("差距缩小", "closing"), "widening": _t("差距扩大", "widening"),
        "no_clear_change": _t("差距无明显变化", "no clear change"), "insufficient_years": _t("年份不足", "too few years"),
    },
    "model": {
        "logit_linear": _t("logit线性趋势（按精度加权）", "logit-linear trend (precision-weighted)"),
        "linear_pp": _t("百分点线性趋势（按精度加权）", "linear trend in points (precision-weighted)"),
        "national_gap": _t("跟随全国曲线（与全国的logit差距线性变化）",
                           "national curve (logit gap to the nation changing linearly)"),
    },
    "model_short": {
        "logit_linear": _t("logit线性趋势", "logit-linear trend"), "linear_pp": _t("百分点线性趋势", "linear trend"),
        "national_gap": _t("跟随全国曲线", "national curve"),
    },
    "factor": {
        "education": _t("受教育程度", "education"), "age_group": _t("年龄结构", "age structure"),
        "urban_rural": _t("城镇人口比重", "urban share"), "joint": _t("各因素的联合分布", "the joint distribution of the factors"),
    },
    "decomposition_method": {
        "shift_share": _t("按受教育程度×年龄组×城乡分格的结构—组内分解（Kitagawa）",
                       "Kitagawa composition–within split over education × age group × urban/rural cells"),
        "oaxaca_logit": _t("logit Oaxaca–Blinder 分解（Yun 权重）", "logit Oaxaca–Blinder (Yun weights)"),
    },
    "decomposition_error": {
        "not_comparable": _t("基线年与最新年份的测评口径不一致，未作变化分解",
                             "the baseline and latest surveys were scored differently, so the change is not split"),
        "microdata_missing": _t("缺少基线年或最新年份的个体数据，未作变化分解",
                                "the microdata of the baseline or the latest year are missing, so the change is not split"),
    },
    "decomposition_part": {
        "total": _t("总变化", "Total change"), "composition": _t("人口结构变化", "Composition"),
        "within": _t("组内提升", "Within groups"),
    },
    "measure": {
        "range": _t("极差（百分点）", "Range (points)"), "cv": _t("变异系数", "Coefficient of variation"),
        "mean_abs_gap": _t("人口加权平均绝对差距（百分点）", "Population-weighted mean absolute gap (points)"),
    },
    "covariate": {
        "intercept": _t("截距", "intercept"), "urban_share": _t("城镇人口比例", "urban population share"),
        "upper_secondary_share": _t("高中及以上文化程度比例", "share with senior secondary education or more"),
        "age_50plus_share": _t("50—69岁人口比例", "share aged 50-69"),
    },
    "margin": {
        "division_urban": _t("县（市、区）×城乡", "division × urban/rural"), "sex_age": _t("性别×年龄", "sex × age"),
        "education": _t("文化程度", "education"),
    },
    "weighting": {"rake": _t("迭代比例调整（raking）", "raking"), "poststratify": _t("事后分层", "post-stratification")},
    "rule_handling": {
        "same_rule": _t("只用与最新年份评分规则相同的年份拟合", "fitted to the years scored with the latest rule"),
        "indicator": _t("全部年份参与拟合，以指示变量吸收评分规则变化",
                        "all years fitted, with an indicator for the change of scoring rule"),
    },
    "scoring_rule": {"score": _t("百分制", "100-point score"), "three_dimension": _t("三维度", "three dimensions")},
    "scoring_rule_long": {"score": _t("百分制规则", "the 100-point score rule"),
                          "three_dimension": _t("三维度规则", "the three-dimension rule")},
    "cleaning_rule": {
        "missing_id": _t("缺少受访者编号", "Respondent ID missing"),
        "duplicate_id": _t("重复受访者（编号相同）", "Duplicate respondent (same ID)"),
        "duplicate_answers": _t("重复问卷（人口特征与作答完全相同）", "Duplicate questionnaire (same profile and answers)"),
        "unknown_division": _t("县（市、区）无法识别", "Division not recognised"),
        "missing_required": _t("必填项缺失", "Required item missing"),
        "age_out_of_range": _t("年龄超出调查范围", "Age outside the survey range"),
        "incomplete": _t("问卷不完整（核心题缺答过多）", "Incomplete (too many core items unanswered)"),
        "speeder": _t("答题过快", "Answered too fast (minutes)"),
        "straightline": _t("连续相同作答", "Straight-lining (identical answers in a row)"),
        "implausible": _t("人口特征组合不合理", "Implausible profile"),
        "dropped": _t("剔除合计", "Dropped in all"), "kept": _t("保留", "Kept"), "input": _t("输入行数", "Rows in"),
    },
    "implausible": {
        "student_60_plus": _t("学生且60岁及以上", "student aged 60+"),
        "retired_under_40": _t("离退休人员且不满40岁", "retired under 40"),
        "official_primary": _t("领导干部和公务员且文化程度小学及以下", "official with primary education or less"),
    },
    "status": {  # indicator status (progress.json)
        "met": _t("达标", "met"), "missed": _t("未达标", "missed"), "not_due": _t("尚未到考核年份", "not yet due"),
        "no_data": _t("暂无数据", "without data"), "incomplete": _t("数据不全", "incomplete"),
    },
    "measure_status": {  # category of a measure (progress tables)
        "已完成": _t("已完成", "Completed"), "推进中": _t("推进中", "In progress"),
        "部分年度未完成": _t("部分年度未完成", "Some years not done"), "未启动": _t("未启动", "Not started"),
        "未报送": _t("未报送", "Not reported"),
    },
    "kind": {"提升行动": _t("提升行动", "Action"), "重点工程": _t("重点工程", "Project")},
    "unit_of_count": {  # the plan's count units
        "人/年": _t("人/年", "people a year"), "人": _t("人", "people"), "个": _t("个", ""), "座": _t("座", ""),
        "所": _t("所", ""), "场": _t("场", "events"), "次": _t("次", "times"), "percent": _t("%", "%"),
    },
    "division_type": {"区": _t("区", "District"), "县": _t("县", "County"), "县级市": _t("市", ""),
                      "地级市": _t("市", "")},  # 地级市: a city without county-level divisions, its own only unit
    "divisions_status": {  # county_gaps.json divisions_status when there are no division estimates (a reason code)
        "no_county_divisions": _t("本市不设县级行政区划（不设区的地级市，下辖镇、街道），因此不作分县（市、区）的估计和地图。",
                                  "The city has no county-level divisions (a prefecture-level city made up of towns "
                                  "and streets), so there are no estimates or maps by division."),
    },
    "recommendation_rule": {
        "target_not_secured": _t("目标达成未确认", "Target not secured"),
        "divisions_behind": _t("县（市、区）落后", "Divisions behind"),
        "imbalance_not_improved": _t("不均衡未改善", "Imbalance not improved"),
        "groups_far_behind": _t("重点人群明显落后", "Key groups far behind"),
        "groups_unmeasured": _t("重点人群无法评估", "Key groups not measured"),
        "overdue_measures": _t("措施逾期", "Overdue measures"),
        "indicators_missed": _t("指标未达标", "Indicators missed"),
        "returns_with_errors": _t("报表有误", "Returns with errors"),
    },
    "yes_no": {"yes": _t("是", "yes"), "no": _t("否", "no")},
    "header": {  # table headers (report_tables.py)
        "year": _t("年份", "Year"), "domain": _t("分组", "Group"), "level": _t("类别", "Category"),
        "n": _t("样本量", "n"), "estimate_pct": _t("估计值（%）", "Estimate (%)"),
        "estimate_score": _t("估计值（分）", "Estimate (points)"), "se": _t("标准误", "SE"),
        "ci_low": _t("95%置信区间下限", "95% CI low"), "ci_high": _t("95%置信区间上限", "95% CI high"),
        "deff": _t("设计效应", "Design effect"), "n_eff": _t("有效样本量", "Effective n"),
        "cv": _t("变异系数", "CV"), "note": _t("备注", "Note"),
        "order": _t("顺序", "Order"), "rule": _t("规则", "Rule"), "rule_code": _t("规则代码", "Rule code"),
        "threshold": _t("阈值", "Threshold"), "rows": _t("行数", "Rows"),
        "share_of_input": _t("占输入行数（%）", "Share of rows in (%)"),
        "division": _t("县（市、区）", "Division"), "direct": _t("直接估计（%）", "Direct (%)"),
        "direct_se": _t("直接估计标准误", "Direct SE"), "fh": _t("模型估计（%）", "Model (%)"),
        "fh_rmse": _t("模型均方根误差", "Model RMSE"), "shrinkage": _t("收缩系数", "Shrinkage"),
        "benchmarked": _t("基准化估计（%）", "Benchmarked (%)"),
        "gap_to_target": _t("与目标差距（百分点）", "Gap to target (points)"),
        "change_since_baseline": _t("较基线变化（百分点）", "Change since baseline (points)"),
        "p_below_target": _t("低于目标的概率", "P(below target)"),
        "units": _t("对象", "Between"), "measure": _t("指标", "Measure"), "change": _t("变化", "Change"),
        "verdict": _t("判断", "Verdict"),
        "model": _t("模型", "Model"), "loyo_rmse": _t("留一年误差RMSE（百分点）", "LOYO RMSE"),
        "loyo_mae": _t("留一年误差MAE（百分点）", "LOYO MAE"), "interval95": _t("95%区间", "95% interval"),
        "chosen": _t("采用", "Chosen"),
        "loyo_rms_z": _t("留一年误差/抽样标准误（均方根）", "LOYO RMS in SEs"),
        "tau2": _t("年际方差", "Between-year variance"), "p_holm": _t("p值（Holm校正）", "p (Holm-adjusted)"), "predicted": _t("预测（%）", "Predicted (%)"),
        "published": _t("公布值（%）", "Published (%)"), "error_pp": _t("误差（百分点）", "Error (points)"),
        "inside": _t("公布值在95%区间内", "Published inside 95% interval"),
        "group": _t("人群", "Group"), "latest_year": _t("最新年份", "Latest year"),
        "latest_estimate": _t("最新估计（%）", "Latest estimate (%)"),
        "avg_change": _t("年均变化（百分点）", "Change a year (points)"),
        "gap_trend": _t("差距变化", "Gap trend"), "gap_slope": _t("差距年均变化（百分点）", "Gap change a year (points)"),
        "explanation": _t("说明", "Note"), "method": _t("方法", "Method"), "part": _t("部分", "Part"),
        "points": _t("百分点", "Points"),
        "kind": _t("类别", "Type"), "action": _t("行动/工程", "Action or project"), "n_measures": _t("措施数", "Measures"),
        "completed": _t("已完成", "Completed"), "in_progress": _t("推进中", "In progress"),
        "not_started": _t("未启动", "Not started"), "partial": _t("部分年度未完成", "Some years not done"),
        "not_reported": _t("未报送", "Not reported"), "overdue": _t("逾期", "Overdue"),
        "completed_share": _t("完成率（%）", "Completed (%)"), "mean_completion": _t("平均完成度（%）", "Mean completion (%)"),
        "lead_unit": _t("牵头单位", "Lead unit"), "returned": _t("已报送", "Returned"),
        "n_led": _t("牵头措施数", "Measures led"),
        "indicator": _t("指标", "Indicator"), "value": _t("数值", "Value"), "target": _t("目标", "Target"),
        "unit_of_count": _t("计量单位", "Unit"), "due": _t("考核年", "Due"), "met": _t("是否达标", "Met"),
        "measure_id": _t("措施编号", "Measure"), "task": _t("主要工作任务", "Task"), "deadline": _t("完成时限", "Deadline"),
        "status_now": _t("截至报告年状态", "Status in the report year"),
        "years_done": _t("已完成年数/应完成年数", "Years done / due"),
        # the provincial comparison (reports/sections/province)
        "rank": _t("名次", "Rank"), "city": _t("城市", "City"), "survey_year": _t("调查年份", "Survey year"),
        "share_pct": _t("比例（%）", "Share (%)"), "ci95": _t("95%置信区间", "95% CI"),
        "target_pct": _t("目标（%）", "Target (%)"), "p_target": _t("达标概率", "P(target)"),
        "tasks_completed_pct": _t("任务完成率（%）", "Tasks completed (%)"),
        "province_estimate_pct": _t("全省估计（%）", "Estimate (%)"), "n_cities": _t("城市数", "Cities"),
        "difference_pp": _t("差（百分点）", "Difference (points)"),
        "rank_interval95": _t("名次95%区间", "95% rank interval"), "p_top3": _t("居前三概率", "P(top 3)"),
        "p_bottom3": _t("居后三概率", "P(bottom 3)"), "p_rank_as_point": _t("名次与点估计相同的概率", "P(rank as estimated)"),
    },
    "word": {  # short words used in tables and figures
        "year": _t("年份", "Year"), "all_city": _t("全市", "City"), "observed": _t("调查估计", "survey estimate"),
        "published": _t("公布值", "published"), "target": _t("目标", "target"), "trend": _t("趋势", "trend"),
        "national": _t("全国", "China"), "suppressed_note": _t("直接估计不发布（样本量或变异系数未达标准）",
                                                           "direct estimate suppressed (too few respondents or CV too large)"),
        "note": _t("备注", "Note"), "not_due_year": _t("未到考核年", "not due"),
        "suppressed": _t("不发布", "suppressed"), "all_suppressed": _t("各年估计均因样本量或变异系数未达发布标准而未发布",
                                                                  "every year's estimate is suppressed"),
        "every_year": _t("每年实施", "every year"),
        "percent_points": _t("百分点", "points"),
    },
}


def term(kind: str, code: Any, lang: str = "zh", default: str | None = None) -> str:
    """The label of a code ('verdict', 'worsened', 'en' -> 'widened clearly').

    An unknown code raises KeyError unless `default` is given; an unknown kind always raises.
    """
    check_lang(lang)
    if kind not in TERMS:
        raise KeyError(f"no vocabulary kind {kind!r}; known: {sorted(TERMS)}")
    entry = TERMS[kind].get(str(code))
    if entry is None:
        if default is not None:
            return default
        raise KeyError(f"unknown {kind} code {code!r}; known: {sorted(TERMS[kind])}")
    return entry[lang]


def join(items: Iterable[str], lang: str = "zh") -> str:
    """A list in running text: '甲、乙和丙' / 'a, b and c'."""
    items = [str(i) for i in items]
    if check_lang(lang) == "zh":
        return "、".join(items)
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def capitalise(text: str) -> str:
    """The first letter upper-cased, the rest left as it is ('the elderly' -> 'The elderly')."""
    return text[:1].upper() + text[1:]


# ---------------------------------------------------------------- names from the plan file

def name(item: dict[str, Any], lang: str = "zh") -> str:
    """The name of a plan item (division, key group, indicator) in a language: name_<lang>, else name_zh."""
    return str(item.get(f"name_{check_lang(lang)}") or item["name_zh"])


def city_name(plan: Plan, lang: str = "zh") -> str:
    return name(plan.settings.city.given(), lang)


def division_name(division: dict[str, Any], lang: str = "zh") -> str:
    """Official name of a plan division: 赤坎区 / 'Chikan District' (the plan's English name and its type).

    County-level cities keep the plain name in English ('Lianjiang').
    """
    if check_lang(lang) == "zh":
        return str(division["name_zh"])
    kind = term("division_type", division.get("type", ""), lang, default="")
    base = name(division, lang)
    return base if not kind or base.endswith(kind) else f"{base} {kind}"


def division_names(plan: Plan, lang: str = "zh") -> dict[str, str]:
    """Division code -> official name."""
    return {str(d["code"]): division_name(d, lang) for d in plan.divisions}


def key_group_names(plan: Plan, lang: str = "zh") -> dict[str, str]:
    return {str(g["id"]): name(g, lang) for g in plan.settings.literacy.key_groups}


def _names_en(plan: Plan, kind: str) -> dict[str, str]:
    """The plan's names_en.<kind> (units or actions): Chinese word -> English name."""
    return getattr(plan.settings.names_en, kind)


def plan_word(plan: Plan, kind: str, zh: str, lang: str = "zh") -> str:
    """A Chinese word of the plan's annex (lead unit, action) in a language, from the plan's names_en table."""
    if check_lang(lang) == "zh" or not zh:
        return zh
    return _names_en(plan, kind).get(zh, zh)


def domain_label(domain: str, lang: str = "zh") -> str:
    """The name of an estimate domain (also of its plural key in county_gaps.json)."""
    return term("domain", _ALIASES.get(domain, domain), lang, default=domain)


def level_label(plan: Plan, domain: str, level: str, lang: str = "zh") -> str:
    """The label of a domain level: division and key-group names from the plan, survey categories from TERMS."""
    domain = _ALIASES.get(domain, domain)
    if domain == "city":
        return city_name(plan, lang)
    if domain == "division":
        return division_names(plan, lang).get(str(level), str(level))
    if domain == "key_group":
        return capitalise(key_group_names(plan, lang).get(str(level), str(level)))
    return term("level", level, lang, default=str(level))


def indicator_names(plan: Plan, lang: str = "zh") -> dict[str, str]:
    """Names of the survey indicators (estimates.parquet 'indicator') for tables and figures."""
    score = plan.settings.scoring.score
    names = {"literate": _t(plan.settings.literacy.indicator_zh, "Share with scientific literacy"),
             "mean_score_total": _t("平均总分", "Mean total score")}
    for lv in score.levels:
        names[f"level_{lv['id']}"] = _t(f"{lv['name_zh']}比例", f"Share at level '{lv['id']}'")
    for dim in score.dimensions:
        names[f"mean_score_{dim['id']}"] = _t(f"{dim['name_zh']}平均得分", f"Mean score: {dim['id']}")
    return {k: v[check_lang(lang)] for k, v in names.items()}


# Other spellings of a domain used as keys in stage outputs (county_gaps.json: "divisions").
_ALIASES = {"divisions": "division", "key_groups": "key_group"}

# Chinese forms under the names the stage modules import (their owners move to the functions above).
DOMAIN_NAMES_ZH = {code: words["zh"] for code, words in TERMS["domain"].items()}
VERDICT_ZH = {code: words["zh"] for code, words in TERMS["verdict"].items()}


def domain_label_zh(domain: str) -> str:
    return domain_label(domain, "zh")


def level_label_zh(plan: Plan, domain: str, level: str) -> str:
    return level_label(plan, domain, level, "zh")


def indicator_names_zh(plan: Plan) -> dict[str, str]:
    return indicator_names(plan, "zh")
