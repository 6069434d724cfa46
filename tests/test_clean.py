"""Cleaning rules, the ledger (property tests), recall/precision on the demo faults, and stage 01."""

from __future__ import annotations

import copy
import hmac
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.clean import RULE_IDS, CleaningConfig, clean, longest_run
from analysis.clean_stage import process, run_clean
from analysis.config import RAW, Plan, load_plan
from analysis.dictionary import ITEM_RE, load_dictionary
from analysis.harmonise import harmonise
from analysis.ingest import IngestError
from analysis.pseudonymise import pseudonymise
from analysis.schema import clean_columns

PLAN = load_plan("zhanjiang")
CFG = CleaningConfig.from_plan(PLAN)
ITEMS = [f"q{i:02d}" for i in range(1, 21)]
CORE = ITEMS[:10]
CODES = list(PLAN.division_names)


def with_cleaning(plan: Plan, **values) -> Plan:
    data = copy.deepcopy(plan.data)
    data["survey"]["cleaning"].update(values)
    return Plan(data=data, path=plan.path, raw_dir=plan.raw_dir)


def rows(n: int) -> pd.DataFrame:
    """n distinct, valid respondents (harmonised and pseudonymised), no run of answers over 2."""
    pattern = np.array(list("ABCD"))
    df = pd.DataFrame({
        "row": np.arange(n),
        "resp_key": [f"{i:064x}" for i in range(n)],
        "county": [PLAN.division_names[CODES[i % 9]] for i in range(n)],
        "division_code": [CODES[i % 9] for i in range(n)],
        "stratum": [f"{CODES[i % 9]}-U" for i in range(n)],
        "psu": [f"{CODES[i % 9]}-U-{i % 3}" for i in range(n)],
        "design_weight": 100.0,
        "sex": ["男", "女"] * (n // 2) + ["男"] * (n % 2),
        "urban_rural": "城镇",
        "education": "高中",
        "occupation": "产业工人",
        "age": pd.array([20 + i % 45 for i in range(n)], dtype="Int64"),
        "age_group": None,
        "duration_min": 20.0,
        "interview_date": pd.Timestamp("2025-05-01"),
    })
    for j, item in enumerate(ITEMS):
        df[item] = [pattern[(i + j) % 4] for i in range(n)]
    return df


def set_items(df: pd.DataFrame, i: int, values: list) -> None:
    for item, v in zip(ITEMS, values, strict=False):
        df.loc[i, item] = v


def test_each_rule_fires_in_order():
    df = rows(24)
    df.loc[1, "resp_key"] = None                                      # missing_id
    df.loc[2, "resp_key"] = df.loc[0, "resp_key"]                    # duplicate_id (of row 0)
    cols = [c for c in df.columns if c not in ("row", "resp_key")]
    df.loc[4, cols] = df.loc[3, cols].to_numpy()                      # duplicate_answers (of row 3)
    df.loc[5, ["division_code", "county"]] = [None, "火星"]            # unknown_division
    df.loc[6, "sex"] = None                                           # missing_required
    df.loc[7, "age"] = 70                                             # age_out_of_range
    set_items(df, 8, [None] * 3)                                      # 3/10 core missing: incomplete
    df.loc[9, "duration_min"] = 5.0                                   # speeder
    set_items(df, 10, ["A"] * 16)                                     # run 16 > 15: straightline
    df.loc[11, ["occupation", "age"]] = ["学生", 65]                   # implausible
    df.loc[12, ["occupation", "age"]] = ["离退休人员", 35]              # implausible
    df.loc[13, ["occupation", "education"]] = ["领导干部和公务员", "小学及以下"]  # implausible
    df.loc[14, ["age", "duration_min"]] = [75, 3.0]                   # first rule wins: age
    set_items(df, 15, ["B"] * 15)                                     # run of exactly 15: kept
    df.loc[16, "duration_min"] = 8.0                                  # exactly the minimum: kept
    df.loc[17, "duration_min"] = np.nan                               # unknown duration: kept
    set_items(df, 18, [None] * 2)                                     # 2/10 = 20% core missing: kept
    df.loc[19, "age"] = 18
    df.loc[20, "age"] = 69
    set_items(df, 21, ["A"] * 10 + [None] * 10)                       # non-core blanks only: run 10, kept
    df.loc[22, "age"] = None                                          # missing_required
    df.loc[23, "county"] = "湛江经开区"                                  # a zone already resolved: kept
    res = clean(df, CFG, CORE)
    expected = {1: "missing_id", 2: "duplicate_id", 4: "duplicate_answers", 5: "unknown_division",
                6: "missing_required", 7: "age_out_of_range", 8: "incomplete", 9: "speeder",
                10: "straightline", 11: "implausible", 12: "implausible", 13: "implausible",
                14: "age_out_of_range", 22: "missing_required"}
    got = {int(r): rule for r, rule in zip(res.ledger["row"], res.ledger["rule"], strict=True)
           if isinstance(rule, str)}
    assert got == expected
    led = res.ledger.set_index("row")
    assert led.loc[2, "detail"] == "same resp_id as row 0"
    assert led.loc[4, "detail"] == "same demographics and answers as row 3"
    assert led.loc[7, "detail"] == "age 70 outside 18–69"
    assert led.loc[8, "detail"] == "3 of 10 core items missing"
    assert led.loc[10, "detail"] == "16 consecutive identical answers > 15"
    assert led.loc[12, "detail"] == "离退休人员且不满40岁"
    assert led.loc[6, "detail"] == "missing: sex"
    assert sorted(res.kept["row"]) == sorted(set(range(24)) - set(expected))
    s = res.summary.set_index("rule")["n"]
    assert (s["input"], s["kept"], s["dropped"], s["implausible"]) == (24, 10, 14, 3)


def test_thresholds_come_from_the_plan():
    df = rows(10)
    df["duration_min"] = [5.0, 9.0, 12.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0]
    df["age"] = pd.array([30, 18, 40, 50, 60, 65, 66, 17, 70, 80], dtype="Int64")
    base = clean(df, CFG, CORE).ledger["rule"].value_counts()
    assert (base["age_out_of_range"], base["speeder"]) == (3, 1)
    strict = CleaningConfig.from_plan(with_cleaning(PLAN, min_duration_minutes=30, age_max=65))
    counts = clean(df, strict, CORE).ledger["rule"].value_counts()
    assert (counts["age_out_of_range"], counts["speeder"]) == (4, 6)
    assert strict.min_duration_minutes == 30.0 and CFG.max_straightline_run == 15


def test_cleaning_defaults_have_one_source():
    """CleaningConfig adds no default of its own: every field and default is settings.CleaningSettings',
    and a plan without survey.cleaning gets exactly those defaults."""
    import dataclasses

    from analysis.settings import DEFAULT_IMPLAUSIBLE, CleaningSettings

    own = {f.name: f for f in dataclasses.fields(CleaningSettings)}
    assert [f.name for f in dataclasses.fields(CleaningConfig)] == list(own)
    assert "age_min" not in vars(CleaningConfig) and "max_drop_share" not in CleaningConfig.__annotations__
    defaults = dataclasses.asdict(CleaningSettings())
    assert dataclasses.asdict(CleaningConfig()) == defaults
    assert defaults["age_min"] == 18 and defaults["max_drop_share"] == 0.5
    assert defaults["implausible"] == list(DEFAULT_IMPLAUSIBLE)
    data = copy.deepcopy(PLAN.data)
    del data["survey"]["cleaning"]
    bare = CleaningConfig.from_plan(Plan(data=data, path=PLAN.path, raw_dir=PLAN.raw_dir))
    assert dataclasses.asdict(bare) == defaults
    assert CleaningConfig.from_plan(with_cleaning(PLAN, implausible=[])).implausible == []  # none dropped


def test_implausible_combinations_from_plan():
    df = rows(4)
    df.loc[0, "occupation"] = "学生"
    df.loc[0, "age"] = 45
    plan = with_cleaning(PLAN, implausible=[{"id": "student_40", "label_zh": "学生且40岁以上",
                                             "occupation": "学生", "age_min": 40}])
    led = clean(df, CleaningConfig.from_plan(plan), CORE).ledger
    assert led["rule"].iloc[0] == "implausible" and led["detail"].iloc[0] == "学生且40岁以上"
    assert clean(df, CFG, CORE).ledger["status"].iloc[0] == "kept"


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.sampled_from([0, 1, 2, 3, -1]), min_size=12, max_size=12),
                min_size=1, max_size=20))
