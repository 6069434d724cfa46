"""Read a delivered survey file (CSV, Excel, SPSS, Stata) into canonical columns.

Encodings are detected, not guessed: a CSV must decode completely as UTF-8
(with or without BOM), GBK or GB18030, in that order, and the one used is
reported. Title rows above the header and two-row (merged) headers are found
by matching cells against the data dictionary. Unknown columns are dropped
(they may hold personal data); the raw values are left as text for
analysis.harmonise.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .dictionary import Dictionary, load_dictionary

log = logging.getLogger(__name__)

DELIMITERS = (",", "\t", ";", "|")
SUPPORTED = (".csv", ".tsv", ".txt", ".xlsx", ".xlsm", ".sav", ".zsav", ".dta")
HEADER_SCAN_ROWS = 30
MIN_HEADER_MATCHES = 3


class IngestError(ValueError):
    """A file the stage cannot use: one message naming file, row, column, value and expectation."""

    def __init__(self, path: Any, problem: str, *, row: int | None = None, column: str | None = None,
                 value: Any = None, expected: str | None = None):
        self.path, self.problem, self.row, self.column = path, problem, row, column
        self.value, self.expected = value, expected
        parts = [f"survey file {path}"]
        if row is not None:
            parts.append(f"row {row}")
        if column is not None:
            parts.append(f"column {column}")
        msg = ", ".join(parts) + f": {problem}"
        if value is not None:
            msg += f"; value {value!r}"
        if expected is not None:
            msg += f"; expected {expected}"
        super().__init__(msg)


@dataclass
class Source:
    """Where the rows came from, so that later errors can name the file's own row numbers."""

    path: Path
    format: str
    encoding: str | None = None
    sheet: str | None = None
    header_rows: list[int] = field(default_factory=list)  # 1-based rows/lines in the file
    first_data_row: int = 1  # 1-based row/line of data row 0
    headers: dict[str, str] = field(default_factory=dict)  # canonical -> header as delivered
    dropped_columns: list[str] = field(default_factory=list)
    value_labels: dict[str, dict[Any, str]] = field(default_factory=dict)
    delimiter: str | None = None

    def file_row(self, data_row: int) -> int:
        return self.first_data_row + int(data_row)

    def column_label(self, name: str) -> str:
        raw = self.headers.get(name)
        return f"{raw!r} ({name})" if raw is not None and raw != name else repr(name)

    def error(self, problem: str, *, data_row: int | None = None, column: str | None = None,
              value: Any = None, expected: str | None = None) -> IngestError:
        row_txt = None
        if data_row is not None:
            kind = {"csv": "line", "sav": "case", "dta": "case"}.get(self.format, "row")
            row_txt = f"{self.file_row(data_row)} (file {kind}; data row {int(data_row)})"
        return IngestError(self.path, problem, row=row_txt,
                           column=None if column is None else self.column_label(column),
                           value=value, expected=expected)


# --- locating the raw file ---------------------------------------------------------------

def find_raw_file(path: Path) -> Path:
    """The file itself, or one with the same stem and another supported extension."""
    path = Path(path)
    if path.is_file():
        return path
    candidates = [path.with_suffix(ext) for ext in SUPPORTED if path.with_suffix(ext).is_file()]
    if not candidates:
        raise IngestError(path, "no survey file found",
                          expected=f"{path.name} or the same name with one of {', '.join(SUPPORTED)}")
    if len(candidates) > 1:
        log.warning("several survey files for %s: using %s (also %s)", path.stem, candidates[0].name,
                    ", ".join(c.name for c in candidates[1:]))
    return candidates[0]


# --- encodings ---------------------------------------------------------------------------

