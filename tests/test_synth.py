"""Synthetic demo generator: determinism, calibration, gaps, faults ground truth, census margins."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.config import load_plan
from analysis.estimate import Design, estimate_domains
from analysis.scoring import load_questionnaire, score
from analysis.synth import (
    BORDERLINE_RATES,
    DEMO_PATH,
    FAULT_RATES,
    SynthError,
    build_demo,
    faults_path,
    generate_survey,
    make_questionnaire,
    truth_path,
)
from analysis.synth_census import AGE_GROUPS, EDUCATION, MARGIN_COLUMNS, census_margins
from analysis.synth_survey import (
    OCCUPATIONS,
    _longest_run,
    build_population,
    division_variants,
    population_truth,
    rake_weights,
)

CONTRACT_COLUMNS = ["resp_id", "name", "phone", "county", "stratum", "psu", "design_weight", "sex", "age",
                    "urban_rural", "education", "occupation", "duration_min", "interview_date",
                    *[f"q{i:02d}" for i in range(1, 51)]]
PUBLISHED = Path(__file__).resolve().parents[1] / "data" / "raw" / "census" / "zhanjiang-population-published.csv"


@pytest.fixture(scope="module")
def plan():
    return load_plan("zhanjiang")


@pytest.fixture(scope="module")
def demo(plan, tmp_path_factory):
    """The two calibrated years at the default size (3000 rows a year)."""
    root = tmp_path_factory.mktemp("demo")
    return root, build_demo(plan, raw_dir=root, years=[2016, 2020])


def read_raw(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")


def kept_rows(raw: pd.DataFrame, faults: pd.DataFrame) -> pd.DataFrame:
    """What a perfect cleaning keeps: every row but the faulty ones (variant names are harmonised,
    borderline rows are valid: both kept)."""
    keep = faults["fault"].eq("variant_division") | faults["fault"].isin(list(BORDERLINE_RATES))
    drop = set(faults.loc[~keep, "row"])
    return raw[~raw.index.isin(drop)]


def weighted_rate(df: pd.DataFrame, col: str = "literate") -> float:
    w = df["design_weight"].astype(float)
    return float(100 * (w * df[col]).sum() / w.sum())


def test_same_seed_same_bytes(plan, demo, tmp_path):
    root, written = demo
    again = build_demo(plan, raw_dir=tmp_path, years=[2016, 2020])
    for kind, paths in written.items():
        for a, b in zip(paths, again[kind], strict=True):
            assert a.relative_to(root) == b.relative_to(tmp_path)
            assert a.read_bytes() == b.read_bytes(), a.name
    other, _ = generate_survey(plan, 2020, 3000, seed=7)
    first = pd.read_csv(written["survey"][1], dtype=str, keep_default_na=False)
    assert not (other["q01"].fillna("").to_numpy() == first["q01"].to_numpy()).all()


def test_generate_survey_matches_the_written_file(plan, demo, tmp_path):
    # the defaults of generate_survey (questionnaire, margins) are the ones build_demo writes
    _, written = demo
    raw, faults = generate_survey(plan, 2020, 3000, seed=20210601)
    raw.to_csv(tmp_path / "a.csv", index=False, encoding="utf-8", lineterminator="\n")
    faults.to_csv(tmp_path / "f.csv", index=False, encoding="utf-8", lineterminator="\n")
    assert (tmp_path / "a.csv").read_bytes() == written["survey"][1].read_bytes()
    assert (tmp_path / "f.csv").read_bytes() == written["faults"][1].read_bytes()


def test_paths_follow_the_plan(plan, demo):
    root, written = demo
    assert written["questionnaire"] == [root / "survey" / "questionnaire-synthetic.csv"]
    assert written["census"] == [root / "census" / "zhanjiang-margins-synthetic.csv"]
    assert [p.name for p in written["survey"]] == ["zhanjiang-2016-synthetic.csv", "zhanjiang-2020-synthetic.csv"]
    assert [p.name for p in written["faults"]] == ["zhanjiang-2016-synthetic-faults.csv",
                                                   "zhanjiang-2020-synthetic-faults.csv"]
    assert faults_path(written["survey"][0]) == written["faults"][0]
    assert written["truth"] == [root / "survey" / "zhanjiang-truth-synthetic.csv"] == [truth_path(plan, root)]


def raked_weights(scored: pd.DataFrame, margins: pd.DataFrame, plan) -> np.ndarray:
    """Design weights raked to the census margins (what the estimate stage uses)."""
    groups = pd.cut(scored["age"].astype(int), [17, 29, 39, 49, 59, 69], labels=AGE_GROUPS).astype(str)
    cells = {"division_urban": (scored["stratum"].str[:6] + "|" + scored["urban_rural"]).to_numpy(object),
             "sex_age": (scored["sex"] + "|" + groups).to_numpy(object),
             "education": scored["education"].to_numpy(object)}
    return rake_weights(scored["design_weight"].astype(float).to_numpy(), cells, margins,
                        plan.settings.survey.weighting.margins, tuple(plan.settings.survey.weighting.bounds))


@pytest.mark.parametrize(("year", "target", "rule_col"), [(2016, 6.93, "literate_three_dim"),
                                                          (2020, 10.0, "literate_score_rule")])
def test_published_years_fall_inside_their_own_intervals(plan, demo, year, target, rule_col):
    """The true path hits the published rate; the demo's own estimate is a sample from it whose
    95% interval (raked weights, stratified cluster design) covers the published rate."""
    root, written = demo
    q = load_questionnaire(written["questionnaire"][0], plan)
    i = [2016, 2020].index(year)
    raw = read_raw(written["survey"][i])
    faults = pd.read_csv(written["faults"][i])
    margins = pd.read_csv(written["census"][0], dtype={"division_code": str})
    scored = score(kept_rows(raw, faults), q, plan, year).reset_index(drop=True)
    assert len(raw) == 3000
    assert (scored["literate"] == scored[rule_col]).all()
    w = raked_weights(scored, margins, plan)
    design = Design.from_frame(scored.assign(w=w), weights="w", strata="stratum", psu="psu")
    est = estimate_domains(design, scored["literate"].to_numpy(float), None, share=True).iloc[0]
    assert 100 * est["ci_low"] < target < 100 * est["ci_high"], est
    assert est["estimate"] != pytest.approx(target / 100, abs=1e-3)  # a sample, not steered onto it
    truth = pd.read_csv(written["truth"][0], dtype={"level": str})
    city = truth[(truth["domain"] == "city") & (truth["year"] == year)]
    assert city["true_share"].iloc[0] == pytest.approx(target, abs=0.01)
    assert city["rule"].iloc[0] == plan.scoring_rule(year)


def test_truth_follows_the_demo_path(plan):
    pop = build_population(plan, 20210601)
    truth = population_truth(plan, pop)
    city = truth[truth["domain"] == "city"].set_index("year")["true_share"]
    for year, rate in DEMO_PATH.items():
        assert city[year] == pytest.approx(plan.published_rates.get(year, rate), abs=0.01)
    path = city.loc[2021:2025].to_numpy()
    assert np.all(np.diff(path) > 0) and path[-1] < plan.target  # short of the target on purpose
    # divisions and key groups have paths of their own (levels and slopes differ)
    div = truth[truth["domain"] == "division"].pivot(index="year", columns="level", values="true_share")
    change = div.loc[2025] - div.loc[2021]
    assert change.max() - change.min() > 0.5
    assert set(truth["domain"]) == {"city", "division", "urban_rural", "sex", "age_group", "education",
                                    "occupation", "key_group"}
    # every partition's levels add up to the city population
    pops = truth[truth["year"] == 2020].groupby("domain")["population"].sum()
    assert (pops.drop(["key_group"]) - pops["city"]).abs().max() <= 10  # rounding of each level


def test_years_are_independent_samples(plan):
    """Each year's estimate scatters around the truth: not a steered path."""
    pop = build_population(plan, 20210601)
    z = []
    for year in (2021, 2022, 2023, 2024, 2025):
        raw, _ = generate_survey(plan, year, 1500, seed=20210601, population=pop)
        cal = raw.attrs["calibration"]
        assert cal["true_share"] == DEMO_PATH[year] and cal["intercept"] == pop.intercepts[year]
        z.append(cal["achieved"] - DEMO_PATH[year])
    assert max(abs(x) for x in z) < 4.0  # sampling error at n=1500 is about 1 point
    assert max(abs(x) for x in z) > 0.1  # but there is sampling error


