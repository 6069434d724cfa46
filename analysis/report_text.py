"""Sentences of the report filled from results, and recommendations derived by rules over them.

Every function takes results as saved in data/processed (dicts and tables), so
the wording can be tested without running the pipeline. Chinese is the
default language; English is offered for the same sentences. The thresholds
of the rules are arguments (the report passes the plan's `report:` values).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .report_format import interval, pct, prob
from .settings import DEFAULT_GROUP_FAR_BEHIND, DEFAULT_P_LIKELY_BELOW, DEFAULT_P_TARGET_SECURED
from .verdict import (
    HEADLINE_INDICATOR,
    Thresholds,
    headline_probability,
    is_forecast,
    secured,
    verdict_label,
)
from .vocabulary import TERMS, capitalise, check_lang, join, name, term

# defaults of the rules' thresholds (the report passes the plan's `report:` values)
P_LIKELY_BELOW = DEFAULT_P_LIKELY_BELOW
P_TARGET_SECURED = DEFAULT_P_TARGET_SECURED
GROUP_FAR_BEHIND = DEFAULT_GROUP_FAR_BEHIND


def tr(lang: str, zh: str, en: str) -> str:
    """The one language switch of the report: Chinese unless lang is 'en'."""
    check_lang(lang)
    return zh if lang == "zh" else en


COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
COMPARE_SIGN = {">": "＞", ">=": "≥", "<": "＜", "<=": "≤"}
COMPARE_SIGN_EN = {">": ">", ">=": "≥", "<": "<", "<=": "≤"}

# An imbalance verdict as the predicate of an English clause ("differences between divisions have widened clearly").
_VERDICT_CLAUSE_EN = {"improved": "have narrowed clearly", "worsened": "have widened clearly",
                      "no_clear_change": "show no clear change"}


def verdict_word(code: str, lang: str = "zh") -> str:
    """A verdict code as words ('worsened' -> '明显扩大' / 'widened clearly')."""
    if code not in TERMS["verdict"]:
        raise KeyError(f"unknown verdict code {code!r}; known: {sorted(TERMS['verdict'])}")
    return term("verdict", code, lang)


def _list(names: Iterable[str], lang: str) -> str:
    return join(names, lang)


def _name(item: dict[str, Any], lang: str) -> str:
    return name(item, lang)


def number_en(n: int) -> str:
    """Small counts in words, as English writes them at the start of a sentence ('six'); others as digits."""
    words = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    return words[n] if 0 <= n < len(words) else str(n)


def _pp(value: float) -> str:
    return f"{abs(value):.1f}"


def baseline_estimate(traj: dict[str, Any]) -> float | None:
    """The survey estimate of the baseline year: what change_since_baseline_pp is measured from."""
    for o in traj.get("observed", []):
        if int(o["year"]) == int(traj["baseline_year"]):
            return float(o["estimate"])
    dec = traj.get("decomposition") or {}
    if dec.get("start_year") == traj["baseline_year"] and "start_share" in dec:
        return float(dec["start_share"])
    return None


def interval_clause(lo: float, hi: float, ref: float, lang: str = "zh", noun_zh: str = "该值") -> str:
    """Whether the interval includes a reference value: '但置信区间包含该值' / '置信区间整体低于该值'."""
    if lo <= ref <= hi:
        return tr(lang, f"但置信区间包含{noun_zh}", "but the interval includes it")
    if hi < ref:
        return tr(lang, f"置信区间整体低于{noun_zh}", "and the whole interval lies below it")
    return tr(lang, f"置信区间整体高于{noun_zh}", "and the whole interval lies above it")


def headline(traj: dict[str, Any], city_name: str, lang: str = "zh") -> str:
    """The latest rate with its interval, the change since the baseline, and the comparison due this year.

    Before the target year the comparison is with the plan's implied path for
    the latest year; from the target year on, with the target itself.
    """
    y, est = traj["latest_year"], traj["latest_estimate"]
    lo, hi = traj["latest_ci"]
    by = traj["baseline_year"]
    change = traj["change_since_baseline_pp"]
    base_est = baseline_estimate(traj)
    published = traj["baseline"]
    flat = round(abs(change), 1) == 0
    if base_est is not None:
        ref_zh, ref_en = f"{by}年调查估计 {pct(base_est)}", f"the {by} survey estimate of {pct(base_est)}"
        note_zh = f"（规划基线 {pct(published)}）"
        note_en = f" (the plan's published baseline is {pct(published)})"
    else:
        ref_zh, ref_en = f"{by}年规划基线 {pct(published)}", f"the plan's {by} baseline of {pct(published)}"
        note_zh = note_en = ""
    if flat:
        change_zh, change_en = f"与{ref_zh}持平{note_zh}", f"level with {ref_en}{note_en}"
    else:
        change_zh = f"比{ref_zh} {'提高' if change > 0 else '下降'} {_pp(change)} 个百分点{note_zh}"
        change_en = f"{_pp(change)} points {'up' if change > 0 else 'down'} on {ref_en}{note_en}"
    zh = (f"{y}年，{city_name}公民具备科学素质的比例估计为 {pct(est)}（95%置信区间 {interval(lo, hi)}），"
          f"{change_zh}；")
    en = (f"In {y} the share of citizens of {city_name} with scientific literacy is estimated at {pct(est)} "
          f"(95% CI {interval(lo, hi)}), {change_en}; ")
    ty, target = traj["target_year"], traj["target"]
    implied = (traj.get("implied_path") or {}).get(str(y))
    if y < ty and implied is not None:
        gap = round(est, 1) - round(implied, 1)  # from the values shown, so the sentence's arithmetic holds
        side_zh, side_en = ("高于", "above") if gap > 0 else ("低于", "below")
        zh += (f"按规划隐含路径，{y}年应达到 {pct(implied)}，点估计{side_zh}该值 {_pp(gap)} 个百分点，"
               f"{interval_clause(lo, hi, implied, 'zh')}（{ty}年目标为超过 {pct(target)}）。")
        en += (f"the plan's implied path calls for {pct(implied)} in {y}; the point estimate is {_pp(gap)} points "
               f"{side_en} it, {interval_clause(lo, hi, implied, 'en')} (the {ty} target is above {pct(target)}).")
    elif y < ty:
        zh += f"距{ty}年目标（超过 {pct(target)}）还差 {_pp(round(target, 1) - round(est, 1))} 个百分点。"
        en += f"{_pp(round(target, 1) - round(est, 1))} points short of the {ty} target of above {pct(target)}."
    else:
        side_zh, side_en = ("高于", "above") if est > target else ("低于", "below")
        zh += f"点估计{side_zh}规划目标 {pct(target)}，{interval_clause(lo, hi, target, 'zh', '目标值')}。"
        en += f"the point estimate is {side_en} the target of {pct(target)}, {interval_clause(lo, hi, target, 'en')}."
    return tr(lang, zh, en)


def probability_basis(traj: dict[str, Any], lang: str = "zh") -> str:
    """What the headline probability assumes, said once ('依据2025年调查的直接估计……')."""
    h = traj.get("headline") or {}
    ty = traj["target_year"]
    dist_zh = "t分布（自由度与置信区间相同）" if h.get("df") else "正态分布"
    dist_en = "t distribution on the interval's degrees of freedom" if h.get("df") else "normal distribution"
    if is_forecast(traj):
        model_zh, model_en = (term("model_short", h.get("model") or traj["model_chosen"], lg) for lg in ("zh", "en"))
        return tr(lang, f"依据所选趋势模型（{model_zh}）对{ty}年的预测分布计算",
                  f"from the predictive distribution of the chosen trend model ({model_en}) for {ty}")
    return tr(lang, f"依据{ty}年调查的直接估计，在logit尺度上按{dist_zh}计算",
              f"from the {ty} survey's direct estimate, on the logit scale with a {dist_en}")


def target_sentence(traj: dict[str, Any], lang: str = "zh", thresholds: Thresholds | None = None) -> str:
    """The one headline probability with its basis, and the verdict it grades to (analysis/verdict.py)."""
    p = headline_probability(traj)
    ty = traj["target_year"]
    lo, hi = traj["forecast_interval"]
    reached = traj.get("year_target_reached")
    word = {lg: verdict_label(traj, lg, thresholds) for lg in ("zh", "en")}
    model_zh, model_en = (term("model_short", traj["model_chosen"], lg) for lg in ("zh", "en"))
    if not is_forecast(traj):
        zh = (f"{ty}年真实比例超过目标 {pct(traj['target'])} 的概率为 {prob(p)}（{probability_basis(traj, 'zh')}），"
              f"据此判断，{ty}年目标{word['zh']}。"
              f"趋势模型（{model_zh}）给出的{ty}年拟合值为 {pct(traj['forecast'])}（{interval(lo, hi)}）。")
        en = (f"The probability that the true share in {ty} exceeds the target of {pct(traj['target'])} is {prob(p)} "
              f"({probability_basis(traj, 'en')}); on this evidence the {ty} target is {word['en']}. "
              f"The trend model ({model_en}) gives a fitted value of {pct(traj['forecast'])} for {ty} "
              f"({interval(lo, hi)}).")
    else:
        zh = (f"按当前趋势（{model_zh}），预计{ty}年为 {pct(traj['forecast'])}（{interval(lo, hi)}），"
              f"超过目标 {pct(traj['target'])} 的概率为 {prob(p)}，据此判断，{ty}年目标{word['zh']}。")
        en = (f"On the current trend ({model_en}), {ty} is forecast at {pct(traj['forecast'])} "
              f"({interval(lo, hi)}); the probability of exceeding the target of {pct(traj['target'])} is {prob(p)}, "
              f"so the {ty} target is {word['en']}.")
    if reached:
        zh += f"按拟合趋势，{reached}年达到目标。"
        en += f" On the fitted trend the target is reached in {reached}."
    else:
        zh += "按拟合趋势，预测期内达不到目标。"
        en += " On the fitted trend the target is not reached within the forecast horizon."
    return tr(lang, zh, en)


def summary_points(traj: dict[str, Any], county: dict[str, Any], progress: dict[str, Any],
                   estimates: pd.DataFrame, key_groups: list[dict[str, Any]], city_name: str, lang: str = "zh",
                   thresholds: Thresholds | None = None) -> list[str]:
    """The summary's numbered findings, with the one verdict on the target (items 2 and 5 agree)."""
    verdict = {lg: verdict_label(traj, lg, thresholds) for lg in ("zh", "en")}
    return [headline(traj, city_name, lang), target_sentence(traj, lang, thresholds),
            division_sentence(county, lang), group_sentence(estimates, traj["latest_year"], key_groups, lang),
            progress_sentence(progress, lang, verdict)]


