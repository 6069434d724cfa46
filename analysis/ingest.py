"""Read a delivered survey file (CSV and other text, Excel, SPSS, Stata) into canonical columns.

Encodings are detected, not guessed: a CSV must decode completely as UTF-8
(with or without BOM), GBK or GB18030, in that order, and the one used is
reported. Title rows above the header and two-row (merged) headers are found
by matching cells against the data dictionary. Unknown columns are dropped
(they may hold personal data); the raw values are left as text for
analysis.harmonise. Spreadsheets (.xlsx, .xls, HTML tables) are read by analysis.workbooks;
the reader follows the file's content, not its extension.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .dictionary import Dictionary, load_dictionary
from .errors import Shown, UserError

log = logging.getLogger(__name__)

DELIMITERS = (",", "\t", ";", "|")
SUPPORTED = (".csv", ".tsv", ".txt", ".xlsx", ".xlsm", ".xls", ".sav", ".zsav", ".dta")
HEADER_SCAN_ROWS = 30
MIN_HEADER_MATCHES = 3


class IngestError(UserError, ValueError):
    """A file the stage cannot use: one message naming file, row, column, value and expectation.

    `value` must already be safe to print (see analysis.errors.safe_value).
    """

    def __init__(self, path: Any, problem: str, *, row: int | str | None = None, column: str | None = None,
                 value: Any = None, expected: str | None = None, what: str = "survey file"):
        self.path, self.problem, self.row, self.column = path, problem, row, column
        self.value, self.expected = value, expected
        parts = [f"{what} {path}"]
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
    header_record: int = 0  # 0-based record index of the (last) header row, CSV only
    mapping: dict[int, str] = field(default_factory=dict)  # column position -> canonical name
    _record_lines: list[int] | None = field(default=None, repr=False)

    def file_row(self, data_row: int) -> int:
        """1-based row (spreadsheet) or physical line (CSV) of data row `data_row`.

        A CSV field in quotes may hold line breaks, so records and lines differ; the line is
        then found by re-reading the file (only when an error needs it).
        """
        if self.format == "csv" and self.encoding is not None:
            lines = self.record_lines()
            k = self.header_record + 1 + int(data_row)
            if k < len(lines):
                return lines[k]
        return self.first_data_row + int(data_row)

    def record_lines(self) -> list[int]:
        """The physical line (1-based) on which each CSV record starts."""
        if self._record_lines is None:
            text = self.path.read_bytes().decode(self.encoding)
            self._record_lines = csv_record_lines(text, self.delimiter or ",")
        return self._record_lines


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


def csv_record_lines(text: str, delimiter: str = ",", skip_blank: bool = False) -> list[int]:
    """The physical line (1-based) on which each CSV record starts (quoted fields may span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    starts, prev = [], 0
    for record in reader:
        if record or not skip_blank:
            starts.append(prev + 1)
        prev = reader.line_num
    return starts


# --- locating the raw file ---------------------------------------------------------------

IGNORED_PREFIXES = ("~$", ".")  # Excel/WPS lock files and hidden files


def survey_candidates(base: Path) -> list[Path]:
    """Files beside `base` with its name whatever the extension (lock and hidden files excluded)."""
    base = Path(base)
    if not base.parent.is_dir():
        return []
    stem = base.stem.lower()
    return sorted(p for p in base.parent.iterdir()
                  if p.is_file() and p.stem.lower() == stem and not p.name.startswith(IGNORED_PREFIXES))


# The synthetic demo writes two kinds of companion file into the survey folder (analysis.synth
# names them from here): they are answer sheets, not deliveries, and the planner must not offer
# them as a survey file under another name.

def faults_path(survey_path: Path) -> Path:
    """The demo's ground truth of the faults injected into a survey file: ``<name>-faults.csv``."""
    survey_path = Path(survey_path)
    return survey_path.with_name(survey_path.stem + "-faults.csv")


def truth_name(city: str) -> str:
    """The demo population's true values, in the survey folder: ``<city>-truth-synthetic.csv``."""
    return f"{city}-truth-synthetic.csv"


def demo_companions(plan: Any) -> set[Path]:
    """The demo's companion files for every survey year of the plan: faults and population truth."""
    surveys = [Path(plan.raw_survey_path(y)) for y in plan.survey_years]
    return {surveys[0].parent / truth_name(plan.city)} | {faults_path(p) for p in surveys}


def find_survey_file(base: Path) -> Path | None:
    """The survey file for `base`: itself, or its name with another supported extension.

    None when there is no file of that name at all. A file of that name with an unsupported
    extension, or two supported candidates where `base` itself is absent, is an error rather
    than a year silently left out or a file silently preferred.
    """
    base = Path(base)
    found = survey_candidates(base)
    supported = [p for p in found if p.suffix.lower() in SUPPORTED]
    others = [p for p in found if p not in supported]
    if base.is_file() and base.suffix.lower() in SUPPORTED:
        if len(found) > 1:
            log.warning("several files named %s: using %s (also %s)", base.stem, base.name,
                        ", ".join(p.name for p in found if p != base))
        return base
    if others and not supported:
        p = others[0]
        raise IngestError(p, "unsupported file type in the survey folder",
                          value=Shown(p.suffix or "no extension"),
                          expected=f"one of {', '.join(SUPPORTED)} (save the file in one of these "
                                   "formats, or move it out of the survey folder)")
    if len(supported) > 1:
        raise IngestError(base.parent, f"{len(supported)} survey files for one year: "
                          + ", ".join(p.name for p in supported), what="survey folder",
                          expected=f"one file named {base.stem} with one extension; move the others away")
    if others:
        log.warning("ignored %s beside %s (unsupported type)", ", ".join(p.name for p in others),
                    supported[0].name)
    return supported[0] if supported else None


def find_raw_file(path: Path) -> Path:
    """The survey file for `path`: itself, or its name with another supported extension."""
    path = Path(path)
    found = find_survey_file(path)
    if found is None:
        raise IngestError(path, "no survey file found",
                          expected=f"{path.name} or the same name with one of {', '.join(SUPPORTED)}")
    return found


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
    errors = []
    for codec in ("utf-8", "gbk", "gb18030"):
        try:
            data.decode(codec)
            return codec
        except UnicodeDecodeError as err:
            errors.append(err.start)
    pos = max(errors)  # the codec that read furthest points at the real fault
    line = data[:pos].count(b"\n") + 1
    raise IngestError(path, "text encoding not recognised", row=f"{line} (file line)",
                      value=Shown(f"byte 0x{data[pos]:02x} at offset {pos}"),  # not the text: may be personal
                      expected="UTF-8 (with or without BOM), GBK or GB18030")



def decode_text(path: Path) -> str:
    """The text of the file at path, in the encoding detect_encoding finds, without a byte-order mark
    (GB18030's decodes to U+FEFF). Raises IngestError naming the file line when no encoding fits."""
    data = Path(path).read_bytes()
    return data.decode(detect_encoding(data, path)).removeprefix("\ufeff")

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
    source.mapping = dict(mapping)
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
    reader = io.StringIO(text, newline="")
    head_text = "".join(reader.readline() for _ in range(HEADER_SCAN_ROWS))
    del reader
    # Delimiter: the one under which the header is found best (Excel's "Unicode text"
    # export is tab-separated UTF-16; some exports use semicolons).
    found = []
    for delim in DELIMITERS:
        try:
            head = list(csv.reader(io.StringIO(head_text, newline=""), delimiter=delim))
        except csv.Error:  # e.g. a line break that only the right delimiter puts inside quotes
            continue
        found.append((len(locate_header(head, dictionary)[2]), -DELIMITERS.index(delim), delim, head))
    if not found:
        raise IngestError(path, "not a readable table of text (quotes do not pair up in the first "
                          f"{HEADER_SCAN_ROWS} lines)", expected="a CSV or tab-separated text file")
    _, _, delimiter, head = max(found)
    source.delimiter = delimiter
    idx, parent, mapping = locate_header(head, dictionary)
    source.header_rows = ([idx] if parent is not None else []) + [idx + 1]
    source.first_data_row = idx + 2
    source.header_record = idx
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
            if m is None:
                raise IngestError(path, f"not a readable table ({err})",
                                  expected=f"{len(headers)} fields per row") from None
            # pandas counts records (skipped ones included), not lines: quoted fields may span lines
            raise source.error("row has more fields than the header", data_row=int(m.group(1)) - 2 - idx,
                               value=f"{m.group(2)} fields", expected=f"{len(headers)} fields") from None
        if raw.shape[1] > len(headers):
            extra = raw.iloc[:, len(headers):].notna().any(axis=1).to_numpy()
            if extra.any():
                first = int(extra.argmax())
                raise source.error("row has more fields than the header", data_row=first,
                                   value=f"{int(raw.iloc[first].notna().sum())} fields",
                                   expected=f"{len(headers)} fields")
        raw = raw.reindex(columns=range(max(len(headers), raw.shape[1]))).iloc[:, positions]  # all rows short
    del text
    df = _frame(raw.set_axis(range(raw.shape[1]), axis=1),
                {i: mapping[p] for i, p in enumerate(positions)})
    return _drop_blank(df), source


def from_sheets(path: Path, fmt: str, sheets: list[tuple[str, list[list[Any]]]],
                 dictionary: Dictionary) -> tuple[pd.DataFrame, Source]:
    """The first sheet with a header row (else the best one) as a canonical frame."""
    best = None
    for title, rows in sheets:
        found = locate_header(rows, dictionary)
        if best is None or len(found[2]) > len(best[2][2]):
            best = (title, rows, found)
        if len(found[2]) >= MIN_HEADER_MATCHES:
            break
    if best is None:
        raise IngestError(path, "the workbook has no sheets", expected="a sheet with the survey table")
    sheet, rows, (idx, parent, mapping) = best
    source = Source(path=Path(path), format=fmt, sheet=sheet)
    source.header_rows = ([idx] if parent is not None else []) + [idx + 1]
    source.first_data_row = idx + 2
    headers = rows[idx] if idx >= 0 else []
    _check_mapping(source, headers, mapping, dictionary)
    width = max((len(r) for r in rows[idx + 1:]), default=0)
    body = pd.DataFrame([list(r) + [None] * (width - len(r)) for r in rows[idx + 1:]], dtype="object")
    df = _frame(body, mapping)
    _check_error_cells(df, source)
    return _drop_blank(df), source


EXCEL_ERRORS = ("#N/A", "#VALUE!", "#REF!", "#DIV/0!", "#NUM!", "#NAME?", "#NULL!", "#GETTING_DATA")


def _check_error_cells(df: pd.DataFrame, source: Source) -> None:
    """A spreadsheet error value (#N/A, #REF!, ...) is a formula that failed, not an answer."""
    for col in df.columns.drop("row"):
        bad = df[col].isin(EXCEL_ERRORS).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise source.error(f"the cell holds the spreadsheet error {df[col].iloc[i]} "
                               f"({int(bad.sum())} such cell(s) in this column)",
                               data_row=int(df["row"].iloc[i]), column=col,
                               expected="a value: correct the formula, or paste the column as values")


def sniff_format(path: Path) -> str:
    """What a file is, from its first bytes (extensions lie): xlsx, xls, html, text, sav or dta."""
    ext = Path(path).suffix.lower()
    if ext in (".sav", ".zsav"):
        return "sav"
    if ext == ".dta":
        return "dta"
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "xls"
    probe = head.replace(b"\x00", b"").lstrip(b"\xef\xbb\xbf\xff\xfe \t\r\n").lower()
    if probe.startswith((b"<html", b"<!doctype html", b"<table", b"<?xml")) or b"<table" in probe[:2048]:
        return "html"
    return "text"


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
    """Read any supported survey file: (frame of canonical columns as delivered + `row`, Source).

    The reader follows the content, not the extension: a CSV saved as .xls, or an HTML table
    saved as .xls, is read for what it is.
    """
    path = find_raw_file(Path(path))
    ext = path.suffix.lower()
    if ext not in SUPPORTED:
        raise IngestError(path, "unsupported file type", value=Shown(ext), expected=", ".join(SUPPORTED))
    from .workbooks import read_excel, read_html_table, read_xls

    kind = sniff_format(path)
    if kind == "text" and ext in (".xlsx", ".xlsm", ".xls"):
        try:  # some systems write delimited text under an Excel name
            df, source = read_csv(path, dictionary)
        except IngestError as err:
            raise IngestError(path, "cannot open as an Excel workbook (the file is neither a workbook "
                              f"nor a table of text: {err.problem})",
                              expected="an .xlsx or .xls file that Excel opens") from None
    elif kind == "text":
        df, source = read_csv(path, dictionary)
    elif kind == "xlsx":
        df, source = read_excel(path, dictionary)
    elif kind == "xls":
        df, source = read_xls(path, dictionary)
    elif kind == "html":
        df, source = read_html_table(path, dictionary)
    else:
        df, source = read_stat(path, dictionary)
    log.info("read %s (%s%s%s): header row(s) %s, %d data rows, %d columns mapped",
             path.name, source.format,
             f", encoding {source.encoding}" if source.encoding else "",
             f", sheet {source.sheet!r}" if source.sheet else "",
             source.header_rows, len(df), len(df.columns) - 1)
    return df, source
