"""Markdown building blocks for the report: numbers, tables and figures with cross-reference labels."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .config import ROOT
from .vocabulary import term


def pct(value: float | None, digits: int = 1) -> str:
    """'13.5%'; a dash for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}%"


def prob(p: float | None) -> str:
    """A probability as a whole percentage, never a rounded-off certainty: '<1%', '37%', '>99%'."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "—"
    if not 0 <= p <= 1:
        raise ValueError(f"probability out of [0, 1]: {p}")
    if p < 0.01:
        return "<1%"
    if p > 0.99:
        return ">99%"
    return f"{p:.0%}"


def num(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}"


def interval(low: float | None, high: float | None, digits: int = 1, unit: str = "%") -> str:
    """'11.2%–15.8%'."""
    if low is None or high is None or any(isinstance(v, float) and math.isnan(v) for v in (low, high)):
        return "—"
    return f"{low:.{digits}f}{unit}–{high:.{digits}f}{unit}"


def format_probabilities(table: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """A copy with the given probability columns (fractions) written as '<1%', '37%', '>99%'."""
    out = table.copy()
    for c in columns:
        if c not in out.columns:
            raise KeyError(f"no column {c!r} to format as probability; columns: {list(out.columns)}")
        out[c] = [prob(None if pd.isna(v) else float(v)) for v in out[c]]
    return out


def blank_suppressed(table: pd.DataFrame, suppressed: Sequence[bool], columns: Sequence[str],
                     lang: str = "zh") -> pd.DataFrame:
    """A copy with `columns` blanked ('—') on suppressed rows and the reason in a note column (备注 / Note)."""
    flags = [False if pd.isna(x) else bool(x) for x in suppressed]  # missing flag: no direct estimate to hide
    if len(flags) != len(table):
        raise ValueError(f"suppressed has {len(flags)} flags for {len(table)} rows")
    mask = pd.Series(flags, index=table.index, dtype=bool)
    out = table.astype({c: object for c in columns})
    for c in columns:
        out.loc[mask, c] = "—"
    note = term("word", "suppressed_note", lang)
    out[term("header", "note", lang)] = ["" if not m else note for m in mask]
    return out


def _missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and other non-scalars are values
        return False


_NEGATIVE_ZERO = re.compile(r"[-−](?=0(?:\.0+)?(?![\d.]))")


def no_negative_zero(text: str) -> str:
    """'−0.00' and '-0.0' as '0.00' and '0.0' (a value that rounds to zero has no sign), in any cell text."""
    return _NEGATIVE_ZERO.sub("", text)


def _cell(value: object) -> str:
    text = "—" if _missing(value) else no_negative_zero(str(value))
    return text.replace("|", "\\|").replace("\n", " ")


def group_rows(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """A copy where a value repeated in consecutive rows is shown once, on the first (grouped rows).

    Columns are grouped left to right: a column's run ends where a column to its left starts a new one.
    """
    out = df.astype({c: object for c in columns})
    new_run = pd.Series(False, index=df.index)
    for c in columns:
        if c not in df.columns:
            raise KeyError(f"no column {c!r} to group; columns: {list(df.columns)}")
        values = df[c].astype(str)
        new_run = new_run | values.ne(values.shift())
        out.loc[~new_run, c] = ""
    return out


def _decimals(values: Sequence[float], cap: int = 2) -> int:
    """The most decimals any value needs, at most `cap` (0 for integer-valued columns)."""
    most = 0
    for v in values:
        r = round(float(v), cap)
        most = max(most, next(k for k in range(cap + 1) if abs(round(r, k) - r) < 1e-9))
    return most


BLANKS = {"—", "", "-"}
"""Text that stands for no value in a numeric column (suppressed or missing)."""


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not _missing(v)


ROW_DECIMALS = "row_decimals"  # = report_tables.ROW_DECIMALS (no import: the stages must not depend on this module)


def format_numbers(df: pd.DataFrame, decimals: Mapping[str, int] | None = None) -> pd.DataFrame:
    """A copy with numeric cells as text: one number of decimals per column, no thousands separators.

    A column's decimals are `decimals[column]` if given, else the most any of
    its values needs, at most 2; integer-valued floats (1.0, 3000.0) print as
    integers. Text cells (e.g. '—' of suppressed rows) are left as they are; in
    a column that also holds other text (thresholds of different rules), each
    number gets the decimals it needs.
    """
    decimals = dict(decimals or {})
    unknown = set(decimals) - set(df.columns)
    if unknown:
        raise KeyError(f"decimals given for columns not in the table: {sorted(unknown)}; columns: {list(df.columns)}")
    out = df.copy()
    rows = df.attrs.get(ROW_DECIMALS)
    for c in df.columns:
        values = [v.item() if hasattr(v, "item") and not isinstance(v, str) else v for v in df[c].tolist()]
        numbers = [v for v in values if _is_number(v)]
        if not numbers:
            continue
        if rows is not None and c not in decimals:  # each row's quantity its own decimals
            out[c] = pd.Series([f"{v:.{k}f}" if _is_number(v) else v for v, k in zip(values, rows, strict=True)],
                               index=df.index, dtype=object)
            continue
        texts = [v for v in values if isinstance(v, str) and v not in BLANKS]
        if texts and c not in decimals:  # a column of mixed things (thresholds of several rules): each on its own
            out[c] = pd.Series([f"{v:.{_decimals([v])}f}" if _is_number(v) else v for v in values],
                               index=df.index, dtype=object)
            continue
        k = decimals.get(c, _decimals(numbers))
        out[c] = pd.Series([f"{v:.{k}f}" if _is_number(v) else v for v in values], index=df.index, dtype=object)
    return out


_NUMBER = r"[<>≤≥＜＞−+-]?\d[\d.,]*%?"
_RANGE = rf"{_NUMBER}\s*[–～~]\s*{_NUMBER}"
# a number, a range of two, or a number with its interval: 13.26（10.38～22.00）
_NUMBER_TEXT = re.compile(rf"^({_RANGE}|{_NUMBER}(\s*[（(]{_RANGE}[）)])?)$")


def _numeric_column(values: pd.Series) -> bool:
    """Whether a column shows numbers only (formatted or not, '—' for blanks): such columns align right."""
    cells = [str(v) for v in values if not _missing(v) and str(v) not in BLANKS]
    return bool(cells) and all(_NUMBER_TEXT.match(c) for c in cells)


def _text_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


TABLE_WIDTH = 104
"""The text width in half-width characters of table text at 8.5 pt (15.6 cm, cityreport.typ)."""

ZWSP = "\u200b"
BREAK_BEFORE = ("标准误", "均方根误差", "的概率", "置信区间", "上限", "下限", "不发布", "绝对差距")
"""Words of the report's Chinese headers and notes a line may break before (Chinese has no spaces to say so)."""
NAME_PARTS = ("科学素质", "行动", "工程")
"""Words the plan's long action and project names end in (实施领导干部和公务员科学素质提升行动): a line may break
before them once three Chinese characters precede, so a short name (重点工程, 提升行动) stays whole."""
_BREAK_HINT = re.compile(r"(?<=[^\s\u200b\d%])(?=[（(])|(?<=/)(?=[^\s\u200b])|(?<=[^\s\u200b])(?="
                         + "|".join(BREAK_BEFORE) + r")|(?<=[\u4e00-\u9fff]{3})(?=" + "|".join(NAME_PARTS) + ")")