def test_unknown_year_has_no_target(plan):
    with pytest.raises(SynthError, match="2030"):
        generate_survey(plan, 2030, 500, seed=1)


@pytest.fixture(scope="module")
def big2020(plan):
    """A larger fault-free 2020 sample, scored, for the direction of gaps."""
    raw, faults = generate_survey(plan, 2020, 20000, seed=20210601, faults=False)
    assert faults.empty and len(raw) == 20000
    return score(raw, make_questionnaire(plan, 20210601), plan, 2020)


def _by(df: pd.DataFrame, key) -> pd.Series:
    w = df["design_weight"]
    return (w * df["literate"]).groupby(key, observed=True).sum() / w.groupby(key, observed=True).sum() * 100


def test_gap_directions(big2020):
    df = big2020
    assert abs(weighted_rate(df) - 10.0) <= 1.0  # a sample around the truth; design weights close
    ur = _by(df, df["urban_rural"])
    assert ur["城镇"] > 1.5 * ur["乡村"]
    sex = _by(df, df["sex"])
    assert sex["男"] > sex["女"] + 1
    age = _by(df, pd.cut(df["age"], [17, 29, 39, 49, 59, 69], labels=AGE_GROUPS))
    assert np.all(np.diff(age.to_numpy()) < 0), age
    edu = _by(df, df["education"]).reindex(list(EDUCATION))
    assert np.all(np.diff(edu.to_numpy()) > 0), edu
    occ = _by(df, df["occupation"])
    assert occ["领导干部和公务员"] > occ["产业工人"] > occ["农民"]
    div = _by(df, df["stratum"].str[:6])
    cores = div[["440802", "440803"]]
    counties = div[["440823", "440825", "440881", "440882", "440883"]]
    assert cores.min() > counties.max() + 5
    assert div.max() - div.min() > 8  # real differences between divisions