def benchmark_sentence(traj: dict[str, Any], province: dict[str, str], lang: str = "zh") -> str:
    """The city set against the latest published national and provincial shares and their targets, in words.

    `province` = {"zh": .., "en": ..}; figures come from trajectory.json benchmarks (published, no standard error).
    """
    b = traj.get("benchmarks") or {}
    y, est = traj["latest_year"], traj["latest_estimate"]
    ty = traj["target_year"]
    targets = b.get("targets") or {}
    scope = b.get("province_scope")
    parts_zh, parts_en = [], []
    # (key in the benchmarks, target scope, zh name, zh target word, en subject, en target word)
    for key, target_scope, name_zh, level_zh, subject_en, level_en in (
            ("national", "national", "全国", "全国", "the national share published", "national"),
            ("province", scope, province["zh"], "全省", f"{province['en']}'s published share", "provincial")):
        if b.get(f"{key}_latest") is None:
            continue
        year, value, target = b[f"{key}_latest_year"], pct(b[f"{key}_latest"]), targets.get(f"{target_scope}_{ty}")
        parts_zh.append(f"{name_zh}{year}年公布的比例为 {value}"
                        + (f"（{level_zh}{ty}年目标 {pct(target)}）" if target is not None else ""))
        parts_en.append(f"{subject_en} for {year} is {value}"
                        + (f" ({level_en} {ty} target {pct(target)})" if target is not None else ""))
    if not parts_zh:
        return ""
    zh = f"作为比较，{'；'.join(parts_zh)}。全市{y}年估计为 {pct(est)}"
    en = f"For comparison, {'; '.join(parts_en)}. The city's {y} estimate is {pct(est)}"
    gap = b.get("city_minus_national_latest_common_pp")
    if gap is not None and round(abs(gap), 1) > 0:
        zh += f"，在与全国均有数据的最近年份{'高于' if gap > 0 else '低于'}全国 {_pp(gap)} 个百分点"
        en += f"; in the latest year with both figures it is {_pp(gap)} points {'above' if gap > 0 else 'below'} the nation"
    elif gap is not None:
        zh += "，在与全国均有数据的最近年份与全国持平"
        en += "; in the latest year with both figures it is level with the nation"
    return tr(lang, zh + "（公布值无抽样误差信息，比较仅供参考）。",
              en + " (published figures carry no sampling error, so the comparison is indicative only).")