SHORT_WORD = 10
"""A run of at most this many characters between spaces or break hints never breaks (cityreport.typ short-word)."""


def break_hints(text: str) -> str:
    """Where a table word may break: a zero-width space before each '（' / '(', after each '/' and before the
    words of BREAK_BEFORE.

    The Typst template keeps every run of at most SHORT_WORD characters between spaces and these
    hints on one line (Typst would otherwise break Chinese between any two characters: 直接估/计).
    """
    return _BREAK_HINT.sub(ZWSP, text)


FONT_SIZES = (8.5, 8.0, 7.5, 7.0)
"""Table font sizes in points, largest first: a table is set in the largest its unbroken words fit at."""


def table_width(size: float = 8.5) -> int:
    """The text width in half-width characters at a table font size."""
    return math.floor(TABLE_WIDTH * 8.5 / size)


def table_font_pt(shown: pd.DataFrame, text_room: int = 20) -> float:
    """The largest of FONT_SIZES at which every column's unbroken words fit the text width and each text column
    gets `text_room` half-width characters (or what it needs, if less); failing that, the largest at which the
    unbroken words alone fit."""
    numbers = sum(_column_width(c, shown[c]) for c in shown.columns if _numeric_column(shown[c]))
    text = [(_column_floor(c, shown[c]), _column_width(c, shown[c])) for c in shown.columns
            if not _numeric_column(shown[c])]
    for least in (numbers + sum(max(f, min(n, text_room)) for f, n in text), numbers + sum(f for f, _ in text)):
        fits = [size for size in FONT_SIZES if least <= table_width(size)]
        if fits:
            return fits[0]
    return FONT_SIZES[-1]