def test_levels_are_plausible(big2020):
    share = big2020.groupby("level")["design_weight"].sum() / big2020["design_weight"].sum() * 100
    assert share["advanced"] < share["literate"] < share["basic"] < share["low"]
    assert 20 < share["basic"] < 50


def test_columns_and_values_follow_the_contract(plan, demo):
    root, written = demo
    raw = read_raw(written["survey"][1])
    faults = pd.read_csv(written["faults"][1], dtype={"resp_id": str, "fault": str, "detail": str})
    assert list(raw.columns) == CONTRACT_COLUMNS
    assert list(faults.columns) == ["row", "resp_id", "fault", "detail"]
    assert set(raw["sex"]) == {"男", "女"}
    assert set(raw["urban_rural"]) == {"城镇", "乡村"}
    assert set(raw["education"]) <= set(EDUCATION)
    assert set(raw["occupation"]) <= set(OCCUPATIONS)
    assert {"农民", "产业工人", "领导干部和公务员"} <= set(raw["occupation"])
    assert raw["stratum"].str.fullmatch(r"\d{6}-[UR]").all()
    assert (raw["stratum"].str[-1].map({"U": "城镇", "R": "乡村"}) == raw["urban_rural"]).all()
    assert set(raw["stratum"].str[:6]) == set(plan.division_names)
    assert all(p.startswith(s + "-") for p, s in zip(raw["psu"], raw["stratum"], strict=True))
    per_stratum = raw.groupby("stratum")["psu"].nunique()
    sizes = raw.groupby("psu").size()
    # at least 2 PSUs a stratum (variance estimation needs them), about 20 respondents each
    assert per_stratum.min() >= 2 and per_stratum.max() <= 15 and 15 <= sizes.median() <= 25
    assert raw["age"].str.fullmatch(r"\d+").all()
    assert raw["name"].str.fullmatch(r"受访者\d{6}").all()
    assert raw["phone"].str.fullmatch(r"100-0000-\d{4}").all()
    dates = pd.to_datetime(raw["interview_date"], format="%Y-%m-%d")
    assert (dates.dt.year == 2020).all()
    w = raw["design_weight"].astype(float)
    assert (w > 0).all()
    answers = raw[[f"q{i:02d}" for i in range(1, 51)]].to_numpy()
    assert set(np.unique(answers)) == {"", "A", "B", "C", "D"}
    # design weights of the interviews (not the duplicate copies) add up to the 18-69 population
    margins = pd.read_csv(written["census"][0], dtype=str)
    total = margins.loc[margins["margin"] == "division_urban", "population"].astype(int).sum()
    dup = set(faults.loc[faults["fault"] == "duplicate", "row"])
    assert w[~raw.index.isin(dup)].sum() == pytest.approx(total, rel=1e-4)


