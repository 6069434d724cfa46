"""The rendered PDF's geometry: every figure inside the page's text area, no letter-spaced table text.

Read from the PDF itself (pypdf): images are placed by the content stream's `cm` operators and drawn
by `Do`, also inside form XObjects, which Typst uses for groups.
"""

from __future__ import annotations

import re

import pytest
from pypdf import PdfReader
from pypdf.generic import ContentStream

from analysis.plotting import TEXT_HEIGHT_IN, TEXT_WIDTH_IN

CM = 72 / 2.54
MARGIN = {"top": 3.2 * CM, "bottom": 2.8 * CM, "left": 2.8 * CM, "right": 2.6 * CM}  # cityreport.typ
TOLERANCE = 1.0  # points


def _multiply(a: list[float], b: list[float]) -> list[float]:
    """a·b for PDF matrices [a b c d e f] (row vectors: apply a, then b)."""
    return [a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3],
            a[2] * b[0] + a[3] * b[2], a[2] * b[1] + a[3] * b[3],
            a[4] * b[0] + a[5] * b[2] + b[4], a[4] * b[1] + a[5] * b[3] + b[5]]


def image_boxes(page, reader) -> list[tuple[float, float, float, float]]:
    """(x0, y0, x1, y1) in page points of every image drawn on a page."""
    boxes: list[tuple[float, float, float, float]] = []

    def walk(contents, resources, ctm: list[float]) -> None:
        xobjects = resources.get("/XObject", {}) if resources else {}
        xobjects = xobjects.get_object() if hasattr(xobjects, "get_object") else xobjects
        stack: list[list[float]] = []
        for operands, op in ContentStream(contents, reader).operations:
            if op == b"q":
                stack.append(ctm)
            elif op == b"Q":
                ctm = stack.pop()
            elif op == b"cm":
                ctm = _multiply([float(v) for v in operands], ctm)
            elif op == b"Do":
                xobj = xobjects[operands[0]].get_object()
                if xobj["/Subtype"] == "/Image":
                    corners = [(x * ctm[0] + y * ctm[2] + ctm[4], x * ctm[1] + y * ctm[3] + ctm[5])
                               for x in (0, 1) for y in (0, 1)]
                    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
                    boxes.append((min(xs), min(ys), max(xs), max(ys)))
                elif xobj["/Subtype"] == "/Form":
                    matrix = [float(v) for v in xobj.get("/Matrix", [1, 0, 0, 1, 0, 0])]
                    walk(xobj, xobj.get("/Resources", resources), _multiply(matrix, ctm))

    walk(page.get_contents(), page.get("/Resources"), [1, 0, 0, 1, 0, 0])
    return boxes


def text_area(page) -> tuple[float, float, float, float]:
    box = page.mediabox
    return (float(box.left) + MARGIN["left"], float(box.bottom) + MARGIN["bottom"],
            float(box.right) - MARGIN["right"], float(box.top) - MARGIN["top"])


def test_template_text_area_is_the_one_figures_are_sized_for():
    assert TEXT_WIDTH_IN * 72 == pytest.approx(21.0 * CM - MARGIN["left"] - MARGIN["right"])
    assert TEXT_HEIGHT_IN * 72 == pytest.approx(29.7 * CM - MARGIN["top"] - MARGIN["bottom"])


@pytest.mark.slow
def test_every_image_lies_inside_the_text_area(offline_report):
    reader = PdfReader(str(offline_report.files["pdf"]))
    seen = 0
    for number, page in enumerate(reader.pages, 1):
        x0, y0, x1, y1 = text_area(page)
        for bx0, by0, bx1, by1 in image_boxes(page, reader):
            seen += 1
            assert bx1 - bx0 > 50 and by1 - by0 > 20, f"page {number}: an image drawn {bx1 - bx0:.0f} pt wide"
            assert (bx0 >= x0 - TOLERANCE and bx1 <= x1 + TOLERANCE and by0 >= y0 - TOLERANCE
                    and by1 <= y1 + TOLERANCE), (f"page {number}: image at ({bx0:.0f}, {by0:.0f})–({bx1:.0f}, "
                                                 f"{by1:.0f}) leaves the text area ({x0:.0f}, {y0:.0f})–"
                                                 f"({x1:.0f}, {y1:.0f})")
    assert seen == sum(len(p.images) for p in reader.pages) >= 9


