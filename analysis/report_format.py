"""Markdown building blocks for the report: numbers, tables and figures with cross-reference labels."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path

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


def _cell(value: object) -> str:
    text = "—" if _missing(value) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


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
    for c in df.columns:
        values = [v.item() if hasattr(v, "item") and not isinstance(v, str) else v for v in df[c].tolist()]
        numbers = [v for v in values if _is_number(v)]
        if not numbers:
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
_NUMBER_TEXT = re.compile(rf"^{_NUMBER}(–{_NUMBER})?$")  # a number or a range of two


def _numeric_column(values: pd.Series) -> bool:
    """Whether a column shows numbers only (formatted or not, '—' for blanks): such columns align right."""
    cells = [str(v) for v in values if not _missing(v) and str(v) not in BLANKS]
    return bool(cells) and all(_NUMBER_TEXT.match(c) for c in cells)


def _text_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _column_width(header: object, values: pd.Series, cap: int = 30, pad: int = 3) -> int:
    """Dashes under a header: pandoc shares the page width between columns in proportion to them.

    Text columns get their widest cell (or header word, at most 12) up to `cap`, and wrap; number columns,
    which cannot wrap, get a third more than their widest number. `pad` stands for the cell's margins.
    """
    longest = max((_text_width(_cell(v)) for v in values), default=0)
    # a header wraps between words (Latin) or between any two characters (CJK, kept to 4 characters a line)
    header_word = min(12, max((min(8, _text_width(w)) if _text_width(w) > len(w) else len(w)
                               for w in str(header).split()), default=0))
    if _numeric_column(values):
        return max(math.ceil(longest * 4 / 3), header_word) + pad + 1
    return min(cap, max(longest, header_word)) + pad


def md_table(df: pd.DataFrame, caption: str, label: str, align: Sequence[str] | None = None,
             decimals: Mapping[str, int] | None = None) -> str:
    """A pipe table with a caption and a `tbl-` label, for Quarto and pandoc alike.

    Numbers are printed by `format_numbers` (fixed decimals per column); the
    workbook keeps the unformatted table.
    """
    if not label.startswith("tbl-"):
        raise ValueError(f"table label must start with 'tbl-': {label}")
    if df.empty:
        raise ValueError(f"table {label} has no rows")
    shown = format_numbers(df, decimals)
    align = list(align) if align else ["l"] + ["r" if _numeric_column(shown[c]) else "l" for c in shown.columns[1:]]
    widths = [_column_width(c, shown[c]) for c in shown.columns]  # from the cells as printed
    rule = {"l": ":{}", "r": "{}:", "c": ":{}:"}
    lines = ["| " + " | ".join(_cell(c) for c in shown.columns) + " |",
             "|" + "|".join(rule[a].format("-" * w) for a, w in zip(align, widths, strict=True)) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    PUBLISHED.append((label, caption, df.copy()))
    return "\n".join(lines) + f"\n\n: {caption} {{#{label}}}\n"


def md_figure(path: Path, caption: str, label: str, width: str = "90%") -> str:
    """An image with a caption and a `fig-` label.

    Paths inside the project are written project-root-relative ('/data/...'),
    as Quarto reads them; others (tests on temporary folders) stay absolute.
    """
    if not label.startswith("fig-"):
        raise ValueError(f"figure label must start with 'fig-': {label}")
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"figure {label}: {path} does not exist (did its notebook run?)")
    try:
        ref = "/" + str(path.relative_to(ROOT))
    except ValueError:
        ref = str(path)
    return f"![{caption}]({ref}){{#{label} width={width}}}\n"


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


def write_workbook(path: Path, title: str, notice: str | None,
                   tables: list[tuple[str, str, pd.DataFrame]] | None = None, lang: str = "zh") -> Path:
    """An Excel workbook with every published table, one sheet each, and a contents sheet first (in `lang`)."""
    words, notes = SHEET_WORDS[lang], NOTES[lang]
    tables = PUBLISHED if tables is None else tables
    if not tables:
        raise ValueError("no tables to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    contents = pd.DataFrame({words["sheet"]: [words["table"].format(i) for i in range(1, len(tables) + 1)],
                             words["title"]: [caption for _, caption, _ in tables],
                             words["label"]: [label for label, _, _ in tables]})
    tmp = path.with_suffix(".tmp.xlsx")
    with pd.ExcelWriter(tmp, engine="openpyxl") as xl:
        head = pd.DataFrame({words["notes"]: [title, notice or "", *notes]})
        head.to_excel(xl, sheet_name=words["notes"], index=False)
        contents.to_excel(xl, sheet_name=words["notes"], index=False, startrow=len(notes) + 4)
        for i, (_, caption, table) in enumerate(tables, 1):
            name = f"{words['table'].format(i)} {caption}".translate(_SHEET_BAD)[:31]
            table.to_excel(xl, sheet_name=name, index=False)
            sheet = xl.sheets[name]
            for col in sheet.columns:
                width = max(len(str(c.value or "")) for c in col[:50])
                sheet.column_dimensions[col[0].column_letter].width = min(40, max(8, width * 1.6))
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