def detect_encoding(data: bytes, path: Any = "<bytes>") -> str:
    """Codec that decodes all of `data`: utf-8-sig, utf-16, utf-8, gbk or gb18030.

    UTF-8 is tried before the GB codecs: GBK text almost never decodes as UTF-8,
    while UTF-8 Chinese text often decodes (wrongly) as GBK.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as err:
        first_error = err
    for codec in ("gbk", "gb18030"):
        try:
            data.decode(codec)
            return codec
        except UnicodeDecodeError:
            continue
    pos = first_error.start
    line = data[:pos].count(b"\n") + 1
    raise IngestError(path, "text encoding not recognised", row=f"{line} (file line)",
                      value=data[pos:pos + 4], expected="UTF-8 (with or without BOM), GBK or GB18030")


# --- header location ---------------------------------------------------------------------

def _ffill(row: list[Any]) -> list[Any]:
    out, last = [], None
    for v in row:
        if v is not None and str(v).strip() != "":
            last = v
        out.append(last)
    return out


def locate_header(rows: list[list[Any]], dictionary: Dictionary) -> tuple[int, list[Any] | None, dict[int, str]]:
    """(index of the header row, parent row or None, position -> canonical name).

    Every row of the first HEADER_SCAN_ROWS is tried alone and under the row
    above it (forward-filled, as merged cells are); the most matches win, and
    on a tie the single, earlier row.
    """
    best: tuple[int, list[Any] | None, dict[int, str]] = (-1, None, {})
    for i, row in enumerate(rows[:HEADER_SCAN_ROWS]):
        row = list(row)
        mapping = dictionary.map_headers(row)
        if len(mapping) > len(best[2]):
            best = (i, None, mapping)
        if i > 0 and any(v is not None and str(v).strip() for v in rows[i - 1]):
            parent = _ffill(list(rows[i - 1]))[: len(row)]
            parent += [None] * (len(row) - len(parent))
            with_parent = dictionary.map_headers(row, parent)
            if len(with_parent) > len(best[2]):
                best = (i, parent, with_parent)
    return best


def _check_mapping(source: Source, headers: list[Any], mapping: dict[int, str],
                   dictionary: Dictionary) -> None:
    if len(mapping) < MIN_HEADER_MATCHES:
        raise source.error(
            f"no header row found in the first {HEADER_SCAN_ROWS} rows",
            expected="a header row with known column names such as 编号/resp_id, 性别/sex, 年龄/age, 区县/county",
        )
    seen: dict[str, int] = {}
    for pos, name in mapping.items():
        if name in seen:
            raise IngestError(source.path, "two columns map to the same field",
                              row=f"{source.header_rows[-1]} (header)", column=f"{name}",
                              value=(headers[seen[name]], headers[pos]), expected="one column per field")
        seen[name] = pos
    missing = [n for n in dictionary.required if n not in seen]
    if not any(n.startswith("q") for n in seen):
        missing.append("q01…")
    if missing:
        found = [str(h) for h in headers if h is not None and str(h).strip()]
        raise IngestError(
            source.path, "required columns missing", row=f"{source.header_rows[-1]} (header)",
            column=", ".join(missing), value=found[:60],
            expected="headers the data dictionary knows (analysis/data_dictionary.yml)",
        )
    source.headers = {name: str(headers[pos]) for pos, name in mapping.items()}
    source.dropped_columns = [str(h) for p, h in enumerate(headers)
                              if p not in mapping and h is not None and str(h).strip()]
    if source.dropped_columns:
        log.warning("%s: dropped %d unknown column(s): %s", source.path.name,
                    len(source.dropped_columns), ", ".join(source.dropped_columns))


def _frame(data: pd.DataFrame, mapping: dict[int, str]) -> pd.DataFrame:
    """Keep mapped positions, rename to canonical names, add the 0-based data row."""
    cols = {mapping[p]: data.iloc[:, p] for p in sorted(mapping) if p < data.shape[1]}
    for name in set(mapping.values()) - set(cols):
        cols[name] = pd.Series([None] * len(data), index=data.index, dtype="object")
    out = pd.DataFrame(cols, index=data.index)
    out.insert(0, "row", data.index.to_numpy(dtype="int64"))
    return out.reset_index(drop=True)


def _drop_blank(df: pd.DataFrame) -> pd.DataFrame:
    keep = ~df.drop(columns="row").isna().all(axis=1)
    if (~keep).any():
        log.info("skipped %d blank row(s)", int((~keep).sum()))
    return df.loc[keep].reset_index(drop=True)


# --- readers -----------------------------------------------------------------------------

def _arrow_csv(data: bytes, skip: int, positions: list[int], n_fields: int,
               delimiter: str = ",") -> pd.DataFrame | None:
    """Fast path: pyarrow's parser on UTF-8 bytes. None when the file needs the careful parser
    (blank lines, ragged rows, line breaks inside values), so that row numbers stay exact."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [f"c{i}" for i in range(n_fields)]
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(skip_rows=skip, column_names=names),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, ignore_empty_lines=False,
                                             newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                include_columns=[names[p] for p in positions],
                column_types={names[p]: pa.string() for p in positions},
                strings_can_be_null=True, null_values=[""], quoted_strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, pa.ArrowException):
        return None
    return table.to_pandas()