def test_image_boxes_reads_placement(tmp_path):
    """The visitor itself: a figure placed by Typst at a known size and position is found there."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import typst

    fig, _ = plt.subplots(figsize=(2, 1))
    fig.savefig(tmp_path / "f.png", dpi=50)
    plt.close(fig)
    (tmp_path / "d.typ").write_text('#set page(width: 200pt, height: 300pt, margin: 0pt)\n'
                                    '#place(top + left, dx: 20pt, dy: 30pt, image("f.png", width: 100pt))\n',
                                    encoding="utf-8")
    typst.compile(str(tmp_path / "d.typ"), output=str(tmp_path / "d.pdf"))
    reader = PdfReader(str(tmp_path / "d.pdf"))
    [(x0, y0, x1, y1)] = image_boxes(reader.pages[0], reader)
    assert (x0, x1) == (pytest.approx(20), pytest.approx(120))
    assert (y1, y0) == (pytest.approx(270), pytest.approx(220))  # PDF y counts up from the bottom


SPACED = re.compile(r"(?:[\u4e00-\u9fff] ){3,}[\u4e00-\u9fff]")
"""Three or more Chinese characters each followed by a space: justified (letter-spaced) text, as in '与 目 标 差 距'."""


@pytest.mark.slow
def test_no_table_text_is_letter_spaced(offline_report):
    reader = PdfReader(str(offline_report.files["pdf"]))
    # from page 2: pypdf reads the cover's 20 pt title with a space between glyphs (its gap rule is in points)
    spaced = [(n, m.group()) for n, page in enumerate(reader.pages, 1) if n > 1
              for m in SPACED.finditer(page.extract_text() or "")]
    assert not spaced, f"letter-spaced text (page, text): {spaced[:5]}"
    assert SPACED.search("与 目 标 差 距") and not SPACED.search("与目标差距 (百分点)")


def test_indicator_table_is_indicators_by_years_with_decimals_per_row():
    import pandas as pd

    from analysis import report_format as rf
    from analysis import report_tables as tables

    rows = [{"indicator_id": "rate", "name_zh": "比例", "year": y, "scope": "city", "value": v, "target": 16.0,
             "comparison": ">", "unit": "percent", "due": y == 2025, "met": v > 16, "note": "", "n_missing": 0}
            for y, v in [(2024, 15.04), (2025, 14.79)]]
    rows += [{"indicator_id": "tutors", "name_zh": "辅导员", "year": y, "scope": "city", "value": v, "target": 350.0,
              "comparison": ">=", "unit": "人/年", "due": True, "met": v >= 350,
              "note": "missing_counted_as_none" if y == 2024 else "", "n_missing": 2} for y, v in [(2024, 342.0),
                                                                                                  (2025, 389.0)]]
    specs = [{"id": "rate", "name_zh": "比例"}, {"id": "tutors", "name_zh": "辅导员"}]
    t = tables.progress_indicator_table(pd.DataFrame(rows), specs, "zh", verdicts={"rate": "很可能未达到"})
    assert list(t.columns) == ["指标", "计量单位", "目标", "2024", "2025", "是否达标", "说明"]
    assert t["是否达标"].tolist() == ["很可能未达到", "达标（2年中1年达标）"]
    assert t["说明"].tolist()[1].startswith("2024年：2个县")
    shown = rf.format_numbers(t)
    assert shown["2024"].tolist() == ["15.0", "342"] and shown["2025"].tolist() == ["14.8", "389"]


def test_row_decimals_key_is_shared():
    from analysis import report_format, report_tables

    assert report_format.ROW_DECIMALS == report_tables.ROW_DECIMALS


# ------------------------------------------------------------------ text positions: headers, running head, captions

def text_lines(page) -> list[tuple[float, float, str]]:
    """(x, y, text) of every text run Typst drew on a page, in drawing order (a cell's lines are separate runs)."""
    runs: list[tuple[float, float, str]] = []

    def visit(text, cm, tm, _font, _size):
        if text.strip():
            runs.append((tm[4] * cm[0] + cm[4], tm[5] * cm[3] + cm[5], text.strip()))

    page.extract_text(visitor_text=visit)
    return runs


ZWSP = "\u200b"
TABLE = re.compile(r"((?:^\|.*\|\n)+)\n: .*? \{#(tbl-[\w-]+)\}", re.M)


def md_tables(md: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """(label, header cells, body rows) of every pipe table of the report's markdown, in order."""
    out = []
    for block, label in TABLE.findall(md):
        rows = [[c.strip() for c in line.strip()[1:-1].split(" | ")] for line in block.strip().splitlines()]
        out.append((label, rows[0], rows[2:]))
    return out


def short_words(cell: str, most: int = 6) -> list[str]:
    """The parts of a header cell that must never break: runs of 2..`most` characters between spaces and the
    break hints md_table writes (zero-width spaces)."""
    return [w for w in re.split(rf"[\s{ZWSP}]+", cell) if 2 <= len(w) <= most]


def broken_words(runs: list[tuple[float, float, str]], words: set[str]) -> list[str]:
    """Words split over two lines of one cell: a short run that is a proper start of a word, followed by a run
    below it (same column) that continues the word."""
    found = []
    for (x0, y0, a), (x1, y1, b) in zip(runs, runs[1:], strict=False):
        a = a.rstrip("-‐")
        if len(a) > 6 or y1 >= y0 - 1 or abs(x1 - x0) > 80:
            continue
        found += [f"{a}/{b}" for w in words if len(a) < len(w) and w.startswith(a)
                  and (b.startswith(w[len(a):]) or w[len(a):].startswith(b))]
    return found


def test_broken_words_finds_a_word_split_over_two_lines():
    runs = [(80, 700, "直接估"), (80, 689, "计（%）"), (120, 700, "样本量"), (80, 650, "目"), (80, 640, "标")]
    assert broken_words(runs, {"直接估计", "样本量", "目标"}) == ["直接估/计（%）", "目/标"]
    assert broken_words([(80, 700, "直接估计"), (80, 689, "（%）")], {"直接估计"}) == []
    assert short_words(f"直接估计{ZWSP}（%）") == ["直接估计", "（%）"] and short_words("Gap to target (points)") == [
        "Gap", "to", "target"]


def test_broken_words_reads_a_typst_table(tmp_path):
    """On a real PDF: a Chinese header in a too-narrow cell breaks inside (Typst's default), and is found;
    the template's short-word rule keeps it whole."""
    import typst

    from analysis.render import TEMPLATE, typst_font_dir

    cell = "table(columns: (32pt, 60pt), [直接估计], [样本量], [12.5], [60])"
    for template, expected in ((False, ["直/接"]), (True, [])):
        head = f'#import "{TEMPLATE.resolve()}": *\n#show: cityreport.with(title: [t], toc: false)\n' if template else ""
        (tmp_path / "d.typ").write_text(head + f'#set text(font: "Noto Sans CJK SC", size: 12pt)\n#{cell}\n',
                                        encoding="utf-8")
        typst.compile(str(tmp_path / "d.typ"), output=str(tmp_path / "d.pdf"), root="/",
                      font_paths=[str(typst_font_dir())])
        reader = PdfReader(str(tmp_path / "d.pdf"))
        runs = [r for page in reader.pages for r in text_lines(page)]
        assert broken_words(runs, {"直接估计", "样本量"}) == expected, runs


@pytest.fixture(scope="module")
def rendered_both(demo_pipeline, offline_report):
    """The zh report (conftest) and the en one, each as (reader, markdown)."""
    from analysis.render import render

    d = demo_pipeline
    en = render(d.plan, 2025, lang="en", processed_root=d.processed, out_dir=d.tmp / "out-en", engine="offline",
                work_dir=d.tmp / "work-en")
    out = {}
    for lang, files, work in (("zh", offline_report.files, offline_report.work), ("en", en, d.tmp / "work-en")):
        stem = files["pdf"].stem
        md = (work / "offline" / stem / f"{stem}.md").read_text(encoding="utf-8")
        out[lang] = (PdfReader(str(files["pdf"])), md)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_no_table_word_is_broken_inside(rendered_both, lang):
    """Header words of at most 6 characters (and the words between break hints) are never split over two lines."""
    reader, md = rendered_both[lang]
    words = {w for _, head, _ in md_tables(md) for cell in head for w in short_words(cell)}
    assert len(words) > 20
    broken = [(n, b) for n, page in enumerate(reader.pages, 1) for b in broken_words(text_lines(page), words)]
    assert not broken, f"table words broken over two lines (page, word): {broken[:8]}"


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_running_header_is_one_line(rendered_both, lang):
    reader, _ = rendered_both[lang]
    for n, page in enumerate(reader.pages[2:], 3):
        top = float(page.mediabox.top) - MARGIN["top"]
        ys = {round(y) for _, y, _ in text_lines(page) if y > top + 10}
        assert len(ys) == 1, f"page {n}: the running header is on {len(ys)} lines"


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_table_starts_with_its_caption_and_two_rows(rendered_both, lang):
    """No caption, nor a table's header with fewer than two body rows, left at the foot of a page."""
    reader, md = rendered_both[lang]
    tables = md_tables(md)
    caption = re.compile(r"^(?:表\s*(\d+)\u2003|Table\xa0(\d+):)")
    seen = 0
    for n, page in enumerate(reader.pages, 1):
        runs = text_lines(page)
        joined = [(y, a + b) for (_, y, a), (_, _, b) in zip(runs, runs[1:], strict=False)] + [(y, t) for _, y, t in runs]
        for y, text in joined:
            m = caption.match(text)
            number = int(m.group(1) or m.group(2)) if m else 0
            if not m or number > len(tables):
                continue
            seen += 1
            label, _, body = tables[number - 1]
            firsts = [next((c for c in row if c and c != "—"), "") for row in body[:2]]
            rows: dict[int, list[tuple[float, str]]] = {}
            for x, yy, t in runs:  # one text per printed line (Latin text comes in runs split at kerning)
                rows.setdefault(round(yy), []).append((x, t))
            below = ["".join(t for _, t in sorted(parts)).replace(" ", "") for yy, parts in rows.items() if yy < y]
            for cell in firsts:
                head = re.split(rf"[\s{ZWSP}]+", cell)[0][:6].replace(" ", "")
                assert any(head in t for t in below), (f"page {n}: table {number} ({label}) starts with its caption "
                                                       f"but row '{cell}' is not on the page")
    assert seen >= len(tables)