# The plan's safeguards (保障条件) and whether the units' returns carry data on them: facilities are read from the
# numeric indicators on science museums and bases, participation from the returns themselves; funding, staff,
# the joint-meeting system and the divisions' own implementation plans are not asked for in the returns.
SAFEGUARDS = ("funding", "staff", "facilities", "participation", "joint_meeting", "division_plans")
_SAFEGUARD_NAMES = {
    "funding": ("经费投入", "Funding"), "staff": ("科普人才队伍", "Staff"), "facilities": ("科普设施", "Facilities"),
    "participation": ("部门参与和报送", "Participation of the units"),
    "joint_meeting": ("科普工作联席会议制度", "Joint-meeting system"),
    "division_plans": ("各县（市、区）实施方案", "Divisions' own implementation plans"),
}
FACILITY_INDICATORS = ("divisions_with_museum_share", "bases_national", "bases_provincial", "bases_municipal")


def safeguards(progress: dict[str, Any], lang: str = "zh") -> list[tuple[str, str]]:
    """(safeguard, what the returns show) for each of the plan's safeguards; says plainly where no data exist."""
    no_data = tr(lang, "部门报表未采集此项，无数据，本次无法评估；建议下一周期报表增设相应栏目。",
                 "The returns do not ask for it, so there are no data and it cannot be assessed; the next period's "
                 "returns should ask for it.")
    ry = progress["report_year"]
    out = []
    for key in SAFEGUARDS:
        name = tr(lang, *_SAFEGUARD_NAMES[key])
        if key == "facilities":
            items = [i for i in progress.get("indicators", []) if i.get("id") in FACILITY_INDICATORS]
            if not items:
                out.append((name, no_data))
                continue
            met = [i for i in items if i["status"] == "met"]
            parts = [indicator_detail(i, ry, lang) for i in items]
            out.append((name, tr(lang, f"据部门报表的设施类指标，{len(items)} 项中 {len(met)} 项达标：{'；'.join(parts)}。",
                                 f"From the facility indicators in the returns, {len(met)} of {len(items)} met the "
                                 f"target: {'; '.join(parts)}.")))
        elif key == "participation":
            r = progress.get("returns") or {}
            got, expected = len(r.get("units_returned") or []), len(r.get("units_expected") or [])
            errors = (progress.get("problems") or {}).get("errors", 0)
            out.append((name, tr(lang, f"应报送进展报表的牵头单位 {expected} 个，实际报送 {got} 个；报表中填报错误 {errors} 处。",
                                 f"{got} of the {expected} lead units expected returned their progress reports; the "
                                 f"returns contain {errors} {'error' if errors == 1 else 'errors'}.")))
        else:
            out.append((name, no_data))
    return out


def imbalance_summary(imbalance: dict[str, Any], lang: str = "zh") -> str:
    """The verdicts of county_gaps.json imbalance_improved.by as words.

    Chinese: '县（市、区）差异明显扩大；城乡差异无明显变化'. English groups the units by
    verdict: 'differences between divisions have widened clearly; those between
    urban and rural areas and between men and women show no clear change'.
    """
    by = imbalance.get("by") or {}
    if lang == "zh":
        return "；".join(f"{term('unit', k, lang, default=k)}差异{verdict_word(v, lang)}" for k, v in by.items())
    units_by_verdict: dict[str, list[str]] = {}
    for unit, verdict in by.items():
        verdict_word(verdict, lang)
        units_by_verdict.setdefault(verdict, []).append(term("unit", unit, lang, default=unit.replace("_", " ")))
    clauses = [f"{'differences' if i == 0 else 'those'} {join((f'between {u}' for u in units), lang)} "
               f"{_VERDICT_CLAUSE_EN[v]}" for i, (v, units) in enumerate(units_by_verdict.items())]
    return "; ".join(clauses)


