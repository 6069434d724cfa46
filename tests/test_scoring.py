"""Scoring: hand-computed fixtures, boundaries of levels and rules, bad questionnaires."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.config import Plan, PlanError, load_plan
from analysis.scoring import (
    QuestionnaireError,
    ScoringError,
    classify,
    load_questionnaire,
    score,
    score_items,
    three_dim_thresholds,
    validate_questionnaire,
)

FIX = Path(__file__).parent / "fixtures" / "scoring"
# responses-16.csv: the exp_* columns were computed by hand from the key in
# questionnaire-16.csv (knowledge items 10 points, the others 5): e.g. r03 has
# 3 of 4 knowledge, method and spirit items right and 2 application items = 70.


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load_plan("zhanjiang")


@pytest.fixture(scope="module")
def q16(plan) -> pd.DataFrame:
    return load_questionnaire(FIX / "questionnaire-16.csv", plan)


@pytest.fixture(scope="module")
def responses() -> pd.DataFrame:
    return pd.read_csv(FIX / "responses-16.csv", dtype={f"q{i:02d}": "str" for i in range(1, 17)})


def with_data(plan: Plan, **changes) -> Plan:
    data = copy.deepcopy(plan.data)
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    return Plan(data=data, path=plan.path, raw_dir=plan.raw_dir)


def test_questionnaire_is_typed(q16):
    assert list(q16["item_id"]) == [f"q{i:02d}" for i in range(1, 17)]
    assert q16["points"].dtype == float
    assert q16["core"].sum() == 12
    assert q16.groupby("dimension")["points"].sum().to_dict() == {
        "application": 20.0, "knowledge": 40.0, "method": 20.0, "spirit": 20.0}


def test_score_items_hand_computed(q16, responses):
    s = score_items(responses, q16)
    assert s.index.equals(responses.index)
    for dim in ("knowledge", "method", "spirit", "application"):
        np.testing.assert_array_equal(s[f"score_{dim}"], responses[f"exp_{dim}"].astype(float))
    np.testing.assert_array_equal(s["score_total"], responses["exp_total"].astype(float))
    np.testing.assert_array_equal(s["n_items_missing"], responses["exp_missing"])
    np.testing.assert_array_equal(s["n_core_missing"], responses["exp_core_missing"])


def test_classify_levels_and_flags(plan, q16, responses):
    # real plan thresholds: knowledge >= 28, method >= 14, spirit >= 12
    c = classify(score_items(responses, q16), plan, 2020)
    assert list(c["level"]) == list(responses["exp_level"])
    assert list(c["literate_score_rule"]) == list(responses["exp_score_rule"])
    assert list(c["literate_three_dim"]) == list(responses["exp_three_dim"])


def test_boundaries_exact(plan):
    scores = pd.DataFrame({
        "score_total": [85.0, 84.999, 70.0, 69.9, 55.0, 54.9, 0.0, 100.0],
        "score_knowledge": 40.0, "score_method": 20.0, "score_spirit": 20.0,
        "score_application": 0.0,
    })
    c = classify(scores, plan, 2020)
    assert list(c["level"]) == ["advanced", "literate", "literate", "basic", "basic", "low", "low", "advanced"]
    assert list(c["literate_score_rule"]) == [True, True, True, False, False, False, False, True]


def test_float_points_reach_the_cut():
    # 700 items of 0.1 points: the float sum is 69.9999999..., which must count as 70
    n_items = 1000
    q = pd.DataFrame({
        "item_id": [f"i{k}" for k in range(n_items)],
        "dimension": ["knowledge"] * 400 + ["method"] * 200 + ["spirit"] * 200 + ["application"] * 200,
        "points": 0.1, "correct": "A", "core": True, "text_zh": "t",
    })
    q = validate_questionnaire(q)
    answers = pd.DataFrame({f"i{k}": ["A" if k < 700 else "B"] for k in range(n_items)}, dtype="str")
    s = score_items(answers, q)
    assert s["score_total"].iloc[0] == pytest.approx(70.0, abs=1e-12)
    assert s["score_total"].iloc[0] >= 70.0


def test_three_dim_thresholds_from_plan(plan):
    assert three_dim_thresholds(plan) == pytest.approx({"knowledge": 28.0, "method": 14.0, "spirit": 12.0})
    at = {"score_knowledge": 28.0, "score_method": 14.0, "score_spirit": 12.0,
          "score_application": 0.0, "score_total": 54.0}
    rows = [at, {**at, "score_knowledge": 26.0}, {**at, "score_method": 12.0},
            {**at, "score_spirit": 10.0}]
    c = classify(pd.DataFrame(rows), plan, 2016)
    assert list(c["literate_three_dim"]) == [True, False, False, False]
    assert list(c["literate"]) == [True, False, False, False]
    assert not c["literate_score_rule"].any()


def test_three_dim_thresholds_are_data(plan, q16, responses):
    p = with_data(plan, **{"scoring.three_dimension.pass_share": {"knowledge": 0.75, "method": 0.75, "spirit": 0.5}})
    c = classify(score_items(responses, q16), p, 2016)
    # r03 sits exactly on 30/15/10 (passes); r04 has spirit 10 = 0.5 x 20 (passes now); r05 knowledge 20 < 30
    assert list(c["literate_three_dim"].iloc[[2, 3, 4]]) == [True, True, False]


def test_rule_selection_by_year(plan, q16, responses):
    s = score_items(responses, q16)
    c16 = classify(s, plan, 2016)
    c20 = classify(s, plan, 2020)
    assert (c16["literate"] == c16["literate_three_dim"]).all()
    assert (c20["literate"] == c20["literate_score_rule"]).all()
    # r08 (80 points, knowledge 20) and r09 (60 points, passes all three) differ by rule
    assert list(c16["literate"].iloc[[7, 8]]) == [False, True]
    assert list(c20["literate"].iloc[[7, 8]]) == [True, False]
    with pytest.raises(PlanError, match="2019"):
        classify(s, plan, 2019)
    bad = with_data(plan, **{"scoring.rule_by_year": {2020: "vibes"}})
    with pytest.raises(ScoringError, match="vibes"):
        classify(s, bad, 2020)


def test_score_adds_columns_keeps_index(plan, q16, responses):
    df = responses.set_index(pd.Index(range(100, 110)))
    out = score(df, q16, plan, 2020)
    assert out.index.equals(df.index)
    for col in ("score_total", "n_core_missing", "level", "literate", "literate_three_dim", "resp_id"):
        assert col in out.columns
    assert out["literate"].sum() == 4
    # scoring twice replaces the columns instead of duplicating them
    again = score(out, q16, plan, 2020)
    assert list(again.columns) == list(out.columns)


def test_lowercase_or_odd_dtypes(plan, q16, responses):
    # answers read as object dtype with NaN score the same as the string dtype
    obj = responses.astype({f"q{i:02d}": object for i in range(1, 17)})
    pd.testing.assert_frame_equal(score_items(obj, q16), score_items(responses, q16))


def test_missing_item_column(q16, responses):
    with pytest.raises(ScoringError, match="q05"):
        score_items(responses.drop(columns=["q05"]), q16)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "q.csv"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda t: t.replace("q16,application,5,D", "q16,application,4,D"), r"application: items add up to 19"),
    (lambda t: t.replace("q02,knowledge", "q02,knowlege"), r"row 3 \(item q02\).*knowlege"),
    (lambda t: t.replace("q03,knowledge,10,C", "q03,knowledge,10,E"), r"item q03.*'E'"),
    (lambda t: t.replace("q04,knowledge,10,D", "q04,knowledge,ten,D"), r"item q04.*'ten'"),
    (lambda t: t.replace("q05,method,5,A,true", "q05,method,5,A,maybe"), r"row 6.*maybe"),
    (lambda t: t.replace("q06,", "q05,"), r"duplicate item_id \['q05'\]"),
    (lambda t: t.replace(",text_zh", ",text"), r"missing columns \['text_zh'\]"),
])
def test_bad_questionnaire(tmp_path, plan, mutate, message):
    text = (FIX / "questionnaire-16.csv").read_text(encoding="utf-8")
    path = _write(tmp_path, mutate(text))
    with pytest.raises(QuestionnaireError, match=message) as err:
        load_questionnaire(path, plan)
    assert str(path) in str(err.value)


def test_missing_questionnaire_file(tmp_path):
    with pytest.raises(QuestionnaireError, match="does not exist"):
        load_questionnaire(tmp_path / "nope.csv")


def test_bom_file_reads(tmp_path, plan):
    text = (FIX / "questionnaire-16.csv").read_text(encoding="utf-8")
    p = tmp_path / "bom.csv"
    p.write_text(text, encoding="utf-8-sig")
    assert len(load_questionnaire(p, plan)) == 16


def test_vectorised_speed(plan, q16):
    # 200k rows x 16 items must score well under a second per 100k rows
    n = 200_000
    rng = np.random.default_rng(0)
    opts = np.array(["A", "B", "C", "D", None], dtype=object)
    df = pd.DataFrame({f"q{i:02d}": pd.array(opts[rng.integers(0, 5, n)], dtype="str") for i in range(1, 17)})
    t0 = time.perf_counter()
    s = score_items(df, q16)
    classify(s, plan, 2020)
    assert time.perf_counter() - t0 < 2.0
    # expected mean: each item right with probability 1/5
    assert s["score_total"].mean() == pytest.approx(20.0, abs=0.2)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["A", "B", "C", "D", ""]), min_size=16, max_size=16),
                min_size=1, max_size=30))
def test_scoring_properties(answers):
    plan = load_plan("zhanjiang")
    q = load_questionnaire(FIX / "questionnaire-16.csv", plan)
    df = pd.DataFrame(answers, columns=[f"q{i:02d}" for i in range(1, 17)], dtype="str")
    s = score_items(df, q)
    c = classify(s, plan, 2020)
    dims = s[["score_knowledge", "score_method", "score_spirit", "score_application"]]
    np.testing.assert_allclose(dims.sum(axis=1), s["score_total"])
    assert (dims.le([40, 20, 20, 20]).all(axis=1) & dims.ge(0).all(axis=1)).all()
    assert (c["literate_score_rule"] == (s["score_total"] >= 70)).all()
    assert (c["literate_three_dim"] == ((s["score_knowledge"] >= 28) & (s["score_method"] >= 14)
                                         & (s["score_spirit"] >= 12))).all()
    # levels are ordered bands of the total
    rank = c["level"].map({"low": 0, "basic": 1, "literate": 2, "advanced": 3})
    order = np.argsort(s["score_total"].to_numpy(), kind="stable")
    assert np.all(np.diff(rank.to_numpy()[order]) >= 0)
    # a blank answer is never right: blanks count as missing and score nothing
    blank = (df == "").to_numpy()
    assert (s["n_items_missing"].to_numpy() == blank.sum(axis=1)).all()
