"""Ordered categories in their natural order in the report's tables and figures, from the demo results, zh and en.

The catalog returns estimates sorted by code (初中 < 大专 < 小学及以下 …); the report must not: divisions in the
plan's (admin-code) order, key groups as the plan lists them, age bands by lower bound, education from 小学及以下
up, urban before rural, years ascending.
"""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from analysis import catalog, report_figures, report_tables
from analysis.vocabulary import division_names, domain_label, key_group_names, level_label

LANGS = ("zh", "en")
EDUCATION = ("小学及以下", "初中", "高中", "大专", "本科及以上")


def expected(plan, lang: str) -> dict[str, list[str]]:
    """Per domain, the labels of its levels in natural order."""
    return {
        "division": list(division_names(plan, lang).values()),
        "key_group": [level_label(plan, "key_group", g, lang) for g in key_group_names(plan)],
        "education": [level_label(plan, "education", e, lang) for e in EDUCATION],
        "age_group": ["18-29", "30-39", "40-49", "50-59", "60-69"],
        "urban_rural": [level_label(plan, "urban_rural", u, lang) for u in ("城镇", "乡村")],
    }


def in_order(seen: list[str], wanted: list[str]) -> bool:
    """Whether the wanted labels that occur in `seen` occur in the wanted order."""
    positions = [seen.index(w) for w in wanted if w in seen]
    return len(positions) >= 2 and positions == sorted(positions)


def test_in_order():
    assert in_order(["a", "x", "b", "c"], ["a", "b", "c"]) and not in_order(["b", "a"], ["a", "b"])


@pytest.fixture(scope="module")
def results(demo_pipeline):
    d = demo_pipeline
    estimates = catalog.load_estimates(d.plan, d.processed, up_to=2025)
    traj = json.loads((d.processed / d.plan.city / "2025" / "trajectory.json").read_text(encoding="utf-8"))
    return d, estimates, traj


@pytest.mark.slow
@pytest.mark.parametrize("lang", LANGS)
def test_group_table_lists_every_domain_in_natural_order(results, lang):
    d, estimates, _ = results
    assert not in_order(list(estimates[estimates["domain"] == "education"]["level"].unique()), list(EDUCATION))
    t = report_tables.domain_table(estimates, d.plan, lang, "literate", 2025)
    labels = t.iloc[:, 1].tolist()
    for domain, wanted in expected(d.plan, lang).items():
        part = [x for x, g in zip(labels, t.iloc[:, 0], strict=True)
                if g == domain_label(domain, lang)]
        assert part == [w for w in wanted if w in part] and len(part) >= 2, (domain, part)


@pytest.mark.slow
@pytest.mark.parametrize("lang", LANGS)
def test_gaps_table_lists_groups_in_natural_order(results, lang):
    d, _, traj = results
    rows = report_tables.groups_table(traj, d.plan, lang).iloc[:, 0].tolist()
    want = expected(d.plan, lang)
    assert in_order(rows, want["key_group"]) and in_order(rows, want["urban_rural"]), rows


@pytest.mark.slow
@pytest.mark.parametrize("lang", LANGS)
def test_group_figure_lists_levels_in_natural_order(results, lang, tmp_path):
    """The figure's text (save_figure writes it into the PNG): tick labels from top to bottom."""
    d, estimates, _ = results
    path = report_figures.estimates_by_group(estimates, d.plan, 2025, lang, tmp_path / "g.png")
    with Image.open(path) as im:
        texts = im.info["Description"].splitlines()
    want = expected(d.plan, lang)
    for domain in ("division", "education", "age_group"):
        assert in_order(texts, want[domain]), (domain, [t for t in texts if t in want[domain]])


@pytest.mark.slow
def test_years_ascend_in_the_survey_and_indicator_tables(offline_report):
    stem = offline_report.files["pdf"].stem
    md = (offline_report.work / "offline" / stem / f"{stem}.md").read_text(encoding="utf-8")
    survey = re.search(r"((?:^\|.*\|\n)+)\n: [^\n]*\{#tbl-survey-years\}", md, re.M).group(1)
    years = [int(line.split("|")[1]) for line in survey.strip().splitlines()[2:]]
    assert years == sorted(years) and len(years) >= 5
    indicators = re.search(r"((?:^\|.*\|\n)+)\n: [^\n]*\{#tbl-indicators\}", md, re.M).group(1)
    columns = [int(c) for c in re.findall(r"\|\s*(\d{4})\s*(?=\|)", indicators.splitlines()[0])]
    assert columns == sorted(columns) and len(columns) >= 3