def likely_below(county: dict[str, Any]) -> tuple[float, list[dict[str, Any]]]:
    """Stage 04's threshold and its divisions "very likely below target" (not recomputed here)."""
    missing = [k for k in ("p_likely_below", "divisions_likely_below_target") if k not in county]
    if missing:
        raise KeyError(f"county_gaps.json ({county.get('year', '?')}) has no {', '.join(missing)}: it was written by "
                       f"an older stage 04; rerun notebooks/04_county_gaps.ipynb for that year")
    return float(county["p_likely_below"]), list(county["divisions_likely_below_target"])


def yardstick(county: dict[str, Any], lang: str = "zh") -> str:
    """Before the target year, which target the divisions are measured against ('以2025年目标 16.0% 衡量，')."""
    year, ty = county.get("year"), county.get("target_year")
    if year is None or ty is None or int(year) >= int(ty):
        return ""
    return tr(lang, f"以{ty}年目标 {pct(county['target'])} 衡量，", f"measured against the {ty} target of "
              f"{pct(county['target'])}, ")


def divisions_below(county: dict[str, Any]) -> list[dict[str, Any]]:
    """Divisions whose model estimate is below the target, largest gap first."""
    below = [d for d in county.get("divisions_below_target", []) if d["gap_to_target"] < 0]
    return sorted(below, key=lambda d: d["gap_to_target"])


def division_sentence(county: dict[str, Any], lang: str = "zh", n_largest: int = 3) -> str:
    """How many divisions are below target, how many very likely so (stage 04's call), the largest gaps, the imbalance.

    Before the target year the sentence says the yardstick is the final target.
    """
    if county.get("divisions_status", "fitted") != "fitted":  # e.g. a city without county-level divisions
        return term("divisions_status", county["divisions_status"], lang)
    p_likely_below, likely = likely_below(county)
    below = divisions_below(county)
    ys = yardstick(county, lang)
    target = county.get("target")
    first = (county.get("inequality") or {}).get("first_year")
    imb = imbalance_summary(county.get("imbalance_improved") or {}, lang)
    since_zh = f"与{first}年相比" if first else "与规划期初相比"
    since_en = f"Since {first}" if first else "Since the start of the plan"
    tail = tr(lang, f"{since_zh}，{imb}。" if imb else "", f" {since_en}, {imb}." if imb else "")
    if not below:
        return tr(lang, f"{ys}所有县（市、区）的模型估计均达到目标（{pct(target)}）。",
                  f"{ys[:1].upper()}{ys[1:]}every division's model estimate reaches the target ({pct(target)}).") + tail
    names = [f"{_name(g, lang)}（{pct(g['benchmarked'])}）" if lang == "zh"
             else f"{_name(g, lang)} ({pct(g['benchmarked'])})" for g in below[:n_largest]]
    return tr(
        lang,
        f"{ys}{len(below)}个县（市、区）的小区域估计低于{'该目标' if ys else f'目标 {pct(target)}'}，"
        f"其中{len(likely)}个低于目标的概率在 {p_likely_below:.0%} 及以上；差距最大的是{_list(names, lang)}。",
        f"{ys[:1].upper()}{ys[1:]}{len(below) if ys else capitalise(number_en(len(below)))} "
        f"{'division is' if len(below) == 1 else 'divisions are'} below "
        f"{'it' if ys else f'the target of {pct(target)}'} on the small-area estimates, "
        f"{'all' if likely and len(likely) == len(below) else len(likely)} of them with a probability of "
        f"{p_likely_below:.0%} or more. The largest gaps are in "
        f"{_list(names, lang)}.",
    ) + tail


def group_sentence(estimates: pd.DataFrame, year: int, key_groups: list[dict[str, Any]], lang: str = "zh") -> str:
    e = estimates[(estimates.year == year) & (estimates.domain == "key_group") & (estimates.indicator == "literate")]
    shown, hidden = [], []
    for g in key_groups:
        row = e[e.level == g["id"]]
        if row.empty or bool(row.iloc[0]["suppressed"]):
            hidden.append(_name(g, lang))
        else:
            shown.append(f"{_name(g, lang)} {pct(row.iloc[0]['estimate'])}" if lang == "zh"
                         else f"{_name(g, lang)} ({pct(row.iloc[0]['estimate'])})")
    text = tr(lang, f"{year}年重点人群中，{_list(shown, lang)}。" if shown else "",
              f"In {year} the shares of the key groups were: {_list(shown, lang)}." if shown else "")
    if hidden:
        verb = "is" if len(hidden) == 1 else "are"
        text += tr(lang, f"{_list(hidden, lang)}样本量不足或估计不稳定，按精度要求不予发布。",
                   f"{' ' if text else ''}The estimate for {_list(hidden, lang)} {verb} not published "
                   f"(too few respondents or too unstable).")
    return text


def _unit_en(unit: str) -> str:
    """English words for the plan's count unit; an unlisted non-ASCII unit is left out of English sentences."""
    return term("unit_of_count", unit, "en", default=unit if unit.isascii() else "")


