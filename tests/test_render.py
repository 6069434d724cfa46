"""The offline render path: qmd -> papermill -> markdown -> pandoc -> typst -> PDF, checked on the PDF's text."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from fontTools.ttLib import TTCollection, TTFont
from pypdf import PdfReader

from analysis import render as render_mod
from analysis.config import ROOT, load_plan
from analysis.plotting import save_figure, use_cjk_font
from analysis.provenance import write_manifest
from analysis.qmd import QmdError, parse_qmd, typst_crossrefs

FIXTURES = Path(__file__).parent / "fixtures" / "render"
CJK = re.compile(r"[\u3400-\u9fff\u3000-\u303f\uff00-\uffef]")


def pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)


@cache
def font_cmaps() -> frozenset[int]:
    font_dir = render_mod.typst_font_dir()
    codepoints: set[int] = set()
    for path in font_dir.iterdir():
        fonts = TTCollection(str(path)).fonts if path.suffix == ".ttc" else [TTFont(str(path))]
        for font in fonts:
            codepoints |= set(font.getBestCmap())
    return frozenset(codepoints)


def assert_no_missing_glyphs(text: str) -> None:
    chars = set(CJK.findall(text))
    covered = font_cmaps()
    missing = sorted(c for c in chars if ord(c) not in covered)
    assert chars and not missing, f"CJK characters without a glyph in the report fonts: {missing}"


def test_parse_qmd_options_includes_and_crossrefs():
    qmd = parse_qmd(FIXTURES / "mini.qmd")
    code = [c for c in qmd.cells if c.cell_type == "code"]
    assert code[0].metadata["tags"] == ["parameters"]
    assert code[2].metadata["qmd_options"] == {"output": "asis"}
    assert any("由 include 引入" in c.source for c in qmd.cells if c.cell_type == "markdown")
    assert typst_crossrefs("见 @fig-bar，邮件 a@fig-x。") == "见 `@fig-bar`{=typst}，邮件 a@fig-x。"


def test_parse_qmd_rejects_unclosed_cell(tmp_path):
    bad = tmp_path / "bad.qmd"
    bad.write_text("# x\n\n```{python}\nprint(1)\n", encoding="utf-8")
    with pytest.raises(QmdError, match="not closed"):
        parse_qmd(bad)


def mini_report(tmp_path: Path, monkeypatch) -> tuple:
    """The mini report's inputs (facts.json, a figure, a manifest) under tmp_path; returns (plan, processed)."""
    plan = load_plan("zhanjiang")
    processed = tmp_path / "processed"
    year_dir = processed / "testcity" / "2025"
    use_cjk_font()
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(["赤坎区", "雷州市"], [17.2, 8.4])
    figure = save_figure(fig, ROOT / "build" / "test-render" / "bar.png")
    facts = {"rate": 13.456, "baseline": 10.0, "n": 1234, "figure": "/" + str(figure.relative_to(ROOT)),
             "divisions": {"赤坎区": 17.24, "雷州市": 8.38}}
    year_dir.mkdir(parents=True)
    (year_dir / "facts.json").write_text(json.dumps(facts, ensure_ascii=False), encoding="utf-8")
    raw = tmp_path / "survey-2025-synthetic.csv"
    raw.write_text("x\n1\n", encoding="utf-8")
    write_manifest(year_dir, "01_clean", [raw], [], {"year": 2025})
    # the mini report uses its own city id so the real plan's outputs are never touched
    monkeypatch.setattr(type(plan), "city", property(lambda self: "testcity"))
    return plan, processed


def broken_copy(tmp_path: Path) -> Path:
    """The mini report with a last cell that fails, as a report with a bug would."""
    folder = tmp_path / "broken"
    shutil.copytree(FIXTURES, folder)
    qmd = folder / "mini.qmd"
    qmd.write_text(qmd.read_text(encoding="utf-8") + "\n```{python}\nraise ValueError('planted failure')\n```\n",
                   encoding="utf-8")
    return qmd