def unbroken_width(text: object) -> int:
    """The width of the widest part of a cell that never breaks (a run of at most SHORT_WORD characters)."""
    runs = re.split(r"[\s\u200b]+", break_hints(str(text)))
    return max((_text_width(r) for r in runs if 0 < len(r) <= SHORT_WORD), default=0)


def _column_width(header: object, values: pd.Series, cap: int = 60, pad: int = 2) -> int:
    """A column's need in half-width characters: pandoc shares the page width in proportion to the dashes.

    Number columns (numbers and intervals never break) need their widest cell; text columns their widest
    cell up to `cap`, and wrap; both at least their widest unbroken word (`_column_floor`). `pad` stands
    for the cell's margins.
    """
    longest = max((_text_width(_cell(v)) for v in values), default=0)
    floor = _column_floor(header, values, pad=0)
    if _numeric_column(values):
        return max(longest, floor) + pad
    return max(min(cap, longest), floor) + pad


def _column_floor(header: object, values: pd.Series, pad: int = 2) -> int:
    """The narrowest a column may be: its header's and cells' widest unbroken words, and a third of a Latin header
    (so 'Share of rows in (%)' takes at most three lines, not one word a line)."""
    text = str(header)
    lines = math.ceil(_text_width(text) / 3) if _text_width(text) == len(text) else 0
    return max([unbroken_width(header), lines] + [unbroken_width(_cell(v)) for v in values]) + pad


def column_widths(shown: pd.DataFrame, total: int | None = None) -> list[int]:
    """Widths from content: number columns get what they need, text columns share the rest by their need,
    and no column is narrower than its widest unbroken word (header or cell)."""
    total = table_width(table_font_pt(shown)) if total is None else total
    need = [_column_width(c, shown[c]) for c in shown.columns]
    numeric = [_numeric_column(shown[c]) for c in shown.columns]
    fixed = sum(n for n, k in zip(need, numeric, strict=True) if k)
    text = sum(n for n, k in zip(need, numeric, strict=True) if not k)
    if fixed + text <= total or not text:
        return need
    # short text columns (a verdict, a unit, a group's name) keep their width; longer ones share the rest in
    # proportion to the text they hold (its mean width per row), so running text gets the room
    floor = [min(n, max(12, _column_floor(c, shown[c]))) for c, n in zip(shown.columns, need, strict=True)]
    room = max(total - fixed - sum(f for f, k in zip(floor, numeric, strict=True) if not k), 0)
    volume = [0.0 if k or n <= f else float(np.mean([_text_width(_cell(v)) for v in shown[c]]))
              for c, n, f, k in zip(shown.columns, need, floor, numeric, strict=True)]
    extra = sum(volume)
    return [n if k else min(n, f + (math.floor(v * room / extra) if extra else 0))
            for n, f, k, v in zip(need, floor, numeric, volume, strict=True)]