def _value(v: float, unit: str, lang: str = "zh") -> str:
    """A value with its unit; per-year units show the count only ('335人' for 人/年, '335 people' in English)."""
    if unit == "percent":
        return pct(v)
    if lang == "en":
        word = _unit_en(unit).removesuffix(" a year")
        return f"{round(v, 2):g}" + (f" {word}" if word else "")
    return f"{round(v, 2):g}{unit.split('/')[0]}"


def years_missed(indicator: dict[str, Any], report_year: int | None = None) -> list[int]:
    """Years (up to report_year) whose value fails the indicator's comparison with its target."""
    ok = COMPARE[indicator["comparison"]]
    return sorted(int(y) for y, v in (indicator.get("values_by_year") or {}).items()
                  if v is not None and (report_year is None or int(y) <= report_year)
                  and not ok(v, indicator["target"]))


def indicator_detail(indicator: dict[str, Any], report_year: int | None = None, lang: str = "zh") -> str:
    """'每年培训科技辅导员（目标≥350人/年；2021年335、2022年344未达标）' and the like."""
    i = indicator
    unit = i.get("unit") or ""
    signs = COMPARE_SIGN if lang == "zh" else COMPARE_SIGN_EN
    goal = f"{signs.get(i['comparison'], i['comparison'])}" + (
        pct(i["target"]) if unit == "percent" else f"{i['target']:g}{unit}" if lang == "zh"
        else f"{i['target']:g}" + (f" {_unit_en(unit)}" if _unit_en(unit) else ""))
    name = _name(i, lang)
    if i.get("deadline") == "every_year":
        vals = i.get("values_by_year") or {}
        missed = years_missed(i, report_year)
        if missed:
            years = _list([f"{y}年{_value(vals[str(y)], unit)}" if lang == "zh"
                           else f"{y} ({_value(vals[str(y)], unit, lang)})" for y in missed], lang)
            return tr(lang, f"{name}（目标每年{goal}；{years}未达标）",
                      f"{name} (target {goal}{_every_year_en(unit)}; missed in {years})")
        if i.get("years_missed"):
            return tr(lang, f"{name}（目标每年{goal}；{i['years_missed']}个年度未达标）",
                      f"{name} (target {goal}{_every_year_en(unit)}; missed in {i['years_missed']} years)")
    if i.get("value") is None:
        return tr(lang, f"{name}（目标{goal}；无数据）", f"{name} (target {goal}; no data)")
    vy = i.get("value_year")
    at_zh, at_en = (f"{vy}年", f" in {vy}") if vy else ("", "")
    return tr(lang, f"{name}（{at_zh}{_value(i['value'], unit)}，目标{goal}）",
              f"{name} ({_value(i['value'], unit, lang)}{at_en}; target {goal})")


def _every_year_en(unit: str) -> str:
    return "" if _unit_en(unit).endswith(" a year") else " every year"


def _since_en(county: dict[str, Any]) -> str:
    first = (county.get("inequality") or {}).get("first_year")
    return f"since {first}" if first else "since the start of the plan"


def _status_counts(indicators: list[dict[str, Any]]) -> dict[str, int]:
    counts = {"met": 0, "missed": 0, "not_due": 0, "no_data": 0}
    for i in indicators:
        counts[i["status"]] = counts.get(i["status"], 0) + 1
    return counts


def progress_sentence(progress: dict[str, Any], lang: str = "zh", verdict: dict[str, str] | None = None) -> str:
    """Measures completed and overdue; indicators met, missed (with the years or values), not yet due, without data.

    With `verdict` ({"zh": .., "en": ..}, from analysis/verdict.py) the headline indicator is reported by that
    verdict, not counted as met or missed by its point estimate, so the sentence agrees with the summary.
    """
    ind = progress["indicators"]
    head = [i for i in ind if i.get("id") == HEADLINE_INDICATOR and i.get("status") in ("met", "missed")]
    if verdict and head:
        ind = [i for i in ind if i not in head]
    ry = progress["report_year"]
    c = _status_counts(ind)
    n_over, total = progress["overdue_count"], progress["measures_total"]
    due = progress.get("measures_due", total)
    share = progress.get("completed_share")
    share_zh = f"（占到期措施的 {pct(share)}）" if share is not None and due < total else \
        f"（{pct(share)}）" if share is not None else ""
    share_en = (f" ({pct(share)} of those due)" if due < total else f" ({pct(share)})") if share is not None else ""
    zh = (f"方案附件 {total} 项具体措施中，截至{ry}年底"
          + (f"已到期 {due} 项，其中" if due < total else "")
          + f"已完成 {progress['measures_completed']} 项{share_zh}，逾期未完成 {n_over} 项。")
    en = (f"Of the {total} measures in the plan's annex, "
          + (f"{due} were due by the end of {ry}; {progress['measures_completed']}{share_en} of them were "
             f"completed" if due < total else
             f"{progress['measures_completed']}{share_en} were completed by the end of {ry}")
          + f" and {n_over} {'is' if n_over == 1 else 'are'} overdue.")
    if verdict and head:
        zh += f"{_name(head[0], 'zh')}的评估结论为：目标{verdict['zh']}。"
        en += f" For the {_name(head[0], 'en')}, the target is {verdict['en']}."
    if not ind:
        return tr(lang, zh, en)
    missed = [indicator_detail(i, ry, lang) for i in ind if i["status"] == "missed"]
    parts_zh, parts_en = [], []
    if c["met"]:
        parts_zh.append(f"达标 {c['met']} 项")
        parts_en.append(f"{c['met']} met the target")
    if c["missed"]:
        parts_zh.append(f"未达标 {c['missed']} 项：{'；'.join(missed)}")
        parts_en.append(f"{c['missed']} missed it")
    if c["not_due"]:
        parts_zh.append(f"尚未到考核年份 {c['not_due']} 项")
        parts_en.append(f"{c['not_due']} {'is' if c['not_due'] == 1 else 'are'} not yet due")
    if c["no_data"]:
        parts_zh.append(f"暂无数据 {c['no_data']} 项")
        parts_en.append(f"{c['no_data']} {'has' if c['no_data'] == 1 else 'have'} no data")
    zh += ("其余" if verdict and head else "") + f"{len(ind)} 项量化指标中，" + "；".join(parts_zh) + "。"
    en += f" Of the {'other ' if verdict and head else ''}{len(ind)} numeric indicators, " + join(parts_en, "en") + "."
    if missed:
        en += f" The {'indicator' if len(missed) == 1 else 'indicators'} missed: " + "; ".join(missed) + "."
    return tr(lang, zh, en)