def test_longest_run_matches_a_loop(matrix):
    codes = np.array(matrix, dtype=np.int8)
    want = []
    for r in matrix:
        best = cur = 0
        prev = None
        for v in r:
            cur = cur + 1 if (v >= 0 and v == prev) else (1 if v >= 0 else 0)
            prev = v
            best = max(best, cur)
        want.append(best)
    assert longest_run(codes).tolist() == want


# --- ledger property: rows in = kept + dropped, one rule a dropped row ---------------------

@st.composite
def messy_frames(draw):
    n = draw(st.integers(0, 30))
    base = rows(max(n, 1)).iloc[:n]
    recs = base.to_dict("records")
    keys = [f"{k:064x}" for k in range(6)] + [None]
    opt = st.sampled_from(["A", "B", "C", "D", None])
    for i, rec in enumerate(recs):
        if i and draw(st.integers(0, 9)) == 0:  # a later copy of an earlier row
            src = recs[draw(st.integers(0, i - 1))]
            recs[i] = {**src, "row": rec["row"]}
            continue
        rec["resp_key"] = draw(st.sampled_from(keys + [f"{100 + i:064x}"] * 6))
        rec["division_code"] = draw(st.sampled_from([*CODES[:3], None]))
        rec["sex"] = draw(st.sampled_from(["男", "女", None]))
        rec["age"] = draw(st.one_of(st.none(), st.integers(0, 120)))
        rec["occupation"] = draw(st.sampled_from(["学生", "离退休人员", "领导干部和公务员", "农民"]))
        rec["education"] = draw(st.sampled_from(["小学及以下", "高中", None]))
        rec["duration_min"] = draw(st.one_of(st.none(), st.floats(0, 60)))
        answers = (draw(st.lists(opt, min_size=20, max_size=20)) if draw(st.booleans())
                   else [draw(opt)] * draw(st.integers(0, 20)))
        rec.update(zip(ITEMS, answers, strict=False))
    df = pd.DataFrame(recs, columns=base.columns)
    df["age"] = df["age"].astype("Int64")
    df["duration_min"] = df["duration_min"].astype("float64")
    return df


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messy_frames())
def test_ledger_accounts_for_every_row(df):
    res = clean(df, CFG, CORE)
    led = res.ledger
    assert len(led) == len(df) and led["row"].tolist() == df["row"].tolist()
    dropped = led["status"] == "dropped"
    assert set(led["status"]) <= {"kept", "dropped"}
    assert (dropped == led["rule"].notna()).all()
    assert set(led.loc[dropped, "rule"]) <= set(RULE_IDS)
    assert len(res.kept) + int(dropped.sum()) == len(df)
    assert res.kept["row"].tolist() == led.loc[~dropped, "row"].tolist()
    s = res.summary.set_index("rule")["n"]
    assert s["input"] == len(df) == s["kept"] + s["dropped"]
    assert s[list(RULE_IDS)].sum() == s["dropped"]
    k = res.kept
    assert k["resp_key"].notna().all() and k["resp_key"].is_unique
    assert k["age"].between(CFG.age_min, CFG.age_max).all()
    assert k["division_code"].notna().all() and k[["sex", "education"]].notna().all().all()
    assert not (k["duration_min"] < CFG.min_duration_minutes).any()
    assert not ((k["occupation"] == "学生") & (k["age"] >= 60)).any()
    # a row without an id is always dropped as missing_id, whatever else is wrong with it
    assert (led.loc[df["resp_key"].isna().to_numpy(), "rule"] == "missing_id").all()