def md_table(df: pd.DataFrame, caption: str, label: str, align: Sequence[str] | None = None,
             decimals: Mapping[str, int] | None = None, group: Sequence[str] | None = None,
             workbook: pd.DataFrame | None = None) -> str:
    """A pipe table with a caption and a `tbl-` label, for Quarto and pandoc alike: the one way to print a table.

    Numbers are printed by `format_numbers` (fixed decimals per column, no
    negative zero); text columns align left and number columns right; values
    repeated down the `group` columns are shown once (default: the first column,
    when it is text). The Typst template keeps each number and interval on one
    line. The workbook keeps the unformatted table (`workbook`: a fuller one than the printed, e.g. with
    columns the page merges).
    """
    if not label.startswith("tbl-"):
        raise ValueError(f"table label must start with 'tbl-': {label}")
    if df.empty:
        raise ValueError(f"table {label} has no rows")
    shown = format_numbers(df, decimals)
    if group is None:
        first = shown.columns[0]
        group = [] if _numeric_column(shown[first]) else [first]
    shown = group_rows(shown, group)
    align = list(align) if align else ["l"] + ["r" if _numeric_column(shown[c]) else "l" for c in shown.columns[1:]]
    widths = column_widths(shown)  # from the cells as printed
    size = table_font_pt(shown)
    rule = {"l": ":{}", "r": "{}:", "c": ":{}:"}
    text = [not _numeric_column(shown[c]) for c in shown.columns]
    lines = ["| " + " | ".join(break_hints(_cell(c)) for c in shown.columns) + " |",
             "|" + "|".join(rule[a].format("-" * w) for a, w in zip(align, widths, strict=True)) + "|"]
    lines += ["| " + " | ".join(break_hints(_cell(v)) if t else _cell(v) for v, t in zip(row, text, strict=True))
              + " |" for row in shown.itertuples(index=False)]
    PUBLISHED.append((label, caption, (df if workbook is None else workbook).copy()))
    table = "\n".join(lines) + f"\n\n: {caption} {{#{label}}}\n"
    if size == FONT_SIZES[0]:
        return table
    # a wide table is set smaller (cityreport.typ reads table-font); other output formats ignore raw Typst
    return (f"```{{=typst}}\n#table-font.update({size:g}pt)\n```\n\n{table}\n"
            f"```{{=typst}}\n#table-font.update({FONT_SIZES[0]:g}pt)\n```\n")


def printed_width(path: Path, most: float = 1.0) -> float:
    """The share of the text width an image prints at: its own size (fonts as set), less if the page needs it.

    A figure saved by plotting.save_figure is at most the printed width, so it prints at its own size and
    its font sizes are the printed ones; a figure taller than the text area (less room for its caption)
    is scaled down until it fits, so no figure ever leaves the page's text area.
    """
    from PIL import Image, UnidentifiedImageError

    from .plotting import TEXT_HEIGHT_IN, TEXT_WIDTH_IN

    try:
        with Image.open(path) as im:
            (px_w, px_h), dpi = im.size, im.info.get("dpi", (300, 300))[0] or 300
    except (UnidentifiedImageError, OSError):  # a vector figure (PDF, SVG): the width asked for
        return most
    width_in, height_in = px_w / dpi, px_h / dpi
    room = TEXT_HEIGHT_IN - FIGURE_CAPTION_IN
    return min(most, width_in / TEXT_WIDTH_IN, room / height_in * width_in / TEXT_WIDTH_IN)


FIGURE_CAPTION_IN = 0.9
"""Height kept free under a figure for its caption (two lines) and the spacing around it."""


def md_figure(path: Path, caption: str, label: str, width: str | None = None) -> str:
    """An image with a caption and a `fig-` label, at the width `printed_width` gives (`width`: a maximum).

    Paths inside the project are written project-root-relative ('/data/...'),
    as Quarto reads them; others (tests on temporary folders) stay absolute.
    """
    if not label.startswith("fig-"):
        raise ValueError(f"figure label must start with 'fig-': {label}")
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"figure {label}: {path} does not exist (did its notebook run?)")
    most = 1.0 if width is None else float(width.rstrip("%")) / 100
    share = math.floor(printed_width(path, most) * 1000) / 10
    try:
        ref = "/" + str(path.relative_to(ROOT))
    except ValueError:
        ref = str(path)
    return f"![{caption}]({ref}){{#{label} width={share:g}%}}\n"


PUBLISHED: list[tuple[str, str, pd.DataFrame]] = []
"""Every table md_table printed in this process, as (label, caption, table), for the workbook."""

NOTES = {
    "zh": ("“—”表示无数据或因样本量或精度未达发布标准而不予发布；设有“备注”列的表格中，不予发布的单元格在该行“备注”列注明原因。",
           "概率以文字形式给出（如“<1%”“37%”“>99%”），不四舍五入为0或100%，因此这些单元格是文本而非数值。"),
    "en": ("\"—\" marks a missing value or one withheld because the sample is too small or the estimate too "
           "imprecise; tables with a Note column give the reason on the row of each withheld cell.",
           "Probabilities are written as text (\"<1%\", \"37%\", \">99%\"), never rounded to 0 or 100%, so these "
           "cells are text, not numbers."),
}
"""Lines of the workbook's notes sheet after the title and the notice, per language."""
SHEET_WORDS = {"zh": {"notes": "说明", "sheet": "工作表", "title": "标题", "label": "标签", "table": "表{}"},
               "en": {"notes": "Notes", "sheet": "Sheet", "title": "Title", "label": "Label", "table": "Table {}"}}