def decomposition_sentence(dec: dict[str, Any], lang: str = "zh") -> str:
    """The composition/within split of the change, with the caveat when weighting fixes the margins."""
    if "total_change_pp" not in dec:
        why = term("decomposition_error", dec.get("error", "microdata_missing"), lang)
        return tr(lang, f"{dec.get('start_year')}—{dec.get('end_year')}年：{why}。",
                  f"From {dec.get('start_year')} to {dec.get('end_year')}, {why}.")
    fixed = [f for f in dec.get("factors_fixed_by_weighting", [])
             if abs((dec.get("margin_shift") or {}).get(f, 0.0)) < 1e-9]
    zh = (f"{dec['start_year']}—{dec['end_year']}年全市比例变化 {dec['total_change_pp']:.2f} 个百分点，"
          f"其中人口构成变化贡献 {dec['composition_pp']:.2f} 个百分点，组内提高贡献 {dec['within_pp']:.2f} 个百分点"
          f"（方法：{term('decomposition_method', dec.get('method'), 'zh', default=dec.get('method_zh', '—'))}）。")
    en = (f"From {dec['start_year']} to {dec['end_year']} the city share changed by {dec['total_change_pp']:.2f} "
          f"points, {dec['composition_pp']:.2f} of them from the changing make-up of the population and "
          f"{dec['within_pp']:.2f} from gains within groups.")
    if fixed:
        factors = {lg: join((term("factor", f, lg, default=f) for f in fixed), lg) for lg in ("zh", "en")}
        zh += (f"由于各年加权使用同一套人口边际，{factors['zh']}的边际分布各年相同，"
               f"构成部分只反映{term('factor', 'joint', 'zh')}的变化，不应解读为这些因素本身变化的贡献。")
        en += (f" Every year is weighted to the same census margins, so {factors['en']} do not change between "
               f"years. The composition part therefore reflects only {term('factor', 'joint', 'en')}, not a shift "
               f"in these factors themselves.")
    return tr(lang, zh, en)


def package_versions(manifests: list[dict[str, Any]], lang: str = "zh") -> dict[str, dict[str, list[str]]]:
    """Package -> version -> the stages (with their year folder) that ran with it."""
    out: dict[str, dict[str, list[str]]] = {}
    for m in manifests:
        where = (tr(lang, f"{m['stage']}（{m['year_dir']}）", f"{m['stage']} ({m['year_dir']})")
                 if "year_dir" in m else m["stage"])
        for pkg, ver in (m.get("packages") or {}).items():
            out.setdefault(pkg, {}).setdefault(str(ver), []).append(where)
    return out


def packages_sentence(manifests: list[dict[str, Any]], lang: str = "zh") -> str:
    """Software versions over every stage's manifest, saying where they differ."""
    versions = package_versions(manifests, lang)
    if not versions:
        return tr(lang, "各阶段清单未记录软件版本。", "The stage manifests record no package versions.")
    same = {p: next(iter(v)) for p, v in versions.items() if len(v) == 1}
    differ = {p: v for p, v in versions.items() if len(v) > 1}
    zh = "主要软件版本：" + "，".join(f"{p} {v}" for p, v in same.items())
    en = "The stages ran with " + join((f"{p} {v}" for p, v in same.items()), "en")
    if differ:
        zh += ("。各阶段所用版本不一致的有：" + "；".join(
            f"{p} " + " / ".join(f"{v}（{'、'.join(w)}）" for v, w in vs.items()) for p, vs in differ.items()))
        en += (". Versions differ between stages for " + "; ".join(
            f"{p} " + " / ".join(f"{v} ({', '.join(w)})" for v, w in vs.items()) for p, vs in differ.items()))
    else:
        zh += f"（{len(manifests)} 份阶段清单一致）"
        en += f" (the same in all {len(manifests)} stage manifests)"
    return tr(lang, zh + "。", en + ".")


@dataclass(frozen=True)
class Finding:
    rule: str
    finding: str
    recommendation: str


