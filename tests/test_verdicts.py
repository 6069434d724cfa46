"""One verdict on the target: the summary, the indicator table and the recommendations agree for any probability."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_report_text import (
    KEY_GROUPS,
    TUTORS,
    county,
    estimates,
    progress,
    traj_final,
    traj_monitoring,
)

from analysis import report_annex as annex
from analysis import report_text as rt
from analysis import verdict as vd
from analysis.settings import PlanError, ReportRules
from analysis.vocabulary import term

SPECS = [{"id": "literacy_rate", "name_zh": "公民具备科学素质的比例", "name_en": "share of citizens with scientific "
          "literacy", "target": 16.0, "comparison": ">", "unit": "percent", "deadline": 2025},
         {"id": "tutors", "name_zh": "每年培训科技辅导员", "name_en": "science tutors trained a year",
          "target": 350.0, "comparison": ">=", "unit": "人/年", "deadline": "every_year"}]
HEAD = {**SPECS[0], "values_by_year": {"2025": 14.7}, "value": 14.7, "value_year": 2025, "status": "missed"}
LABELS = {lang: [term("target_verdict", v, lang) for v in vd.VERDICTS] for lang in ("zh", "en")}
# longest first, so that 很可能未达到 is not also read as 未达到
ZH = re.compile("|".join(sorted(map(re.escape, LABELS["zh"]), key=len, reverse=True)))
EN = re.compile(r"target is (" + "|".join(sorted(map(re.escape, LABELS["en"]), key=len, reverse=True)) + ")")


def indicators(year=2025):
    rows = [{"indicator_id": "literacy_rate", "name_zh": SPECS[0]["name_zh"], "year": y, "scope": "city",
             "value": v, "target": 16.0, "comparison": ">", "unit": "percent", "due": y == 2025, "met": False,
             "note": "", "n_missing": 0} for y, v in ((2020, 10.0), (2025, 14.7)) if y <= year]
    rows += [{"indicator_id": "tutors", "name_zh": SPECS[1]["name_zh"], "year": y, "scope": "city", "value": v,
              "target": 350.0, "comparison": ">=", "unit": "人/年", "due": True, "met": v >= 350, "note": "",
              "n_missing": 0} for y, v in ((2021, 335.0), (2025, 395.0)) if y <= year]
    d = pd.DataFrame(rows)
    d["met"] = d["met"].astype("boolean")
    return d


def verdicts_in(text: str, lang: str) -> list[str]:
    return ZH.findall(text) if lang == "zh" else EN.findall(text)


def render(p: float, lang: str):
    """The summary, the indicator table and the recommendations from one set of results."""
    traj = traj_final(p_exceeds_target=p, headline={"p_exceeds_target": p, "basis": "direct_estimate", "year": 2025,
                                                     "df": 36})
    prog = progress(indicators=[HEAD, TUTORS])
    summary = "\n".join(rt.summary_points(traj, county(), prog, estimates(), KEY_GROUPS, "City", lang))
    table = annex.indicator_table(indicators(), SPECS, traj, lang)
    recs = "\n".join(f"{f.finding} {f.recommendation}" for f in
                     rt.recommendations(traj, county(), prog, estimates(), KEY_GROUPS, lang))
    return traj, summary, table, recs


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize(("p", "code"), [(0.01, "missed"), (0.02, "missed"), (0.05, "likely_missed"),
                                         (0.3, "uncertain"), (0.5, "uncertain"), (0.85, "uncertain"),
                                         (0.95, "likely_achieved"), (0.99, "achieved")])
def test_summary_indicator_table_and_recommendations_agree(p, code, lang):
    traj, summary, table, recs = render(p, lang)
    word = term("target_verdict", code, lang)
    assert vd.verdict_label(traj, lang) == word
    # the summary states the verdict (target sentence and the progress item) and no other
    assert set(verdicts_in(summary, lang)) == {word}, summary
    assert len(verdicts_in(summary, lang)) == 2
    # the indicator table's judgement of the headline indicator is the same verdict, and no other row has one
    met = table[term("header", "met", lang)].tolist()
    names = table[term("header", "indicator", lang)].tolist()
    head_name = rt.capitalise(SPECS[0]["name_zh" if lang == "zh" else "name_en"])
    assert [m for m, n in zip(met, names, strict=True) if n == head_name] == [word]
    assert not [m for m in met if m in LABELS[lang] and m != word]
    # the recommendations speak of the target only when it is not (very likely) achieved, with the same word
    if code in ("achieved", "likely_achieved"):
        assert verdicts_in(recs, lang) == []
        assert "target_not_secured" not in recs
    else:
        assert verdicts_in(recs, lang) == [word], recs
    # the headline indicator is never counted among the missed indicators by its point estimate
    assert SPECS[0]["name_zh"] + "（" not in summary + recs


def test_monitoring_year_uses_the_outlook_words_everywhere():
    traj = traj_monitoring(p_exceeds_target=0.3)
    summary = "\n".join(rt.summary_points(traj, county(year=2023), progress(report_year=2023, indicators=[TUTORS]),
                                          estimates(year=2023), KEY_GROUPS, "City"))
    recs = rt.recommendations(traj, county(year=2023), progress(report_year=2023, indicators=[]),
                              estimates(year=2023, groups=()), KEY_GROUPS)
    assert "2025年目标尚难判断" in summary
    assert recs[0].rule == "target_not_secured" and "2025年目标尚难判断" in recs[0].finding
    traj = traj_monitoring(p_exceeds_target=0.05)
    assert "很可能不能如期达到" in rt.target_sentence(traj)
    assert "very likely off track" in rt.target_sentence(traj, "en")
    # before the target year the headline indicator's judgement is not a verdict (the year is not due)
    table = annex.indicator_table(indicators(2023), SPECS, traj, "zh")
    assert not set(table[term("header", "met", "zh")]) & set(LABELS["zh"])
    assert set(LABELS["zh"]).isdisjoint(annex.judgements(indicators(2023), traj, "zh").values())


@given(st.floats(0, 1))
def test_verdict_grades_monotonically(p):
    order = {v: i for i, v in enumerate(vd.VERDICTS)}
    assert order[vd.target_verdict(p)] >= order[vd.target_verdict(min(1.0, p + 0.05))]


def test_thresholds_edges_and_plan_checks():
    assert vd.target_verdict(0.975) == "achieved" and vd.target_verdict(0.9749) == "likely_achieved"
    assert vd.target_verdict(0.9) == "likely_achieved" and vd.target_verdict(0.8999) == "uncertain"
    assert vd.target_verdict(0.1) == "likely_missed" and vd.target_verdict(0.025) == "missed"
    t = vd.Thresholds.from_settings(ReportRules(p_achieved=0.99, p_target_secured=0.8, p_likely_missed=0.2,
                                                p_missed=0.01))
    assert vd.target_verdict(0.85, t) == "likely_achieved" and vd.target_verdict(0.15, t) == "likely_missed"
    with pytest.raises(PlanError, match="must increase"):
        ReportRules(p_likely_missed=0.95)
    with pytest.raises(ValueError):
        vd.target_verdict(1.2)
    assert [w for w, _ in vd.grading("zh")] == LABELS["zh"]


def test_monitoring_year_sees_only_figures_published_by_then():
    from analysis import benchmarks as bm
    from analysis import trajectory_stage as ts
    from analysis.config import load_plan

    assert ts.publication_year("人民日报 2023-09-01", 2022) == 2023
    assert ts.publication_year("国发〔2021〕9号", 2025) == 2021
    assert ts.publication_year("", 2023) == 2024  # a survey comes out the year after
    bench = bm.load_benchmarks(bm.default_path(load_plan("zhanjiang").raw_dir))
    seen = ts.published_by(bench, 2023)
    assert all(ts.publication_year(s, y) <= 2023 for s, y in zip(seen["source"], seen["year"], strict=True))
    observed = seen[seen["kind"] == "observed"]
    assert observed["year"].max() <= 2022 < bench[bench["kind"] == "observed"]["year"].max()
    assert len(ts.published_by(bench, 2030)) == len(bench)
