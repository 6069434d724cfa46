"""The offline render path: qmd -> papermill -> markdown -> pandoc -> typst -> PDF, checked on the PDF's text."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import matplotlib.pyplot as plt
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


@pytest.mark.slow
def test_offline_render_puts_processed_numbers_in_pdf(tmp_path, monkeypatch):
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