def recommendation_rules(lang: str = "zh", p_likely_below: float = P_LIKELY_BELOW,
                         p_target_secured: float = P_TARGET_SECURED,
                         group_far_behind: float = GROUP_FAR_BEHIND) -> list[tuple[str, str]]:
    """(rule id, when it fires) for every rule of `recommendations`, with the thresholds in use."""
    rules = [
        ("target_not_secured",
         f"全市比例超过目标的概率（标题概率）低于 {p_target_secured:.0%}，即评估结论不是“已达到”或“很可能达到”"
         f"（目标年份以当年调查的直接估计计算，此前以趋势模型预测计算）",
         f"the probability that the city share exceeds the target (the headline probability) is below "
         f"{p_target_secured:.0%}, so the verdict is neither achieved nor very likely achieved (from the "
         f"target year's direct estimate, before it from the trend forecast)"),
        ("divisions_behind", f"某县（市、区）模型估计低于目标的概率在 {p_likely_below:.0%} 及以上",
         f"a division's model estimate is below the target with probability {p_likely_below:.0%} or more"),
        ("imbalance_not_improved", "县（市、区）间差异（人口加权平均绝对差距）自基线年以来未明显缩小"
         "（Holm校正后的p值不小于0.05）",
         "the differences between divisions (population-weighted mean absolute gap) have not narrowed clearly "
         "since the baseline year (Holm-adjusted p-value of 0.05 or more)"),
        ("groups_far_behind", f"重点人群比例低于全市比例的 {group_far_behind:.0%}",
         f"a key group's share is below {group_far_behind:.0%} of the city share"),
        ("groups_unmeasured", "重点人群估计因样本量或变异系数未达发布标准而不予发布（精度规则）",
         "a key group's estimate is suppressed (too few respondents or too large a CV)"),
        ("overdue_measures", "有措施逾期未完成", "a measure is overdue"),
        ("indicators_missed", "有量化指标在考核年份未达标（每年考核的指标任一年未达标即计）",
         "a numeric indicator is missed in a year it is due (for yearly indicators, any year)"),
        ("returns_with_errors", "部门报表有填报错误", "a department's return has errors"),
    ]
    return [(rule, tr(lang, zh, en)) for rule, zh, en in rules]


def recommendations(traj: dict[str, Any], county: dict[str, Any], progress: dict[str, Any],
                    estimates: pd.DataFrame, key_groups: list[dict[str, Any]],
                    lang: str = "zh", p_target_secured: float = P_TARGET_SECURED,
                    group_far_behind: float = GROUP_FAR_BEHIND, thresholds: Thresholds | None = None
                    ) -> list[Finding]:
    """Findings with recommendations, each produced by a named rule over the results.

    The finding on the target uses the one verdict (analysis/verdict.py; `thresholds`, or the defaults with
    `p_target_secured` as the 'very likely achieved' cut-off); the headline indicator is not listed again
    among the missed indicators.

    Which divisions are very likely below target is stage 04's call (county_gaps.json).
    """
    t = thresholds or Thresholds(likely_achieved=p_target_secured)
    return [*_target_findings(traj, lang, t), *_division_findings(county, lang),
            *_group_findings(traj["latest_year"], estimates, key_groups, lang, group_far_behind),
            *_progress_findings(progress, lang)]


def _target_findings(traj: dict[str, Any], lang: str, thresholds: Thresholds) -> list[Finding]:
    """One finding when the target is not (very likely) achieved, worded by the one verdict."""
    if secured(traj, thresholds):
        return []
    target, ty = traj["target"], traj["target_year"]
    p = headline_probability(traj)
    word = verdict_label(traj, lang, thresholds)
    if not is_forecast(traj):
        lo, hi = traj["latest_ci"]
        return [Finding(
            "target_not_secured",
            tr(lang, f"{ty}年全市公民具备科学素质的比例估计为 {pct(traj['latest_estimate'])}（95%置信区间 "
                     f"{interval(lo, hi)}），超过目标 {pct(target)} 的概率为 {prob(p)}，目标{word}。",
               f"The city's share in {ty} is estimated at {pct(traj['latest_estimate'])} (95% CI "
               f"{interval(lo, hi)}); the probability that it exceeds the target of {pct(target)} is {prob(p)}, "
               f"so the target is {word}."),
            tr(lang, f"建议在全市全民科学素质行动实施情况总结中如实反映目标完成情况，深入分析差距成因，"
                     f"将剩余差距纳入下一规划期（{ty + 1}—{ty + 5}年）的目标设定，并坚持开展年度监测。",
               f"We recommend that the summary of the plan's implementation state the outcome on the target as it "
               f"is, analyse the causes of the gap, carry the remaining gap into the targets of the next plan period "
               f"({ty + 1}–{ty + 5}) and keep monitoring the share every year."))]
    return [Finding(
        "target_not_secured",
        tr(lang, f"按当前趋势，{ty}年全市比例超过 {pct(target)} 的概率为 {prob(p)}，{ty}年目标{word}。",
           f"On the current trend, the probability that the city's share exceeds {pct(target)} in {ty} is "
           f"{prob(p)}, so the {ty} target is {word}."),
        tr(lang, "建议各牵头单位在剩余年份加快推进滞后措施，确保按期完成；下一年度监测重点检查全市比例是否回到规划隐含路径。",
           "We recommend that the lead units speed up the lagging measures in the remaining years, and that the "
           "next survey check whether the city is back on the plan's implied path."))]


