"""Survey deliveries as spreadsheets: .xlsx/.xlsm (openpyxl), Excel 97–2003 .xls (xlrd) and
HTML tables saved under an Excel name (lxml).

Every reader turns the sheets into rows of cell values, with merged cells (and HTML cells
spanning rows or columns) filling every slot they cover, and hands them to
analysis.ingest.from_sheets, which finds the header and maps the columns. Formula cells are
read through the values the spreadsheet program stored; a formula without one is refused.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pandas as pd

from .dictionary import Dictionary, load_dictionary
from .ingest import IngestError, Source, detect_encoding, from_sheets


def _sheet_rows(ws) -> list[list[Any]]:
    rows = [list(r) for r in ws.iter_rows(values_only=True)]
    for rng in ws.merged_cells.ranges:
        _fill_merged(rows, rng.min_row - 1, rng.max_row, rng.min_col - 1, rng.max_col)
    return rows


def _fill_merged(rows: list[list[Any]], r0: int, r1: int, c0: int, c1: int) -> None:
    """Copy the top-left value of a merged range (0-based, end-exclusive) into all its cells."""
    if r0 >= len(rows):
        return
    value = rows[r0][c0] if c0 < len(rows[r0]) else None
    for r in range(r0, min(r1, len(rows))):
        rows[r] += [None] * (c1 - len(rows[r]))
        for c in range(c0, c1):
            rows[r][c] = value


def _has_formulas(path: Path) -> bool:
    """True when any worksheet of the .xlsx stores a formula (cheap: scans the zipped XML)."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.startswith("xl/worksheets/") and name.endswith(".xml"):
                with z.open(name) as fh:
                    while chunk := fh.read(1 << 20):
                        if b"<f>" in chunk or b"<f " in chunk or b":f>" in chunk:
                            return True
    return False


def _check_formulas(path: Path, source: Source, rows: list[list[Any]], mapping: dict[int, str]) -> None:
    """Refuse formula cells in mapped columns that carry no computed (cached) value.

    openpyxl reads the value the spreadsheet program stored with each formula; files written
    by other programs often store none, and the column would silently read as empty.
    """
    from openpyxl import load_workbook
    from openpyxl.utils import get_column_letter

    ws = load_workbook(io.BytesIO(Path(path).read_bytes()), read_only=True, data_only=False)[source.sheet]
    first = source.first_data_row
    uncached: dict[int, list[str]] = {}
    for r, row in enumerate(ws.iter_rows(min_row=first), start=first):
        for cell in row:
            pos = getattr(cell, "column", None)
            if pos is None or pos - 1 not in mapping or cell.data_type != "f":
                continue
            got = rows[r - 1][pos - 1] if r - 1 < len(rows) and pos - 1 < len(rows[r - 1]) else None
            if got is None:
                uncached.setdefault(pos - 1, []).append(f"{get_column_letter(pos)}{r}")
    if uncached:
        pos, cells = next(iter(sorted(uncached.items())))
        span = cells[0] if len(cells) == 1 else f"{cells[0]}…{cells[-1]}"
        first_row = int(cells[0][len(get_column_letter(pos + 1)):])
        raise source.error(
            f"sheet {source.sheet!r}: {len(cells)} formula cell(s) without a computed value ({span})",
            data_row=first_row - source.first_data_row, column=mapping[pos],
            expected="stored values: open the file in Excel, WPS or LibreOffice and save it again "
                     "(formulas are then computed), or paste the column as values")


def read_excel(path: Path, dictionary: Dictionary | None = None) -> tuple[pd.DataFrame, Source]:
    from openpyxl import load_workbook

    dictionary = dictionary or load_dictionary()
    try:
        wb = load_workbook(io.BytesIO(Path(path).read_bytes()), data_only=True)  # any extension
    except Exception as err:  # openpyxl raises many types for a damaged file
        raise IngestError(path, f"cannot open as an Excel workbook ({type(err).__name__}: {err})",
                          expected="an .xlsx file") from None
    order = [wb.active, *[w for w in wb.worksheets if w is not wb.active]]
    sheets = [(ws.title, _sheet_rows(ws)) for ws in order]
    df, source = from_sheets(path, "xlsx", sheets, dictionary)
    if _has_formulas(path):
        _check_formulas(path, source, dict(sheets)[source.sheet], source.mapping)
    return df, source


