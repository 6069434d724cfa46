"""The Quarto render path, run for real whenever a `quarto` command is on PATH, compared with the offline path.

Without Quarto these tests are skipped (CI installs ../shared/tools/quarto-kit, see .ci/run).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from pypdf import PdfReader
from test_render import FIXTURES, assert_failed_render_changed_nothing, mini_report, pdf_text

from analysis import render as render_mod
from analysis.config import ROOT
from analysis.report_format import pct

QUARTO = shutil.which("quarto")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(QUARTO is None, reason="no quarto command on PATH: the Quarto render path is not tested "
                       "(install Quarto, or ../shared/tools/quarto-kit as .ci/run does)"),
]


def git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored=no"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout


def font_names(pdf) -> set[str]:
    names = set()
    for page in PdfReader(str(pdf)).pages:
        for font in (page.get("/Resources", {}).get("/Font") or {}).values():
            names.add(str(font.get_object()["/BaseFont"]).split("+")[-1])
    return names


@pytest.fixture(scope="module")
def quarto_report(demo_pipeline):
    d = demo_pipeline
    before = git_status()
    files = render_mod.render(d.plan, 2025, processed_root=d.processed, out_dir=d.tmp / "quarto-out",
                              engine="quarto", work_dir=d.tmp / "quarto-work")
    return files, before, git_status()


def test_quarto_leaves_the_repository_unchanged(quarto_report):
    _, before, after = quarto_report
    assert after == before
    assert not (ROOT / ".quarto").exists() and not (ROOT / "reports" / "evaluation.typ").exists()


def test_quarto_pdf_matches_offline(demo_pipeline, offline_report, quarto_report):
    d = demo_pipeline
    files, _, _ = quarto_report
    assert set(files) == {"pdf", "html", "xlsx"}
    quarto_pdf, offline_pdf = PdfReader(str(files["pdf"])), PdfReader(str(offline_report.files["pdf"]))
    title = d.plan.data["city"]["report_title_zh"]
    assert quarto_pdf.metadata.title == offline_pdf.metadata.title == title
    q = re.sub(r"\s+", "", pdf_text(files["pdf"]))
    o = re.sub(r"\s+", "", pdf_text(offline_report.files["pdf"]))
    assert q[:300] == o[:300]  # cover: title, subtitle, issuer, date, synthetic-data notice
    meta = render_mod.report_metadata(d.plan, 2025, "zh", d.processed)
    assert meta["date"] in q and "InvalidDate" not in q and "合成数据" in q
    traj = json.loads((d.processed / "zhanjiang" / "2025" / "trajectory.json").read_text(encoding="utf-8"))
    lo, hi = traj["latest_ci"]
    assert f"比例估计为{pct(traj['latest_estimate'])}（95%置信区间{pct(lo)}–{pct(hi)}）" in q
    assert "@fig" not in q and "@tbl" not in q and "??" not in q
    for label in ("图1", "表1", "附录B"):
        assert label in q
    images = sum(len(p.images) for p in quarto_pdf.pages)
    assert images == sum(len(p.images) for p in offline_pdf.pages) >= 9
    fonts = font_names(files["pdf"])
    assert {"NotoSerifCJKsc-Regular-Identity-H"} <= fonts and any(f.startswith("NotoSansCJKsc") for f in fonts)
    assert not any("Droid" in f or "Libertinus" in f for f in fonts)
    assert quarto_pdf.metadata.creation_date == offline_pdf.metadata.creation_date


def test_quarto_pdf_keeps_the_table_layout_rules(offline_report, quarto_report):
    """Pandoc under Quarto gets the same tables (break hints, font-size updates) and template: no header word
    broken inside, the running header on one line, every table with its caption and two rows on its page."""
    from test_report_layout import (
        MARGIN,
        broken_words,
        md_tables,
        short_words,
        test_every_table_starts_with_its_caption_and_two_rows,
        text_lines,
    )

    files, _, _ = quarto_report
    reader = PdfReader(str(files["pdf"]))
    stem = offline_report.files["pdf"].stem
    md = (offline_report.work / "offline" / stem / f"{stem}.md").read_text(encoding="utf-8")
    words = {w for _, head, _ in md_tables(md) for cell in head for w in short_words(cell)}
    assert not [(n, b) for n, page in enumerate(reader.pages, 1) for b in broken_words(text_lines(page), words)]
    for page in reader.pages[2:]:
        top = float(page.mediabox.top) - MARGIN["top"]
        assert len({round(y) for _, y, _ in text_lines(page) if y > top + 10}) == 1
    test_every_table_starts_with_its_caption_and_two_rows({"zh": (reader, md)}, "zh")


def test_quarto_html_is_self_contained_and_complete(demo_pipeline, quarto_report):
    d = demo_pipeline
    files, _, _ = quarto_report
    html = files["html"].read_text(encoding="utf-8")
    assert d.plan.data["city"]["report_title_zh"] in html
    meta = render_mod.report_metadata(d.plan, 2025, "zh", d.processed)
    assert meta["date"] in html and "Invalid Date" not in html
    assert "合成数据" in html and meta["issuer"] in html
    assert html.count('src="data:image/png;base64,') >= 9
    assert "@fig-" not in html and "@tbl-" not in html
    assert files["xlsx"].stat().st_size > 0


def test_quarto_renders_are_byte_identical(demo_pipeline, quarto_report):
    d = demo_pipeline
    files, _, _ = quarto_report
    again = render_mod.render(d.plan, 2025, processed_root=d.processed, out_dir=d.tmp / "quarto-out-again",
                              engine="quarto", work_dir=d.tmp / "quarto-work-again")
    for kind in ("pdf", "html", "xlsx"):
        assert again[kind].read_bytes() == files[kind].read_bytes(), f"{kind} differs between two Quarto renders"


def test_failed_quarto_render_leaves_previous_outputs(tmp_path, monkeypatch):
    before = git_status()
    plan, processed = mini_report(tmp_path, monkeypatch)
    assert_failed_render_changed_nothing(plan, processed, tmp_path, "quarto")
    assert git_status() == before
    assert (FIXTURES / "mini.qmd").exists()
