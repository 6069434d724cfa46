"""The plan's annex as data: counts by hand from the seed text, unit normalisation."""

from pathlib import Path

import pandas as pd
import pytest

from analysis.config import load_plan
from analysis.plan_tasks import (
    TasksError,
    find_measure,
    lead_units,
    load_tasks,
    load_units,
    parse_annex,
    tasks_path,
    validate_tasks,
)
from analysis.progress_returns import indicator_specs

# the plan's text as published (湛府〔2022〕40号), kept beside the plan file it was transcribed into
SEED = Path(__file__).resolve().parents[1] / "data" / "raw" / "plan" / "zhanjiang-plan-2021-2025.txt"


@pytest.fixture(scope="module")
def plan():
    return load_plan("zhanjiang")


@pytest.fixture(scope="module")
def units(plan):
    return load_units(plan)


@pytest.fixture(scope="module")
def tasks(plan, units):
    return load_tasks(plan, units)


def test_counts_match_the_annex(tasks):
    # Counted by hand from the annex (seed lines 261-352): tasks are numbered cells
    # in column 2; measures are rows with their own lead unit and deadline.
    groups = tasks.drop_duplicates(["kind", "group_no"])
    assert (groups["kind"] == "提升行动").sum() == 5
    assert (groups["kind"] == "重点工程").sum() == 6
    per_group = tasks.groupby(["kind", "group_no"]).agg(
        tasks=("task_no", "nunique"), measures=("measure_id", "size"))
    assert list(per_group.loc["提升行动", "tasks"]) == [6, 4, 4, 3, 3]
    assert list(per_group.loc["重点工程", "tasks"]) == [3, 3, 4, 4, 2, 3]
    assert list(per_group.loc["提升行动", "measures"]) == [12, 5, 4, 3, 3]
    assert list(per_group.loc["重点工程", "measures"]) == [6, 7, 5, 11, 2, 3]
    assert per_group["tasks"].sum() == 39
    assert len(tasks) == 61
    assert tasks["deadline"].value_counts().to_dict() == {"2025年底": 38, "每年实施": 23}
    by_kind = pd.crosstab(tasks["kind"], tasks["deadline"])
    assert by_kind.loc["提升行动"].to_dict() == {"2025年底": 11, "每年实施": 16}
    assert by_kind.loc["重点工程"].to_dict() == {"2025年底": 27, "每年实施": 7}


def test_group_and_task_names(tasks):
    names = tasks.drop_duplicates(["kind", "group_no"])["group_name"].tolist()
    assert names[0] == "实施青少年科学素质提升行动"
    assert names[4] == "实施领导干部和公务员科学素质提升行动"
    assert names[10] == "实施科学素质对外交流与合作工程"
    row = tasks.set_index("measure_id").loc["P6-3-1"]
    assert row["task_name"] == "促进“一带一路”科技人文交流"


def test_wrapped_rows_are_rejoined(tasks):
    text = tasks.set_index("measure_id")["measure_text"]
    assert text["A1-1-2"].endswith("营造崇尚科学的校园文化氛围。")
    assert "鼓励企业积极培养使用创新型技能人才" in text["A3-4-1"]  # across a <p> row
    assert "引导专业技术学（协）会等社会组织开展农业科技服务" in text["A2-3-1"]
    assert text["A3-2-1"].count("多层级、多行业、多工种") == 1
    assert not tasks["measure_text"].str.contains("<p>|</p>", regex=True).any()
    sources = tasks.set_index("measure_id")["source_lines"]
    assert sources["A1-1-2"] == "263;265" and sources["A3-4-1"] == "293;295"


def test_units_are_normalised(tasks, units):
    for col in ("lead_units", "responsible_units"):
        for names in tasks[col]:
            assert all(u in units.units for u in names), names
    row = tasks.set_index("measure_id")
    assert row.loc["A1-3-1", "responsible_units"] == [
        "市科技局", "市人力资源和社会保障局", "市科协", "团市委"]  # "市科协 团市委"
    assert row.loc["P3-3-1", "lead_units"] == ["市科技局", "市科协"]
    assert row.loc["P3-3-1", "responsible_units"] == []
    assert row.loc["P4-2-2", "responsible_units"] == ["各县（市、区）人民政府"]
    assert row.loc["P3-1-1", "responsible_units"][0] == "市发展和改革委员会"
    assert row.loc["A2-1-1", "responsible_units"][5] == "市文化广电旅游体育局"
    assert lead_units(tasks) == [
        "市教育局", "市科协", "市农业农村局", "市科技局", "市人力资源和社会保障局", "市总工会",
        "市委老干部局", "市卫生健康局", "市委组织部", "市委宣传部", "市应急管理局"]