def read_csv(path: Path, dictionary: Dictionary | None = None) -> tuple[pd.DataFrame, Source]:
    dictionary = dictionary or load_dictionary()
    data = Path(path).read_bytes()
    encoding = detect_encoding(data, path)
    text = data.decode(encoding)
    source = Source(path=Path(path), format="csv", encoding=encoding)
    reader = io.StringIO(text)
    head_text = "".join(reader.readline() for _ in range(HEADER_SCAN_ROWS))
    del reader
    # Delimiter: the one under which the header is found best (Excel's "Unicode text"
    # export is tab-separated UTF-16; some exports use semicolons).
    found = []
    for delim in DELIMITERS:
        head = list(csv.reader(io.StringIO(head_text), delimiter=delim))
        found.append((len(locate_header(head, dictionary)[2]), -DELIMITERS.index(delim), delim, head))
    _, _, delimiter, head = max(found)
    source.delimiter = delimiter
    idx, parent, mapping = locate_header(head, dictionary)
    source.header_rows = ([idx] if parent is not None else []) + [idx + 1]
    source.first_data_row = idx + 2
    headers = head[idx] if idx >= 0 else []
    _check_mapping(source, headers, mapping, dictionary)
    positions = sorted(mapping)
    utf8 = data[3:] if encoding == "utf-8-sig" else data if encoding == "utf-8" else text.encode("utf-8")
    del data
    raw = _arrow_csv(utf8, idx + 1, positions, len(headers), delimiter)
    del utf8
    if raw is None:
        log.info("%s: parsing line by line (blank lines, ragged rows or line breaks in values)",
                 Path(path).name)
        try:
            raw = pd.read_csv(io.StringIO(text), sep=delimiter, skiprows=idx + 1, header=None, dtype=str,
                              keep_default_na=False, na_values=[""], skip_blank_lines=False)
        except pd.errors.ParserError as err:
            m = re.search(r"line (\d+), saw (\d+)", str(err))
            line = int(m.group(1)) if m else None  # pandas counts file lines, skipped ones included
            raise IngestError(path, "row has more fields than the header",
                              row=None if line is None else f"{line} (file line)",
                              value=None if m is None else f"{m.group(2)} fields",
                              expected=f"{len(headers)} fields") from None
        if raw.shape[1] > len(headers):
            extra = raw.iloc[:, len(headers):].notna().any(axis=1).to_numpy()
            if extra.any():
                first = int(extra.argmax())
                raise source.error("row has more fields than the header", data_row=first,
                                   value=f"{int(raw.iloc[first].notna().sum())} fields",
                                   expected=f"{len(headers)} fields")
        raw = raw.iloc[:, positions]
    del text
    df = _frame(raw.set_axis(range(raw.shape[1]), axis=1),
                {i: mapping[p] for i, p in enumerate(positions)})
    return _drop_blank(df), source


def _sheet_rows(ws) -> list[list[Any]]:
    rows = [list(r) for r in ws.iter_rows(values_only=True)]
    for rng in ws.merged_cells.ranges:
        value = rows[rng.min_row - 1][rng.min_col - 1]
        for r in range(rng.min_row - 1, rng.max_row):
            for c in range(rng.min_col - 1, rng.max_col):
                rows[r][c] = value
    return rows