@st.composite
def messy_raw(draw):
    """Raw delivered values (before harmonisation) in the forms contractors use."""
    n = draw(st.integers(1, 15))
    pick = lambda xs: [draw(st.sampled_from(xs)) for _ in range(n)]  # noqa: E731
    df = pd.DataFrame({
        "row": np.arange(n),
        "resp_id": pick(["R1", "R2", " R3 ", "Ｒ4", "", "R5", "R6"]),
        "county": pick(["赤坎区", "赤坎", " 440802 ", "４４０８０３", "湛江经开区", "海康县", "Xuwen", "火星", ""]),
        "stratum": "440802-U", "psu": "440802-U-01",
        "design_weight": pick(["100", "250.5", 80.0]),
        "sex": pick(["男", "女", "1", "2", "female", " 男 ", ""]),
        "age": pick(["35", "４５岁", "17", "70", "", 52, "69", "18"]),
        "urban_rural": pick(["城镇", "农村", "城市", "2"]),
        "education": pick(["小学", "初中", "高中/中专", "大学本科", "", "5"]),
        "occupation": pick(["务农", "工人", "学生", "退休", "公务员", "其它"]),
        "duration_min": pick(["20", "3.5", "", "8", "12分钟"]),
        "interview_date": pick(["2025-05-01", "2025/5/2", ""]),
    })
    for item in ITEMS:
        df[item] = pick(["A", "b", "Ｃ", "4", "", "A"])
    return df


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messy_raw())
def test_messy_raw_through_harmonise_and_clean(df):
    res = clean(pseudonymise(harmonise(df, PLAN), b"k"), CFG, CORE)
    assert len(res.ledger) == len(df) == len(res.kept) + int((res.ledger["status"] == "dropped").sum())
    assert res.ledger["rule"].notna().sum() == (res.ledger["status"] == "dropped").sum()
    assert res.kept["age"].between(18, 69).all()