_SHEET_BAD = str.maketrans({c: " " for c in "[]:*?/\\"})


def _excel_format(header: object, values: list[object]) -> str | None:
    """The number format of a column: integers as integers, other numbers with the decimals the report prints.

    Percentages are stored as the report shows them (14.8 under a '(%)' header), so one decimal; a column
    with no numbers (text, or '<1%' probabilities) has none.
    """
    numbers = [float(v) for v in values if _is_number(v)]
    if not numbers:
        return None
    if all(float(v).is_integer() for v in numbers) and "%" not in str(header):
        return "0"
    k = 1 if "%" in str(header) else max(1, _decimals(numbers))
    return "0." + "0" * k


def _sheet_values(table: pd.DataFrame) -> pd.DataFrame:
    """The cells as the workbook stores them: numbers as numbers (integer-valued columns as integers),
    a missing value as '—' (what the notes sheet says), and a value that shows as zero stored as zero
    (no '-0.00')."""
    out = table.astype(object).copy()
    for c in out.columns:
        values = [v.item() if hasattr(v, "item") and not isinstance(v, str) else v for v in table[c].tolist()]
        fmt = _excel_format(c, values)
        shown = 0 if fmt is None or "." not in fmt else len(fmt) - 2

        def cell(v: object, fmt: str | None = fmt, shown: int = shown) -> object:
            if _missing(v):
                return "—"
            if isinstance(v, str):
                return no_negative_zero(v)
            if not _is_number(v):
                return v
            if fmt == "0":
                return int(v)
            return 0.0 if round(float(v), shown) == 0 else v

        out[c] = [cell(v) for v in values]
    return out


def _style_sheet(sheet, table: pd.DataFrame, header_row: int = 1) -> None:
    """Bold frozen header with a filter, number formats per column and column widths that fit the cells."""
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    last = header_row + len(table)
    for j, c in enumerate(table.columns, 1):
        letter = get_column_letter(j)
        fmt = _excel_format(c, table[c].tolist())
        rows = table.attrs.get(ROW_DECIMALS)
        head = sheet.cell(row=header_row, column=j)
        head.font = Font(bold=True)
        head.alignment = Alignment(wrap_text=True, vertical="top")
        widths = [_text_width(str(c))]
        for i in range(header_row + 1, last + 1):
            cell = sheet.cell(row=i, column=j)
            if fmt and _is_number(cell.value):
                decimals = len(fmt) - 2 if "." in fmt else 0
                if rows is not None:
                    decimals = rows[i - header_row - 1]
                cell.number_format = "0." + "0" * decimals if decimals else "0"
                widths.append(len(f"{cell.value:.{decimals}f}"))
            else:
                widths.append(_text_width(str(cell.value if cell.value is not None else "")))
                if isinstance(cell.value, str) and cell.value.strip() in BLANKS and fmt:
                    cell.alignment = Alignment(horizontal="right")
        sheet.column_dimensions[letter].width = min(60, max(6, max(widths) + 2))
    sheet.freeze_panes = sheet.cell(row=header_row + 1, column=1)
    sheet.auto_filter.ref = f"A{header_row}:{get_column_letter(len(table.columns))}{last}"