def read_excel(path: Path, dictionary: Dictionary | None = None) -> tuple[pd.DataFrame, Source]:
    from openpyxl import load_workbook

    dictionary = dictionary or load_dictionary()
    try:
        wb = load_workbook(path, data_only=True)
    except Exception as err:  # openpyxl raises many types for a damaged file
        raise IngestError(path, f"cannot open as an Excel workbook ({type(err).__name__}: {err})",
                          expected="an .xlsx file") from None
    best = None
    for ws in [wb.active, *[w for w in wb.worksheets if w is not wb.active]]:
        rows = _sheet_rows(ws)
        found = locate_header(rows, dictionary)
        if best is None or len(found[2]) > len(best[2][2]):
            best = (ws.title, rows, found)
        if len(found[2]) >= MIN_HEADER_MATCHES:
            break
    sheet, rows, (idx, parent, mapping) = best
    source = Source(path=Path(path), format="xlsx", sheet=sheet)
    source.header_rows = ([idx] if parent is not None else []) + [idx + 1]
    source.first_data_row = idx + 2
    headers = rows[idx] if idx >= 0 else []
    _check_mapping(source, headers, mapping, dictionary)
    body = pd.DataFrame(rows[idx + 1:], dtype="object")
    df = _frame(body, mapping)
    return _drop_blank(df), source


def read_stat(path: Path, dictionary: Dictionary | None = None) -> tuple[pd.DataFrame, Source]:
    """SPSS .sav/.zsav or Stata .dta; value labels replace codes, variable labels help mapping."""
    import pyreadstat

    dictionary = dictionary or load_dictionary()
    fmt = "dta" if Path(path).suffix.lower() == ".dta" else "sav"
    reader = pyreadstat.read_dta if fmt == "dta" else pyreadstat.read_sav
    try:
        raw, meta = reader(str(path), apply_value_formats=False)
    except Exception as err:  # pyreadstat.ReadstatError and friends
        raise IngestError(path, f"cannot read as {fmt.upper()} ({err})") from None
    source = Source(path=Path(path), format=fmt, header_rows=[0], first_data_row=1,
                    encoding=getattr(meta, "file_encoding", None))
    names = list(raw.columns)
    labels = meta.column_names_to_labels or {}
    mapping = dictionary.map_headers(names)
    for pos, name in enumerate(names):
        if pos not in mapping and labels.get(name):
            canon = dictionary.canonical(labels[name])
            if canon is not None:
                mapping[pos] = canon
    _check_mapping(source, names, mapping, dictionary)
    value_labels = meta.variable_value_labels or {}
    for var, vl in value_labels.items():
        if var in raw.columns:
            col = raw[var]
            raw[var] = col.astype("object").map(lambda v, vl=vl: vl.get(v, v))
            source.value_labels[var] = {k: str(v) for k, v in vl.items()}
    raw.index = pd.RangeIndex(len(raw))
    df = _frame(raw.set_axis(range(raw.shape[1]), axis=1), mapping)
    return _drop_blank(df), source


def read_survey(path: Path, dictionary: Dictionary | None = None) -> tuple[pd.DataFrame, Source]:
    """Read any supported survey file: (frame of canonical columns as delivered + `row`, Source)."""
    path = find_raw_file(Path(path))
    ext = path.suffix.lower()
    if ext in (".csv", ".tsv", ".txt"):
        df, source = read_csv(path, dictionary)
    elif ext in (".xlsx", ".xlsm"):
        df, source = read_excel(path, dictionary)
    elif ext in (".sav", ".zsav", ".dta"):
        df, source = read_stat(path, dictionary)
    else:
        raise IngestError(path, "unsupported file type", value=ext, expected=", ".join(SUPPORTED))
    log.info("read %s (%s%s%s): header row(s) %s, %d data rows, %d columns mapped",
             path.name, source.format,
             f", encoding {source.encoding}" if source.encoding else "",
             f", sheet {source.sheet!r}" if source.sheet else "",
             source.header_rows, len(df), len(df.columns) - 1)
    return df, source