@pytest.mark.parametrize("alias, unit", [
    ("市文广旅体局", "市文化广电旅游体育局"),
    ("市文化旅游体育局", "市文化广电旅游体育局"),
    ("市发展和改革局", "市发展和改革委员会"),
    ("县（市、区）人民政府", "各县（市、区）人民政府"),
    ("各县(市、区)人民政府", "各县（市、区）人民政府"),
    ("市卫生健 康局", "市卫生健康局"),
    ("<p>市科协</p>", "市科协"),
])
def test_aliases(units, alias, unit):
    assert units.normalise(alias) == unit


def test_split_cells(units):
    assert units.split("市教育局 市科协") == ["市教育局", "市科协"]
    assert units.split("市委组织部、市委 宣传部、市文 明办") == ["市委组织部", "市委宣传部", "市文明办"]
    assert units.split("市文 化广电旅游体 育局、市卫生健 康局") == ["市文化广电旅游体育局", "市卫生健康局"]
    assert units.split("市农业农村局、 各县（市、区） 人民政府") == [
        "市农业农村局", "各县（市、区）人民政府"]
    assert units.split("") == []
    with pytest.raises(TasksError, match="line 9 牵头单位: unit '市外星局'"):
        units.split("市科协、市外星局", "line 9 牵头单位")


def test_unit_slugs_unique_and_ascii(units):
    slugs = list(units.slugs.values())
    assert len(slugs) == len(set(slugs)) == len(units.units) == 32


@pytest.mark.skipif(not SEED.exists(), reason="seed plan text not available")
def test_committed_csv_is_the_transcription_of_the_seed(plan, units):
    parsed = parse_annex(SEED.read_text(encoding="utf-8"), units)
    committed = pd.read_csv(tasks_path(plan), dtype=str, keep_default_na=False)
    parsed = parsed.astype(str)
    pd.testing.assert_frame_equal(parsed.reset_index(drop=True), committed, check_dtype=False)


def test_validation_names_rows(tasks, units):
    bad = pd.read_csv(tasks_path(load_plan("zhanjiang")), dtype=str, keep_default_na=False)
    bad.loc[2, "lead_units"] = "市外星局"
    bad.loc[3, "deadline"] = "明年"
    bad.loc[4, "measure_id"] = "A1-9-1"
    bad.loc[5, "measure_id"] = "A1-1-1"
    problems = validate_tasks(bad, units, source="t.csv")
    assert "t.csv line 4: lead_units '市外星局' is not a normalised unit" in problems
    assert any(p.startswith("t.csv line 5: deadline '明年'") for p in problems)
    assert "t.csv line 6: measure_id 'A1-9-1' does not match kind/group_no/task_no" in problems
    assert "t.csv line 7: duplicate measure_id 'A1-1-1' (also line 2)" in problems
    bad2 = bad.copy()
    bad2.loc[0, "lead_units"] = "市文广旅体局"
    assert any("(alias of '市文化广电旅游体育局')" in p for p in validate_tasks(bad2, units))


def test_indicator_sources_and_owners(plan, tasks):
    specs = {s["id"]: s for s in indicator_specs(plan, tasks)}
    assert specs["tutors_trained"]["measure_id"] == "A1-6-1"
    assert specs["tutors_trained"]["owner"] == "市教育局"
    assert specs["divisions_with_museum_share"]["measure_id"] == "P3-2-1"
    assert specs["divisions_with_museum_share"]["owner"] == "市科协"
    for level in ("national", "provincial", "municipal"):
        assert specs[f"bases_{level}"]["measure_id"] == "P3-3-1"
        assert specs[f"bases_{level}"]["owner"] == "市科技局"
    assert specs["literacy_rate"]["owner"] is None
    assert find_measure(tasks, "每年培训 350 名科技辅导员")["measure_id"] == "A1-6-1"