# --- demo data: the injected faults ---------------------------------------------------------

FAULT_RULES = {"duplicate": {"duplicate_id", "duplicate_answers"}, "age_out_of_range": {"age_out_of_range"},
               "missing_items": {"incomplete"}, "speeder": {"speeder"}, "straightline": {"straightline"}}


def _fault_sets(faults: pd.DataFrame) -> pd.DataFrame:
    """One row per raw row: its faults (a row may carry several) and whether it must be dropped."""
    g = faults.groupby("row")["fault"].apply(frozenset).rename("faults").reset_index()
    g["must_drop"] = g["faults"].apply(lambda fs: bool(fs & set(FAULT_RULES)))
    g["drop_rules"] = g["faults"].apply(lambda fs: set().union(*(FAULT_RULES.get(f, set()) for f in fs)))
    return g


def cleaning_metrics(year: int, n: int = 3000, seed: int = 20210601) -> tuple[pd.DataFrame, float, int]:
    """Recall per fault (a row counts as found when dropped by a rule of any of its faults;
    variant names and borderline rows must be kept) and precision of the drops."""
    synth = pytest.importorskip("analysis.synth")
    raw, faults = synth.generate_survey(PLAN, year, n, seed)
    df = raw.copy()
    df.insert(0, "row", np.arange(len(raw)))
    h = harmonise(df, PLAN)
    res = clean(pseudonymise(h, b"k"), CFG, None)
    sets = _fault_sets(faults)
    led = res.ledger.merge(sets, on="row", how="left")
    out = []
    for fault, sub in led.merge(faults[["row", "fault"]], on="row").groupby("fault"):
        if fault == "variant_division" or fault.startswith("borderline") or fault == "near_duplicate":
            hit = sub["status"].to_numpy() == "kept"
            if fault == "variant_division":  # a harmonisation fault: kept (unless another fault drops it)
                right = h.loc[sub["row"], "division_code"].to_numpy() == df.loc[sub["row"], "stratum"].str[:6].to_numpy()
                hit = np.where(sub["must_drop"].fillna(False).to_numpy(bool), True, hit & right)
        else:
            hit = np.array([r in rules for r, rules in zip(sub["rule"], sub["drop_rules"], strict=True)])
        out.append({"fault": fault, "n": len(sub), "found": int(hit.sum()), "recall": hit.mean()})
    dropped = led["status"] == "dropped"
    true_drop = led["must_drop"].fillna(False).astype(bool)
    precision = float((dropped & true_drop).sum() / dropped.sum())
    false_pos = int((dropped & ~true_drop).sum())
    return pd.DataFrame(out), precision, false_pos


