"""Sentences of the report filled from results, and recommendations derived by rules over them.

Every function takes results as saved in data/processed (dicts and tables), so
the wording can be tested without running the pipeline. Chinese is the
default language; English is offered for the same sentences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from .report_format import interval, pct

P_LIKELY = 0.8       # probability above which a division is "very likely below target"
GROUP_FAR_BEHIND = 0.5  # a key group below this fraction of the city share is "far behind"


def _t(lang: str, zh: str, en: str) -> str:
    return zh if lang == "zh" else en


def _list(names: list[str], lang: str) -> str:
    return ("、" if lang == "zh" else ", ").join(names)


def headline(traj: dict[str, Any], city_name: str, lang: str = "zh") -> str:
    """The latest rate with its interval, against the baseline and the target."""
    y, est = traj["latest_year"], traj["latest_estimate"]
    lo, hi = traj["latest_ci"]
    change = traj["change_since_baseline_pp"]
    above = est > traj["target"]
    return _t(
        lang,
        f"{y}年，{city_name}公民具备科学素质的比例估计为 {pct(est)}（95%置信区间 {interval(lo, hi)}），"
        f"比{traj['baseline_year']}年基线 {pct(traj['baseline'])} {'提高' if change >= 0 else '下降'} "
        f"{abs(change):.1f} 个百分点，{'高于' if above else '低于'}规划目标 {pct(traj['target'])}。",
        f"In {y} the share of citizens with scientific literacy is estimated at {pct(est)} "
        f"(95% CI {interval(lo, hi)}), {abs(change):.1f} points {'up' if change >= 0 else 'down'} on the "
        f"{traj['baseline_year']} baseline of {pct(traj['baseline'])}, and {'above' if above else 'below'} "
        f"the target of {pct(traj['target'])}.",
    )


def target_sentence(traj: dict[str, Any], lang: str = "zh") -> str:
    """P(target) and the forecast, saying which basis the probability has."""
    p = traj["p_exceeds_target"]
    ty = traj["target_year"]
    lo, hi = traj["forecast_interval"]
    reached = traj.get("year_target_reached")
    observed = traj.get("target_year_observed", traj["latest_year"] >= ty)
    if observed:
        zh = (f"以{ty}年调查的直接估计计算，真实比例超过 {pct(traj['target'])} 的概率为 {p:.0%}；"
              f"趋势模型（{traj['model_chosen_label_zh']}）给出的{ty}年拟合值为 {pct(traj['forecast'])}"
              f"（{interval(lo, hi)}）。")
        en = (f"From the {ty} survey's direct estimate, the probability that the true share exceeds "
              f"{pct(traj['target'])} is {p:.0%}; the trend model puts {ty} at {pct(traj['forecast'])} "
              f"({interval(lo, hi)}).")
    else:
        zh = (f"按当前趋势（{traj['model_chosen_label_zh']}），预计{ty}年为 {pct(traj['forecast'])}"
              f"（{interval(lo, hi)}），超过目标的概率为 {p:.0%}。")
        en = (f"On the current trend, {ty} is forecast at {pct(traj['forecast'])} ({interval(lo, hi)}); "
              f"the probability of exceeding the target is {p:.0%}.")
    if reached:
        zh += f"按拟合趋势，{reached}年达到目标。"
        en += f" On the fitted trend the target is reached in {reached}."
    else:
        zh += "按拟合趋势，预测期内达不到目标。"
        en += " On the fitted trend the target is not reached within the forecast horizon."
    return _t(lang, zh, en)


def division_sentence(county: dict[str, Any], lang: str = "zh") -> str:
    below = county["divisions_below_target"]
    gaps = county["largest_gaps"]
    names = [f"{g['name_zh']}（{pct(g['benchmarked'])}）" for g in gaps]
    summary = county["imbalance_improved"]
    if not below:
        return _t(lang, "所有县（市、区）的模型估计均达到目标。", "Every division's model estimate reaches the target.")
    return _t(
        lang,
        f"{len(below)}个县（市、区）的小区域估计低于目标，差距最大的是{_list(names, lang)}；"
        f"与规划期初相比，{summary['summary_zh']}。",
        f"{len(below)} divisions are below the target on the small-area estimates; the largest gaps are in "
        f"{_list(names, lang)}. Between-division differences: {summary['by']['divisions']}.",
    )


def group_sentence(estimates: pd.DataFrame, year: int, key_groups: list[dict[str, Any]], lang: str = "zh") -> str:
    e = estimates[(estimates.year == year) & (estimates.domain == "key_group") & (estimates.indicator == "literate")]
    shown, hidden = [], []
    for g in key_groups:
        row = e[e.level == g["id"]]
        if row.empty or bool(row.iloc[0]["suppressed"]):
            hidden.append(g["name_zh"])
        else:
            shown.append(f"{g['name_zh']} {pct(row.iloc[0]['estimate'])}")
    text = _t(lang, f"{year}年重点人群中，{_list(shown, lang)}。" if shown else "",
              f"Key groups in {year}: {_list(shown, lang)}." if shown else "")
    if hidden:
        text += _t(lang, f"{_list(hidden, lang)}样本量不足或估计不稳定，按披露控制规则不予发布。",
                   f" {_list(hidden, lang)}: too few respondents or too unstable, suppressed.")
    return text


def progress_sentence(progress: dict[str, Any], lang: str = "zh") -> str:
    ind = progress["indicators"]
    met = [i["name_zh"] for i in ind if i["status"] == "met"]
    missed = [i["name_zh"] for i in ind if i["status"] == "missed"]
    zh = (f"方案附件 {progress['measures_total']} 项具体措施中，截至{progress['report_year']}年底已完成 "
          f"{progress['measures_completed']} 项（{pct(progress['completed_share'])}），逾期未完成 "
          f"{progress['overdue_count']} 项。{len(ind)} 项量化指标中达标 {len(met)} 项，未达标 {len(missed)} 项"
          + (f"（{_list(missed, lang)}）" if missed else "") + "。")
    en = (f"Of the annex's {progress['measures_total']} measures, {progress['measures_completed']} "
          f"({pct(progress['completed_share'])}) were completed by the end of {progress['report_year']}; "
          f"{progress['overdue_count']} are overdue. Of {len(ind)} numeric indicators {len(met)} are met and "
          f"{len(missed)} missed.")
    return _t(lang, zh, en)


@dataclass(frozen=True)
class Finding:
    rule: str
    finding: str
    recommendation: str


def recommendations(traj: dict[str, Any], county: dict[str, Any], progress: dict[str, Any],
                    estimates: pd.DataFrame, key_groups: list[dict[str, Any]],
                    lang: str = "zh") -> list[Finding]:
    """Findings with recommendations, each produced by a named rule over the results."""
    out: list[Finding] = []
    year, target = traj["latest_year"], traj["target"]
    p = traj["p_exceeds_target"]
    if p < 0.9:
        out.append(Finding(
            "target_not_secured",
            _t(lang, f"全市比例超过 {pct(target)} 的概率仅为 {p:.0%}，目标达成尚不能确认。",
               f"The probability that the city exceeds {pct(target)} is only {p:.0%}."),
            _t(lang, "在总结通报中如实说明目标达成的不确定性，并将剩余差距纳入下一周期目标设定与年度监测。",
               "State the uncertainty about the target in the summary and carry the remaining gap into the next "
               "period's targets and yearly monitoring.")))
    likely = [d for d in county["divisions_below_target"] if d["p_below_target"] >= P_LIKELY]
    if likely:
        names = [f"{d['name_zh']}（{pct(d['benchmarked'])}，低于目标概率 {d['p_below_target']:.0%}）" for d in likely]
        out.append(Finding(
            "divisions_behind",
            _t(lang, f"{_list(names, lang)}很可能低于目标。", f"{_list(names, lang)} are very likely below target."),
            _t(lang, "对上述县（市、区）优先安排科普基础设施、流动科技馆和农村科普资源，并在下一轮调查中适当增加样本。",
               "Give these divisions priority for science-popularisation facilities and rural resources, and "
               "enlarge their samples in the next survey.")))
    imb = county["imbalance_improved"]
    if not imb.get("divisions_improved", False):
        out.append(Finding(
            "imbalance_not_improved",
            _t(lang, f"规划要求各县（市、区）、各人群发展不均衡明显改善，但{imb['summary_zh']}。",
               f"The plan asks for markedly smaller imbalances, but: {imb['by']}."),
            _t(lang, "把缩小区县和人群差距作为下一阶段的考核指标，资源向低水平地区和人群倾斜。",
               "Make the gaps between divisions and groups an assessed indicator and direct resources to the "
               "lowest.")))
    city = estimates[(estimates.year == year) & (estimates.domain == "city") & (estimates.indicator == "literate")]
    city_est = float(city.iloc[0]["estimate"]) if len(city) else None
    kg = estimates[(estimates.year == year) & (estimates.domain == "key_group") & (estimates.indicator == "literate")]
    names = {g["id"]: g["name_zh"] for g in key_groups}
    if city_est:
        far = kg[(~kg.suppressed) & (kg.estimate < GROUP_FAR_BEHIND * city_est)]
        if len(far):
            groups = [f"{names.get(r.level, r.level)}（{pct(r.estimate)}）" for r in far.itertuples()]
            out.append(Finding(
                "groups_far_behind",
                _t(lang, f"{_list(groups, lang)}不足全市水平（{pct(city_est)}）的一半。",
                   f"{_list(groups, lang)} are below half the city level ({pct(city_est)})."),
                _t(lang, "相关提升行动的牵头单位针对这些人群制定专项措施，并报告覆盖人数与效果。",
                   "Lead units of the matching actions should set specific measures and report reach and effect.")))
    hidden = kg[kg.suppressed]
    if len(hidden):
        groups = [names.get(r.level, r.level) for r in hidden.itertuples()]
        out.append(Finding(
            "groups_unmeasured",
            _t(lang, f"{_list(groups, lang)}样本量不足，无法单独评估。", f"{_list(groups, lang)} cannot be assessed."),
            _t(lang, "下一轮调查对这些人群增补样本，使其估计达到发布标准。",
               "Boost these groups' samples in the next survey so that their estimates can be published.")))
    if progress["overdue_count"]:
        out.append(Finding(
            "overdue_measures",
            _t(lang, f"{progress['overdue_count']} 项措施逾期未完成。", f"{progress['overdue_count']} measures are overdue."),
            _t(lang, "由市科普工作联席会议办公室督办逾期措施，牵头单位说明原因和完成时限。",
               "The joint-meeting office should follow up overdue measures; lead units state causes and dates.")))
    missed = [i for i in progress["indicators"] if i["status"] == "missed"]
    if missed:
        items = [f"{i['name_zh']}（{i['value']:g}，目标 {i['target']:g}）" for i in missed if i.get("value") is not None]
        out.append(Finding(
            "indicators_missed",
            _t(lang, f"未达标指标：{_list(items, lang)}。", f"Indicators missed: {_list(items, lang)}."),
            _t(lang, "对未达标指标逐项制定补齐计划，纳入下一年度工作计划。",
               "Set a catch-up plan for each missed indicator in next year's work plan.")))
    errors = progress.get("problems", {}).get("errors", 0)
    if errors:
        files = progress["problems"].get("files_with_errors", [])
        out.append(Finding(
            "returns_with_errors",
            _t(lang, f"{len(files)} 份进展报表共有 {errors} 处填报错误。",
               f"{len(files)} progress returns have {errors} errors."),
            _t(lang, "相关单位按单元格问题清单更正后重新报送。", "The units should correct the listed cells and resubmit.")))
    return out