def assert_failed_render_changed_nothing(plan, processed, tmp_path, engine: str) -> None:
    out = tmp_path / "out"
    files = render_mod.render(plan, 2025, processed_root=processed, out_dir=out, engine=engine,
                              qmd=FIXTURES / "mini.qmd", work_dir=tmp_path / "work", check=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {files["pdf"].name, files["html"].name}
    with pytest.raises(render_mod.RenderError, match="planted failure|failed"):
        render_mod.render(plan, 2025, processed_root=processed, out_dir=out, engine=engine,
                          qmd=broken_copy(tmp_path), work_dir=tmp_path / "work", check=False)
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after.keys() == before.keys()  # no partial file left behind
    assert all(after[k] == before[k] for k in before)


@pytest.mark.slow
def test_offline_render_puts_processed_numbers_in_pdf(tmp_path, monkeypatch):
    plan, processed = mini_report(tmp_path, monkeypatch)
    files = render_mod.render(plan, 2025, processed_root=processed, out_dir=tmp_path / "out",
                              engine="offline", qmd=FIXTURES / "mini.qmd",
                              work_dir=tmp_path / "work", check=False)
    text = pdf_text(files["pdf"])
    flat = re.sub(r"\s+", "", text)
    assert plan.data["city"]["report_title_zh"].replace("（", "(").replace("）", ")") in \
        flat.replace("（", "(").replace("）", ")")
    assert "合成数据" in flat
    assert "13.5%" in flat and "基线为10.0%" in flat
    assert "17.2" in flat and "8.4" in flat
    assert "图1" in flat and "表1" in flat  # cross-references resolved, not left as @fig-bar
    assert "@fig" not in flat and "@tbl" not in flat
    reader = PdfReader(str(files["pdf"]))
    images = sum(len(page.images) for page in reader.pages)
    assert images == 1
    assert_no_missing_glyphs(text)
    assert "2025年12月" in flat  # no survey data: the report's date is the end of the report year
    assert reader.metadata.creation_date.date() == date(2025, 12, 31)


@pytest.mark.slow
def test_failed_offline_render_leaves_previous_outputs(tmp_path, monkeypatch):
    plan, processed = mini_report(tmp_path, monkeypatch)
    assert_failed_render_changed_nothing(plan, processed, tmp_path, "offline")


def test_report_date_from_source_date_epoch_else_data(tmp_path, monkeypatch):
    plan, processed = mini_report(tmp_path, monkeypatch)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767139200")  # 2025-12-31T00:00:00Z
    assert render_mod.source_date(plan, 2025, processed) == datetime(2025, 12, 31, tzinfo=UTC)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1761955200")  # 2025-11-01
    assert render_mod.report_metadata(plan, 2025, "zh", processed)["date"] == "2025年11月"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(render_mod.RenderError, match="SOURCE_DATE_EPOCH"):
        render_mod.source_date(plan, 2025, processed)
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    clean = processed / "testcity" / "2023"
    clean.mkdir(parents=True)
    pd.DataFrame({"interview_date": pd.to_datetime(["2023-03-02", "2023-10-17", None])}).to_parquet(
        clean / "survey_clean.parquet")
    assert render_mod.source_date(plan, 2025, processed) == datetime(2023, 10, 17, tzinfo=UTC)
    assert render_mod.source_date(plan, 2022, processed) == datetime(2022, 12, 31, tzinfo=UTC)


@pytest.mark.slow
def test_two_offline_renders_are_byte_identical(demo_pipeline, offline_report):
    d = demo_pipeline
    again = render_mod.render(d.plan, 2025, processed_root=d.processed, out_dir=d.tmp / "out-again",
                              engine="offline", work_dir=d.tmp / "work-again")
    assert set(again) == {"pdf", "html", "xlsx"}
    for kind, path in again.items():
        assert path.read_bytes() == offline_report.files[kind].read_bytes(), f"{kind} differs between two renders"


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    pytest.skip("no /proc/self/status")


def test_typst_compiles_in_a_child_that_gives_its_memory_back(tmp_path):
    # typst's wheel never evicts its memoisation cache: in-process, each of these documents adds ~70 MB
    import random

    rng = random.Random(7)
    before = None
    for i in range(4):
        typ = tmp_path / f"d{i}.typ"
        typ.write_text("".join(rng.choice("abcdefghij  ") for _ in range(400_000)), encoding="utf-8")
        render_mod.compile_typst(typ, tmp_path / f"d{i}.pdf")
        assert PdfReader(tmp_path / f"d{i}.pdf").pages
        before = before or _rss_mb()
    assert _rss_mb() - before < 40

    bad = tmp_path / "bad.typ"
    bad.write_text("#let x = (\n", encoding="utf-8")
    with pytest.raises(render_mod.RenderError, match=r"typst failed on .*bad\.typ: .*\S"):
        render_mod.compile_typst(bad, tmp_path / "bad.pdf")