@pytest.mark.parametrize("year", [2016, 2025])
def test_demo_faults_recall_and_precision(year):
    table, precision, false_pos = cleaning_metrics(year)
    print(f"\n{year}: precision {precision:.4f} ({false_pos} clean rows dropped)\n{table.to_string(index=False)}")
    assert set(table["fault"]) == {*FAULT_RULES, "variant_division", "borderline_age", "borderline_duration",
                                   "near_duplicate"}
    assert (table["recall"] == 1.0).all(), table
    # The only rows dropped without an injected fault are implausible combinations the
    # generator can make (an official with primary schooling): at most 0.2% of rows.
    assert precision >= 0.99 and false_pos <= 6


# --- stage 01 ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_raw(tmp_path_factory) -> Path:
    """A raw_dir as build_demo writes it (plan, questionnaire, 600-row surveys for 2016 and 2025, faults)."""
    synth = pytest.importorskip("analysis.synth")
    raw_dir = tmp_path_factory.mktemp("raw")
    for rel in ("plan/zhanjiang.yml", "census/zhanjiang-population-published.csv"):
        (raw_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (raw_dir / rel).write_bytes((RAW / rel).read_bytes())
    synth.build_demo(load_plan("zhanjiang", raw_dir), n_per_year=600, years=[2016, 2025])
    return raw_dir


@pytest.mark.parametrize("year", [2016, 2025])
def test_stage_ledger_against_the_faults_file(demo_raw, tmp_path, year):
    """Recall and precision of stage 01 against <city>-<year>-synthetic-faults.csv as written."""
    plan = load_plan("zhanjiang", demo_raw)
    res = run_clean(plan, year, tmp_path, key=b"k")
    ledger = pd.read_parquet(res.outputs["ledger.parquet"])
    faults = pd.read_csv(demo_raw / "survey" / f"zhanjiang-{year}-synthetic-faults.csv")
    sets = _fault_sets(faults)
    led = ledger.merge(sets, on="row", how="left")
    for fault in FAULT_RULES:
        sub = led[led["faults"].apply(lambda fs, f=fault: isinstance(fs, frozenset) and f in fs)]
        found = [r in rules for r, rules in zip(sub["rule"], sub["drop_rules"], strict=True)]
        assert len(sub) > 0 and all(found), (fault, sub["rule"].value_counts())
    only_keep = led["faults"].apply(lambda fs: isinstance(fs, frozenset)) & ~led["must_drop"].fillna(True).astype(bool)
    assert only_keep.sum() > 0 and (led.loc[only_keep, "status"] == "kept").all()
    variant = led[only_keep & led["faults"].apply(lambda fs: isinstance(fs, frozenset) and "variant_division" in fs)]
    assert len(variant) > 0
    kept = res.clean.set_index(ledger.loc[ledger["status"] == "kept", "row"].to_numpy())
    assert (kept.loc[variant["row"], "division_code"] == kept.loc[variant["row"], "stratum"].str[:6]).all()
    dropped = led["status"] == "dropped"
    precision = (dropped & led["must_drop"].fillna(False).astype(bool)).sum() / dropped.sum()
    assert precision >= 0.98


def test_run_clean_writes_the_contract(demo_raw, tmp_path):
    plan = load_plan("zhanjiang", demo_raw)
    res = run_clean(plan, 2025, tmp_path, key=b"test-key")
    out = tmp_path / "zhanjiang" / "2025"
    clean_t = pd.read_parquet(out / "survey_clean.parquet")
    ledger = pd.read_parquet(out / "ledger.parquet")
    summary = pd.read_csv(out / "cleaning_summary.csv")
    scoring = json.loads((out / "scoring_summary.json").read_text(encoding="utf-8"))
    manifest = json.loads((out / "manifest-01_clean.json").read_text(encoding="utf-8"))
    items = [f"q{i:02d}" for i in range(1, 51)]
    assert list(clean_t.columns) == clean_columns(items)
    assert not {"name", "phone", "resp_id", "row"} & set(clean_t.columns)
    documented = load_dictionary().by_name
    assert [c for c in clean_t.columns if c not in documented and not ITEM_RE.match(c)] == []
    assert list(ledger.columns) == ["row", "resp_key", "status", "rule", "detail"]
    assert len(ledger) == 600 == len(clean_t) + int((ledger["status"] == "dropped").sum())
    counts = ledger["rule"].value_counts()
    for r in summary.itertuples():
        if r.rule in RULE_IDS:
            assert r.n == counts.get(r.rule, 0)
    assert summary.set_index("rule").loc["kept", "n"] == len(clean_t) == scoring["n"] == res.n_kept
    assert scoring["rule"] == "score"
    assert scoring["literate_pct"] == pytest.approx(100 * clean_t["literate"].mean(), abs=1e-3)
    assert set(clean_t["age_group"]) <= {"18-29", "30-39", "40-49", "50-59", "60-69"}
    raw = pd.read_csv(demo_raw / "survey" / "zhanjiang-2025-synthetic.csv", dtype=str)
    first_kept = int(ledger.loc[ledger["status"] == "kept", "row"].iloc[0])
    want = hmac.new(b"test-key", raw["resp_id"].iloc[first_kept].encode(), "sha256").hexdigest()
    assert clean_t["resp_key"].iloc[0] == want
    from analysis.provenance import sha256
    assert manifest["outputs"] == {str(p): sha256(p) for p in res.outputs.values()}
    assert len(manifest["outputs"]) == 4 and manifest["stage"] == "01_clean"
    assert manifest["parameters"]["encoding"] == "utf-8"


def test_bad_file_stops_and_writes_nothing(demo_raw, tmp_path):
    plan = load_plan("zhanjiang", demo_raw)
    run_clean(plan, 2025, tmp_path, key=b"k")
    out = tmp_path / "zhanjiang" / "2025"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad_dir = tmp_path / "bad"
    (bad_dir / "plan").mkdir(parents=True)
    (bad_dir / "survey").mkdir()
    for rel in ("plan/zhanjiang.yml", "survey/questionnaire-synthetic.csv"):
        (bad_dir / rel).write_bytes((demo_raw / rel).read_bytes())
    raw = pd.read_csv(demo_raw / "survey" / "zhanjiang-2025-synthetic.csv", dtype=str, keep_default_na=False)
    raw.loc[9, "age"] = "abc"
    raw.rename(columns={"age": "年龄"}).to_csv(bad_dir / "survey" / "zhanjiang-2025-synthetic.csv",
                                             index=False, encoding="gbk")
    with pytest.raises(IngestError) as e:
        run_clean(load_plan("zhanjiang", bad_dir), 2025, tmp_path, key=b"k")
    msg = str(e.value)
    for part in ("zhanjiang-2025-synthetic.csv", "row 11 (file line; data row 9)", "'年龄' (age)", "3 letters, not shown"):
        assert part in msg, msg
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    with pytest.raises(IngestError):
        run_clean(load_plan("zhanjiang", bad_dir), 2025, tmp_path / "fresh", key=b"k")
    assert not (tmp_path / "fresh").exists() or not any((tmp_path / "fresh").rglob("*.parquet"))


def test_excel_delivery_with_same_stem(demo_raw, tmp_path):
    raw_dir = tmp_path / "raw"
    (raw_dir / "plan").mkdir(parents=True)
    (raw_dir / "survey").mkdir()
    for rel in ("plan/zhanjiang.yml", "survey/questionnaire-synthetic.csv"):
        (raw_dir / rel).write_bytes((demo_raw / rel).read_bytes())
    raw = pd.read_csv(demo_raw / "survey" / "zhanjiang-2025-synthetic.csv", dtype=str).head(60)
    raw.rename(columns={"sex": "性别", "county": "区县"}).to_excel(
        raw_dir / "survey" / "zhanjiang-2025-synthetic.xlsx", index=False, startrow=1)
    res = run_clean(load_plan("zhanjiang", raw_dir), 2025, tmp_path / "out", key=b"k")
    assert res.source.format == "xlsx" and res.source.header_rows == [2]
    assert res.n_in == 60


def test_schema_failure_names_row_and_column(demo_raw):
    plan = load_plan("zhanjiang", demo_raw)
    from analysis.ingest import read_survey
    from analysis.scoring import load_questionnaire
    df, source = read_survey(demo_raw / "survey" / "zhanjiang-2025-synthetic.csv")
    df = df.copy()
    df["design_weight"] = df["design_weight"].astype(object)
    df.loc[5, "design_weight"] = "-3"
    q = load_questionnaire(plan.questionnaire_path, plan)
    with pytest.raises(IngestError, match=r"row 7 \(file line; data row 5\), column 'design_weight'.*-3"):
        process(df, source, plan, 2025, q, b"k")