def read_xls(path: Path, dictionary: Dictionary | None = None) -> tuple[pd.DataFrame, Source]:
    """Excel 97–2003 (BIFF) workbook, read with xlrd; dates become datetimes, merged cells filled."""
    import xlrd

    dictionary = dictionary or load_dictionary()
    try:
        try:
            book = xlrd.open_workbook(str(path), formatting_info=True)  # merged cells need it
        except (NotImplementedError, xlrd.XLRDError, AssertionError, KeyError, IndexError):
            book = xlrd.open_workbook(str(path))
    except Exception as err:  # xlrd.XLRDError, CompDocError, struct errors for damaged files
        raise IngestError(path, f"cannot open as an Excel 97–2003 workbook ({type(err).__name__}: {err})",
                          expected="an .xls file that Excel opens") from None
    sheets = []
    for sh in book.sheets():
        rows = []
        for r in range(sh.nrows):
            row = []
            for c in range(sh.ncols):
                cell = sh.cell(r, c)
                if cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                    row.append(None)
                elif cell.ctype == xlrd.XL_CELL_ERROR:
                    row.append(xlrd.error_text_from_code.get(cell.value, "#N/A"))
                elif cell.ctype == xlrd.XL_CELL_DATE:
                    row.append(xlrd.xldate_as_datetime(cell.value, book.datemode))
                else:
                    row.append(cell.value)
            rows.append(row)
        for r0, r1, c0, c1 in sh.merged_cells:
            _fill_merged(rows, r0, r1, c0, c1)
        sheets.append((sh.name, rows))
    return from_sheets(path, "xls", sheets, dictionary)


def read_html_table(path: Path, dictionary: Dictionary | None = None) -> tuple[pd.DataFrame, Source]:
    """An HTML table saved under an Excel name (older systems export 'Excel' this way)."""
    import lxml.etree
    import lxml.html

    dictionary = dictionary or load_dictionary()
    data = Path(path).read_bytes()
    if b"urn:schemas-microsoft-com:office:spreadsheet" in data[:4096]:
        raise IngestError(path, "an Excel 2003 XML spreadsheet, which cannot be read",
                          expected="the file saved again as .xlsx (Excel workbook)")
    encoding = _html_charset(data)
    try:
        text = data.decode(encoding)  # the charset the page declares, when it is right
    except (TypeError, LookupError, UnicodeDecodeError):
        encoding = detect_encoding(data, path)
        text = data.decode(encoding)
    try:
        doc = lxml.html.document_fromstring(re.sub(r"^\s*<\?xml[^>]*>", "", text))
    except (ValueError, lxml.etree.ParserError) as err:
        raise IngestError(path, f"cannot read as an HTML table ({type(err).__name__})",
                          expected="an .xls file or an HTML table") from None
    sheets = [(f"table {t + 1}", _html_rows(table)) for t, table in enumerate(doc.iter("table"))]
    if not sheets:
        raise IngestError(path, "an HTML file without a table", expected="an Excel workbook or a table")
    df, source = from_sheets(path, "html", sheets, dictionary)
    source.encoding = encoding
    return df, source


def _span(cell, name: str) -> int:
    try:
        return max(1, int(cell.get(name, "1") or 1))
    except ValueError:
        return 1


def _take_pending(row: list[Any], pending: dict[int, tuple[int, Any]]) -> None:
    """Append the values of cells from rows above that still cover the next slots of `row`."""
    while len(row) in pending:
        left, value = pending.pop(len(row))
        if left > 1:
            pending[len(row)] = (left - 1, value)
        row.append(value)


def _html_rows(table) -> list[list[Any]]:
    """Cells of an HTML table as a grid: a cell spanning rows or columns fills every slot it
    covers, as merged cells of a workbook are read."""
    rows: list[list[Any]] = []
    pending: dict[int, tuple[int, Any]] = {}  # column -> (rows still covered, value)
    for tr in table.iter("tr"):
        row: list[Any] = []
        for cell in tr:
            if cell.tag not in ("td", "th"):
                continue
            _take_pending(row, pending)
            text = cell.text_content().strip() or None
            rowspan = _span(cell, "rowspan")
            for _ in range(_span(cell, "colspan")):
                if rowspan > 1:
                    pending[len(row)] = (rowspan - 1, text)
                row.append(text)
        _take_pending(row, pending)
        rows.append(row)
    return rows


def _html_charset(data: bytes) -> str | None:
    m = re.search(rb"""charset\s*=\s*["']?([A-Za-z0-9_-]+)""", data[:4096], re.I)
    if not m:
        return None
    name = m.group(1).decode("ascii").lower()
    return {"gb2312": "gbk", "utf8": "utf-8"}.get(name, name)
