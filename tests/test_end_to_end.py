"""End to end on small synthetic data: demo inputs -> five notebooks -> offline report, checked on the PDF."""

from __future__ import annotations

import json
import re
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from pypdf import PdfReader
from test_render import assert_no_missing_glyphs, pdf_text

from analysis.render import render
from analysis.report_format import pct, prob


@pytest.fixture(scope="module")
def rendered(demo_pipeline, offline_report):
    d = demo_pipeline  # tests/conftest.py: the pipeline runs once a session, shared with test_quarto.py
    return d.plan, d.processed, offline_report.files, d.ran, d.lines, offline_report.work


@pytest.mark.slow
def test_every_notebook_ran_and_progress_was_shown(rendered):
    plan, processed, files, ran, lines, _ = rendered
    assert len(ran) == 2 * len(plan.survey_years) + 3
    assert sum("done" in ln for ln in lines) == len(ran)
    for year in plan.survey_years:
        clean = pd.read_parquet(processed / "zhanjiang" / str(year) / "survey_clean.parquet")
        ledger = pd.read_parquet(processed / "zhanjiang" / str(year) / "ledger.parquet")
        raw_rows = len(pd.read_csv(plan.raw_survey_path(year), dtype=str))
        assert len(ledger) == raw_rows  # every input row is in the ledger
        assert (ledger.status == "kept").sum() == len(clean)


@pytest.mark.slow
def test_pdf_states_synthetic_and_headline_numbers_from_processed(rendered):
    plan, processed, files, _, _, _ = rendered
    text = pdf_text(files["pdf"])
    flat = re.sub(r"\s+", "", text)
    title = re.sub(r"\s+", "", plan.data["city"]["report_title_zh"])
    assert title[:12] in flat
    assert "合成数据" in flat
    traj = json.loads((processed / "zhanjiang" / "2025" / "trajectory.json").read_text(encoding="utf-8"))
    progress = json.loads((processed / "zhanjiang" / "2025" / "progress.json").read_text(encoding="utf-8"))
    lo, hi = traj["latest_ci"]
    assert f"比例估计为{pct(traj['latest_estimate'])}（95%置信区间{pct(lo)}–{pct(hi)}）" in flat
    assert f"基线{pct(traj['baseline'])}" in flat and "基线10.0%" in flat
    assert f"概率为{prob(traj['headline']['p_exceeds_target'])}" in flat
    assert f"已完成{progress['measures_completed']}项（{pct(progress['completed_share'])}）" in flat
    assert "@fig" not in flat and "@tbl" not in flat and "??" not in flat
    assert_no_missing_glyphs(text)


@pytest.mark.slow
def test_every_figure_is_embedded(rendered):
    plan, processed, files, _, _, work = rendered
    md = work / "offline" / "zhanjiang-2025-evaluation" / "zhanjiang-2025-evaluation.md"
    refs = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", md.read_text(encoding="utf-8"))
    assert len(refs) >= 9
    assert all(Path(r).is_file() and Path(r).is_relative_to(processed) for r in refs)
    images = sum(len(page.images) for page in PdfReader(str(files["pdf"])).pages)
    assert images == len(refs)


@pytest.mark.slow
def test_html_and_workbook_carry_the_same_results(rendered):
    plan, processed, files, _, _, _ = rendered
    html = files["html"].read_text(encoding="utf-8")
    traj = json.loads((processed / "zhanjiang" / "2025" / "trajectory.json").read_text(encoding="utf-8"))
    assert "合成数据" in html and pct(traj["latest_estimate"]) in html
    assert html.count("<img") >= 9 and 'src="data:image/png;base64,' in html  # self-contained
    assert "@fig-" not in html and "@tbl-" not in html
    book = openpyxl.load_workbook(files["xlsx"], read_only=True)
    assert book.sheetnames[0] == "说明" and len(book.sheetnames) >= 10
    first = next(n for n in book.sheetnames if n.startswith("表1 "))
    rows = list(book[first].iter_rows(values_only=True))
    years = [r[0] for r in rows[1:]]
    assert years == plan.survey_years


CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def english_allowed_chinese(plan) -> list[str]:
    """Chinese names the English report gives on purpose beside their English ones (the plan's document number)."""
    return [plan.data["city"]["plan_document"]]


@pytest.fixture(scope="module")
def rendered_en(rendered):
    """The English report of the same run (the demo pipeline runs once for the module)."""
    plan, processed, _, _, _, work = rendered
    files = render(plan, 2025, lang="en", processed_root=processed, out_dir=work.parent / "out", engine="offline",
                   work_dir=work)
    md = work / "offline" / "zhanjiang-2025-evaluation-en" / "zhanjiang-2025-evaluation-en.md"
    return plan, processed, files, md


@pytest.mark.slow
def test_english_pdf_has_no_chinese_but_the_allowed_names(rendered_en):
    plan, processed, files, _ = rendered_en
    text = re.sub(r"\s+", "", pdf_text(files["pdf"]))
    for name in english_allowed_chinese(plan):
        text = text.replace(re.sub(r"\s+", "", name), "")
    stray = sorted({m.group(0) for m in re.finditer(r".{0,12}" + CJK.pattern + r"+.{0,12}", text)})
    assert not stray, f"Chinese text in the English report: {stray[:10]}"
    assert "Zhanjiang Association for Science and Technology" in pdf_text(files["pdf"])  # the issuer, in English
    traj = json.loads((processed / "zhanjiang" / "2025" / "trajectory.json").read_text(encoding="utf-8"))
    assert f"estimatedat{pct(traj['latest_estimate'])}" in text
    # Latin text is set in a Latin font (no apostrophe from a CJK font's full-width glyph)
    fonts = {str(f.get_object()["/BaseFont"]) for page in PdfReader(str(files["pdf"])).pages
             for f in page["/Resources"]["/Font"].values()}
    assert any("LibertinusSerif" in f for f in fonts) and any("DejaVuSans" in f for f in fonts), fonts


@pytest.mark.slow
def test_english_figures_carry_english_text(rendered_en):
    from PIL import Image

    plan, processed, files, md = rendered_en
    refs = [Path(r) for r in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", md.read_text(encoding="utf-8"))]
    assert len(refs) >= 9
    for ref in refs:
        assert ref.parent.name == "en" and ref.is_relative_to(processed), ref
        text = Image.open(ref).info.get("Description", "")  # every text the figure draws (plotting.save_figure)
        assert re.search(r"[A-Za-z]{4}", text), f"{ref.name} draws no English words"
        assert not CJK.search(text), f"{ref.name} draws Chinese: {CJK.findall(text)[:5]}"
    maps = next(r for r in refs if r.name == "map_estimate.png")
    assert "Chikan District" in Image.open(maps).info["Description"]  # official English division names
    zh = processed / "zhanjiang" / "2025" / "figures" / "zh" / "map_estimate.png"
    assert "赤坎区" in Image.open(zh).info["Description"]  # the Chinese report's figures stay Chinese


@pytest.mark.slow
def test_english_workbook_has_english_sheets_and_headers(rendered_en):
    _, _, files, _ = rendered_en
    book = openpyxl.load_workbook(files["xlsx"], read_only=True)
    assert book.sheetnames[0] == "Notes" and len(book.sheetnames) >= 10
    first = next(n for n in book.sheetnames if n.startswith("Table 1 "))
    header = next(book[first].iter_rows(values_only=True))
    assert header[0] == "Year" and not any(CJK.search(str(h)) for h in header)