def _division_findings(county: dict[str, Any], lang: str) -> list[Finding]:
    out: list[Finding] = []
    _, likely = likely_below(county)
    if likely:
        names = [tr(lang, f"{_name(d, lang)}（{pct(d['benchmarked'])}，低于目标概率 {prob(d['p_below_target'])}）",
                    f"{_name(d, lang)} ({pct(d['benchmarked'])}, below with probability "
                    f"{prob(d['p_below_target'])})") for d in likely]
        out.append(Finding(
            "divisions_behind",
            tr(lang, f"{yardstick(county, lang)}{_list(names, lang)}很可能低于目标。",
               f"{capitalise(_list(names, lang))} {'is' if len(names) == 1 else 'are'} very likely below the target"
               + (f" ({yardstick(county, lang).rstrip(', ')})." if yardstick(county, lang) else ".")),
            tr(lang, "建议在科普基础设施、流动科技馆和农村科普资源配置上向上述县（市、区）倾斜，并在下一轮调查中适当增加其样本量。",
               "We recommend that these divisions be given priority for science-popularisation facilities, mobile "
               "science museums and rural resources, and that their samples be enlarged in the next survey.")))
    imb = county.get("imbalance_improved") or {}
    if imb and not imb.get("divisions_improved", False):
        out.append(Finding(
            "imbalance_not_improved",
            tr(lang, f"规划要求各县（市、区）、各人群发展不均衡明显改善，但{imbalance_summary(imb, lang)}。",
               f"The plan calls for clearly smaller imbalances between divisions and groups, but "
               f"{_since_en(county)} {imbalance_summary(imb, lang)}."),
            tr(lang, "建议将缩小县（市、区）和人群间差距列入下一规划期的考核内容，推动科普资源向薄弱地区和人群倾斜。",
               "We recommend that the gaps between divisions and between groups become an assessed indicator of "
               "the next plan period, and that resources go first to the areas and groups that lag most.")))
    return out


def _group_findings(year: int, estimates: pd.DataFrame, key_groups: list[dict[str, Any]], lang: str,
                    group_far_behind: float) -> list[Finding]:
    out: list[Finding] = []
    city = estimates[(estimates.year == year) & (estimates.domain == "city") & (estimates.indicator == "literate")]
    city_est = float(city.iloc[0]["estimate"]) if len(city) else None
    kg = estimates[(estimates.year == year) & (estimates.domain == "key_group") & (estimates.indicator == "literate")]
    names_of = {g["id"]: _name(g, lang) for g in key_groups}
    suppressed = kg["suppressed"].astype(bool)
    if city_est:
        far = kg[(~suppressed) & (kg.estimate < group_far_behind * city_est)]
        if len(far):
            groups = [tr(lang, f"{names_of.get(r.level, r.level)}（{pct(r.estimate)}）",
                         f"{names_of.get(r.level, r.level)} ({pct(r.estimate)})") for r in far.itertuples()]
            out.append(Finding(
                "groups_far_behind",
                tr(lang, f"{_list(groups, lang)}低于全市水平（{pct(city_est)}）的 {group_far_behind:.0%}。",
                   f"{capitalise(_list(groups, lang))} {'is' if len(groups) == 1 else 'are'} below "
                   f"{group_far_behind:.0%} of the city level ({pct(city_est)})."),
                tr(lang, "建议相关提升行动的牵头单位针对上述人群制定专项措施，并定期报告覆盖人数和实施效果。",
                   "We recommend that the lead units of the matching actions set specific measures for these groups "
                   "and report their reach and effect regularly.")))
    hidden = kg[suppressed]
    if len(hidden):
        groups = [names_of.get(r.level, r.level) for r in hidden.itertuples()]
        out.append(Finding(
            "groups_unmeasured",
            tr(lang, f"{_list(groups, lang)}样本量不足，无法单独评估。",
               f"{capitalise(_list(groups, lang))} cannot be assessed separately because the sample is too small."),
            tr(lang, "建议下一轮调查对上述人群增补样本，使其估计达到发布标准。",
               "We recommend that the next survey boost these groups' samples so that their estimates can be "
               "published.")))
    return out


def _progress_findings(progress: dict[str, Any], lang: str) -> list[Finding]:
    out: list[Finding] = []
    if progress["overdue_count"]:
        out.append(Finding(
            "overdue_measures",
            tr(lang, f"{progress['overdue_count']} 项措施逾期未完成。",
               f"{capitalise(number_en(progress['overdue_count']))} "
               f"{'measure is' if progress['overdue_count'] == 1 else 'measures are'} overdue."),
            tr(lang, "建议由市科普工作联席会议办公室对逾期措施进行督办，牵头单位书面说明原因并明确完成时限。",
               "We recommend that the office of the joint meeting on science popularisation follow up the overdue "
               "measures, and that their lead units state the reasons in writing and set a date for completion.")))
    missed = [indicator_detail(i, progress["report_year"], lang) for i in progress["indicators"]
              if i["status"] == "missed" and i.get("id") != HEADLINE_INDICATOR]
    if missed:
        out.append(Finding(
            "indicators_missed",
            tr(lang, f"未达标指标：{'；'.join(missed)}。",
               f"{capitalise(number_en(len(missed)))} {'indicator' if len(missed) == 1 else 'indicators'} missed "
               f"the target: "
               f"{'; '.join(missed)}."),
            tr(lang, "建议对未达标指标逐项制定补齐措施，纳入下一年度工作计划。",
               "We recommend a catch-up plan for each missed indicator in next year's work plan.")))
    problems = progress.get("problems") or {}
    if problems.get("errors", 0):
        files = problems.get("files_with_errors", [])
        out.append(Finding(
            "returns_with_errors",
            tr(lang, f"{len(files)} 份进展报表共有 {problems['errors']} 处填报错误。",
               f"{capitalise(number_en(len(files)))} progress {'return has' if len(files) == 1 else 'returns have'} "
               f"{problems['errors']} {'error' if problems['errors'] == 1 else 'errors'}."),
            tr(lang, "建议相关单位按问题清单核实更正后重新报送。",
               "We recommend that the units check and correct the listed cells and resubmit their returns.")))
    return out