def write_workbook(path: Path, title: str, notice: str | None,
                   tables: list[tuple[str, str, pd.DataFrame]] | None = None, lang: str = "zh") -> Path:
    """An Excel workbook with every published table, one sheet each, and a notes sheet first (in `lang`).

    Numbers are stored as numbers with number formats, a missing or withheld value as '—' (as the notes
    say); each sheet has a bold frozen header row with filters and columns as wide as their cells.
    """
    from openpyxl.styles import Font

    words, notes = SHEET_WORDS[lang], NOTES[lang]
    tables = PUBLISHED if tables is None else tables
    if not tables:
        raise ValueError("no tables to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [f"{words['table'].format(i)} {caption}".translate(_SHEET_BAD)[:31]
             for i, (_, caption, _) in enumerate(tables, 1)]
    contents = pd.DataFrame({words["sheet"]: names, words["title"]: [caption for _, caption, _ in tables]})
    tmp = path.with_suffix(".tmp.xlsx")
    with pd.ExcelWriter(tmp, engine="openpyxl") as xl:
        head = pd.DataFrame({words["notes"]: [title, notice or "", *notes]})
        head.to_excel(xl, sheet_name=words["notes"], index=False)
        start = len(notes) + 4
        contents.to_excel(xl, sheet_name=words["notes"], index=False, startrow=start)
        for name, (_, _, table) in zip(names, tables, strict=True):
            _sheet_values(table).to_excel(xl, sheet_name=name, index=False)
            _style_sheet(xl.sheets[name], table)
        sheet = xl.sheets[words["notes"]]
        sheet.column_dimensions["A"].width = 40
        sheet.column_dimensions["B"].width = 60
        sheet["A1"].font = Font(bold=True)
        for cell in sheet[start + 1]:
            cell.font = Font(bold=True)
    pin_timestamps(tmp)
    tmp.replace(path)
    return path


_CORE_DATE = re.compile(r"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)")


def pin_timestamps(path: Path) -> None:
    """Give an .xlsx SOURCE_DATE_EPOCH as its document dates and zip entry times (when that is set).

    openpyxl stamps the save time into docProps/core.xml and every zip entry, so two runs
    on the same data would differ; the report's renderer sets SOURCE_DATE_EPOCH.
    """
    import os
    import zipfile
    from datetime import UTC, datetime

    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not epoch:
        return
    when = datetime.fromtimestamp(int(epoch), UTC)
    stamp = max(when, datetime(1980, 1, 1, tzinfo=UTC)).timetuple()[:6]  # zip dates start in 1980
    iso = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    with zipfile.ZipFile(path) as src:
        entries = [(info.filename, src.read(info)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w") as out:
        for name, data in entries:
            if name == "docProps/core.xml":
                data = _CORE_DATE.sub(lambda m: m.group(1) + iso + m.group(2), data.decode("utf-8")).encode("utf-8")
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            out.writestr(info, data)


def number_crossrefs(markdown: str, lang: str = "zh") -> str:
    """Quarto-style @fig-/@tbl-/@sec- references as numbered links (for HTML, where Typst does not number)."""

    numbers: dict[str, str] = {}
    titles: dict[str, str] = {}  # unnumbered sections are referred to by their title
    counters = {"fig": 0, "tbl": 0}
    sec = [0, 0, 0]
    for line in markdown.splitlines():
        h = re.match(r"^(#{1,3}) (.*?)\s*\{#(sec-[\w-]+)([^}]*)\}", line)
        if h:
            if ".unnumbered" in h.group(4) or re.search(r"(^|\s)-(\s|$)", h.group(4)):
                titles[h.group(3)] = h.group(2).strip()
                continue
            level = len(h.group(1)) - 1
            sec[level] += 1
            sec[level + 1:] = [0] * (2 - level)
            numbers[h.group(3)] = ".".join(str(n) for n in sec[: level + 1])
        for label in re.findall(r"\{#((?:fig|tbl)-[\w-]+)", line):
            kind = label.split("-")[0]
            counters[kind] += 1
            numbers[label] = str(counters[kind])
    names = {"zh": {"fig": "图", "tbl": "表", "sec": "第"}, "en": {"fig": "Figure", "tbl": "Table", "sec": "Section"}}[lang]

    def link(m: re.Match) -> str:
        label = m.group(1)
        kind = label.split("-")[0]
        if label in titles:
            return f"[{titles[label]}](#{label})"
        if label not in numbers:
            raise ValueError(f"cross-reference @{label} has no target: no heading, figure or table carries "
                             f"{{#{label}}} in the document")
        n = numbers[label]
        text = f"{names['sec']}{n}节" if kind == "sec" and lang == "zh" else f"{names[kind]} {n}"
        return f"[{text}](#{label})"
    return re.sub(r"(?<![\w`])@((?:fig|tbl|sec)-[\w-]+)", link, markdown)