def test_fault_rates_and_ground_truth(plan, demo):
    root, written = demo
    q = load_questionnaire(written["questionnaire"][0], plan)
    core = q.loc[q["core"], "item_id"].tolist()
    items = q["item_id"].tolist()
    min_dur = plan.settings.survey.cleaning.min_duration_minutes
    max_run = plan.settings.survey.cleaning.max_straightline_run
    max_core = plan.settings.survey.cleaning.max_missing_core_share
    all_counts = []
    for path, fpath in zip(written["survey"], written["faults"], strict=True):
        raw = read_raw(path)
        faults = pd.read_csv(fpath, dtype={"resp_id": str, "fault": str, "detail": str})
        n = len(raw)
        counts = faults["fault"].value_counts()
        all_counts.append(counts)
        for fault, rate in {**FAULT_RATES, **BORDERLINE_RATES}.items():
            # Binomial counts: within 4.5 SD of the expected count, never all zero
            sd = np.sqrt(n * rate * (1 - rate))
            assert 0 < counts.get(fault, 0) and abs(counts.get(fault, 0) - n * rate) < 4.5 * sd + 1, fault
        assert not faults.duplicated(["row", "fault"]).any() and faults["row"].between(0, n - 1).all()
        assert (raw.loc[faults["row"], "resp_id"].to_numpy() == faults["resp_id"].to_numpy()).all()
        per_row = faults[~faults["fault"].isin(list(BORDERLINE_RATES))].groupby("row")["fault"].nunique()
        assert (per_row >= 2).sum() >= 1  # some rows carry several faults

        age = raw["age"].astype(int)
        dur = raw["duration_min"].astype(float)
        blank_core = (raw[core] == "").mean(axis=1)
        codes = raw[items].replace({"A": 0, "B": 1, "C": 2, "D": 3, "": 4}).to_numpy(dtype=np.int8)
        run = pd.Series(_longest_run(codes))
        official = raw["stratum"].str[:6].map(plan.division_names)
        has = {
            "age_out_of_range": ~age.between(18, 69),
            "missing_items": blank_core > max_core,
            "variant_division": raw["county"] != official,
            "speeder": dur < min_dur,
            "straightline": run > max_run,
        }
        by_fault = faults.groupby("fault")["row"].apply(set)
        for fault, mask in has.items():
            # every recorded fault is really there, and no other row has it
            assert set(np.flatnonzero(mask.to_numpy())) == by_fault.get(fault, set()), fault
        for r in by_fault["variant_division"]:
            assert raw.at[r, "county"] in division_variants(plan, raw.at[r, "stratum"][:6])
        # borderline values: valid, at the edge of each rule, and recorded
        assert set(age[list(by_fault["borderline_age"])]) <= {18, 69}
        assert (dur[list(by_fault["borderline_duration"])] == min_dur).all()
        assert {17, 70} <= set(age[list(by_fault["age_out_of_range"])]) or n < 3000
        demo_cols = ["county", "stratum", "psu", "sex", "age", "urban_rural", "education", "occupation"]
        for rec in faults[faults["fault"] == "near_duplicate"].itertuples(index=False):
            src = int(re.search(r"row (\d+)", rec.detail).group(1))
            a, b = raw.loc[rec.row], raw.loc[src]
            assert a[demo_cols].equals(b[demo_cols])
            assert 1 <= int((a[items] != b[items]).sum()) <= 2

        dup_rows = faults[faults["fault"] == "duplicate"]
        for rec in dup_rows.itertuples(index=False):
            src = int(re.search(r"row (\d+)", rec.detail).group(1))
            assert src < rec.row  # the duplicate is the later copy
            a, b = raw.loc[rec.row], raw.loc[src]
            if rec.detail.startswith("exact"):
                assert a.equals(b)
            elif "re-entered" in rec.detail:
                assert a["resp_id"] == b["resp_id"] and not a.equals(b)
            else:
                assert a["resp_id"] != b["resp_id"]
                assert a[demo_cols + items].equals(b[demo_cols + items])
        # apart from the duplicates, resp_id is unique and no two interviews are identical
        rest = raw[~raw.index.isin(dup_rows["row"])]
        assert rest["resp_id"].is_unique
        assert not rest.duplicated(subset=demo_cols + items).any()
    # counts differ between years
    assert not all_counts[0].sort_index().equals(all_counts[1].sort_index())


def test_faults_do_not_move_the_truth(plan):
    pop = build_population(plan, 11)
    with_f, f1 = generate_survey(plan, 2020, 3000, seed=11, population=pop)
    without, f0 = generate_survey(plan, 2020, 3000, seed=11, faults=False, population=pop)
    assert f0.empty and len(without) == 3000 and len(f1) > 0
    assert with_f.attrs["calibration"]["intercept"] == without.attrs["calibration"]["intercept"]
    assert abs(with_f.attrs["calibration"]["achieved"] - 10.0) <= 3.0
    assert abs(without.attrs["calibration"]["achieved"] - 10.0) <= 3.0


def test_margins_add_up_and_match_published(plan, demo):
    root, written = demo
    m = pd.read_csv(written["census"][0], dtype={"division_code": str})
    assert list(m.columns) == list(MARGIN_COLUMNS)
    pd.testing.assert_frame_equal(m, census_margins(plan).astype(m.dtypes.to_dict()), check_dtype=False)
    totals = m.groupby("margin")["population"].sum()
    assert set(totals.index) == {"division_urban", "sex_age", "education"}
    assert totals.nunique() == 1
    assert set(m["source"]) <= {"published", "synthetic"}
    du = m[m["margin"] == "division_urban"]
    assert len(du) == 18 and du[["sex", "age_group", "education"]].isna().all().all()
    assert len(m[m["margin"] == "sex_age"]) == 10 and len(m[m["margin"] == "education"]) == 5

    pub = pd.read_csv(PUBLISHED, dtype={"scope_code": str}, keep_default_na=False)
    res = pub[pub["measure"] == "residents_year_end"].set_index("scope_name_zh")["value"]
    urb = pub[(pub["measure"] == "urban_share") & (pub["year"] == 2021)].set_index("scope_name_zh")["value"]
    assert res.sum() == pytest.approx(703.09)
    # the development zone (34.6万, 65.6% urban) is folded into its host 麻章区 (plan management_zones)
    expected_res = res.drop("经开区").rename(index={v: k for k, v in plan.division_names.items()})
    expected_urb = urb.drop(["经开区", "湛江市"]).rename(index={v: k for k, v in plan.division_names.items()})
    expected_urban_pop = expected_res * expected_urb / 100
    expected_res["440811"] += res["经开区"]
    expected_urban_pop["440811"] += res["经开区"] * urb["经开区"] / 100
    by_div = du.groupby("division_code")["population"].sum()
    share = by_div / by_div.sum()
    np.testing.assert_allclose(share[expected_res.index], expected_res / expected_res.sum(), atol=2e-6)
    urban = du[du["urban_rural"] == "城镇"].set_index("division_code")["population"]
    np.testing.assert_allclose((urban / by_div)[expected_res.index],
                               expected_urban_pop / expected_res, atol=2e-5)
    # ADULT_SHARE of residents: 18-69 population is 62% of 703.09万
    assert totals.iloc[0] == pytest.approx(703.09e4 * 0.62, rel=1e-6)
    sa = m[m["margin"] == "sex_age"]
    male = sa.loc[sa["sex"] == "男", "population"].sum() / sa["population"].sum()
    assert male == pytest.approx(0.5214, abs=1e-6)  # census: men 52.14%


def test_published_file_holds_the_reference_figures():
    pub = pd.read_csv(PUBLISHED, dtype={"scope_code": str}, keep_default_na=False)
    assert pub["source"].str.len().gt(0).all()
    get = pub.set_index(["scope_code", "measure", "year"])["value"]
    assert get[("440800", "census_residents", 2020)] == 6981236
    assert get[("440800", "census_sex_ratio", 2020)] == 108.95
    assert get[("440800", "census_male_share", 2020)] == 52.14
    assert get[("440823", "census_residents", 2020)] == 824608
    assert get[("440881", "residents_year_end", 2021)] == 136.69
    assert get[("440882", "urban_share", 2021)] == 32.2
    assert get[("440800", "urban_share", 2023)] == 48.07
