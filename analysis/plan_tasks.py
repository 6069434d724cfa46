"""The plan's task list (the annex): transcription, loading and validation.

One row per measure (具体措施) with its action or project, task, lead and
responsible units and deadline. Unit names are normalised against a unit
list with aliases (data/raw/plan/units.csv by default).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from .config import Plan
from .errors import UserError

TASK_COLUMNS = [
    "measure_id", "kind", "group_no", "group_name", "task_no", "task_name",
    "measure_text", "lead_units", "responsible_units", "deadline",
]
OPTIONAL_COLUMNS = ["source_lines"]
ANNUAL = "每年实施"
DEADLINE_RE = re.compile(r"^(\d{4})年底$")
MEASURE_ID_RE = re.compile(r"^([A-Z])(\d+)-(\d+)-(\d+)$")
# Measure-id prefix per kind of group; a kind not listed here gets an error.
KIND_PREFIX = {"提升行动": "A", "重点工程": "P"}
ANNEX_HEADER = ("具体措施", "牵头单位", "责任单位", "完成时限")
CN_NUM = {c: i for i, c in enumerate("一二三四五六七八九十", start=1)}
_SEPARATORS = "、，,;；"
# Structural cells compared as codes: full-width digits and letters (２０２５年底, Ａ１) read as ASCII.
CODE_COLUMNS = ("measure_id", "group_no", "task_no", "deadline")
HEADER_SCAN_LINES = 10
# A deadline that Excel turned into a date and then into its serial number (days since 1899-12-30).
EXCEL_SERIAL_RE = re.compile(r"^(\d{5})(?:\.0+)?$")
EXCEL_EPOCH = date(1899, 12, 30)
_OPEN, _CLOSE = "(（", ")）"


class TasksError(UserError, ValueError):
    """The task list or unit list is malformed; the message names file, line, column and value."""


def tasks_path(plan: Plan) -> Path:
    """Task list of the plan: key tasks.file (default plan/{city}-tasks.csv) under raw_dir."""
    rel = plan.settings.tasks.file.format(city=plan.city)
    return plan.raw_dir / rel


def units_path(plan: Plan) -> Path:
    """Unit list: key tasks.units_file (default plan/units.csv) under raw_dir."""
    return plan.raw_dir / plan.settings.tasks.units_file.format(city=plan.city)


def _squash(text: str) -> str:
    """Remove all whitespace (PDF extraction breaks names and sentences with spaces)."""
    return re.sub(r"\s+", "", text)


def strip_markup(cell: str) -> str:
    """Drop <p> tags left by the PDF extraction and trim."""
    return re.sub(r"</?p>", "", cell or "").strip()


@dataclass(frozen=True)
class UnitList:
    """Normalised unit names, their file-name slugs and every accepted alias."""

    units: tuple[str, ...]
    slugs: dict[str, str]
    names: dict[str, str]  # squashed name or alias -> canonical unit
    source: str = "units.csv"

    def normalise(self, name: str) -> str | None:
        """Canonical unit for a name or alias (whitespace ignored), None when unknown."""
        return self.names.get(_squash(strip_markup(str(name))))

    def slug(self, unit: str) -> str:
        return self.slugs[unit]

    def split(self, cell: str, where: str = "") -> list[str]:
        """Split a unit cell into canonical names.

        Separators are 、，,;； outside brackets (县（市、区） keeps its 、).
        Within a separated piece, whitespace either separates two units
        ("市教育局 市科协") or is a line wrap inside one name ("市委 宣传部"):
        the tokens are grouped so that every group is a known unit, preferring
        fewer groups. A piece that cannot be grouped is an error naming `where`.
        """
        text = strip_markup(cell)
        if not text:
            return []
        out: list[str] = []
        for piece in _split_outside_brackets(text):
            tokens = piece.split()
            if not tokens:
                continue
            groups = self._group_tokens(tokens)
            if groups is None:
                raise TasksError(
                    f"{where}: unit {piece!r} is not in the unit list {self.source} "
                    "(add it or an alias there)"
                )
            out.extend(g for g in groups if g not in out)
        return out

    def _group_tokens(self, tokens: list[str]) -> list[str] | None:
        n = len(tokens)
        best: list[list[str] | None] = [None] * (n + 1)
        best[0] = []
        for end in range(1, n + 1):
            for start in range(end):
                prev = best[start]
                unit = self.names.get("".join(tokens[start:end]))
                if prev is None or unit is None:
                    continue
                cand = [*prev, unit]
                if best[end] is None or len(cand) < len(best[end]):
                    best[end] = cand
        return best[n]


def _split_outside_brackets(text: str) -> list[str]:
    parts, cur, depth = [], [], 0
    for ch in text:
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(depth - 1, 0)
        if ch in _SEPARATORS and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _decode(path: Path, what: str) -> str:
    from .ingest import IngestError, decode_text

    try:
        return decode_text(path)
    except IngestError as err:
        raise TasksError(f"{what} {path}, line {str(err.row).split()[0]}: text encoding not recognised "
                         f"({err.value}); expected {err.expected}") from None


def read_list(path: Path, need: tuple[str, ...], what: str) -> tuple[pd.DataFrame, list[int]]:
    """A CSV list of the plan (task or unit list) as text cells, and each row's line in the file.

    Any encoding ingest detects (UTF-8 with or without BOM, GBK, GB18030 with BOM); title rows
    above the header (an Excel title merged across the columns, saved as CSV) and blank rows
    (also ',,,,' from Excel) are skipped; the line of a row is where it starts in the file.
    """
    records: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(_decode(path, what), newline=""))
    start = 1
    for cells in reader:
        records.append((start, [c.strip() for c in cells]))
        start = reader.line_num + 1
    head = next((k for k, (_, cells) in enumerate(records[:HEADER_SCAN_LINES]) if set(need) <= set(cells)), None)
    if head is None:
        first = next((cells for _, cells in records if any(cells)), [])
        raise TasksError(f"{what} {path}: no header row with the columns {list(need)} in the first "
                         f"{HEADER_SCAN_LINES} lines (the first row holds {[c for c in first if c][:8]})")
    header = records[head][1]
    rows, lines = [], []
    for line, cells in records[head + 1:]:
        if not any(cells):
            continue
        if len(cells) > len(header) and any(cells[len(header):]):
            raise TasksError(f"{what} {path}, line {line}: {len(cells)} fields, the header on line "
                             f"{records[head][0]} has {len(header)}; expected one cell per column")
        rows.append((cells + [""] * len(header))[: len(header)])
        lines.append(line)
    df = pd.DataFrame(rows, columns=header, dtype=str) if rows else pd.DataFrame(columns=header, dtype=str)
    for col in (c for c in CODE_COLUMNS if c in df.columns):
        df[col] = [unicodedata.normalize("NFKC", v) for v in df[col]]
    return df, lines


def load_units(path: Path | Plan) -> UnitList:
    """Read and check the unit list (columns unit, slug, aliases, note)."""
    path = units_path(path) if isinstance(path, Plan) else Path(path)
    if not path.exists():
        raise TasksError(f"unit list {path} not found")
    df, lines = read_list(path, ("unit", "slug", "aliases"), "unit list")
    names: dict[str, str] = {}
    slugs: dict[str, str] = {}
    for i, row in df.iterrows():
        line = lines[i]
        unit = row["unit"].strip()
        slug = row["slug"].strip()
        if not unit or not re.fullmatch(r"[a-z0-9-]+", slug):
            raise TasksError(f"{path} line {line}: empty unit or bad slug {slug!r} (a-z, 0-9, -)")
        if slug in slugs.values():
            raise TasksError(f"{path} line {line}: duplicate slug {slug!r}")
        slugs[unit] = slug
        for name in [unit, *row["aliases"].split(";")]:
            key = _squash(name)
            if not key:
                continue
            if key in names and names[key] != unit:
                raise TasksError(
                    f"{path} line {line}: name {name!r} already means {names[key]!r}"
                )
            names[key] = unit
    return UnitList(units=tuple(slugs), slugs=slugs, names=names, source=str(path))


def deadline_year(deadline: str) -> int | None:
    """2025 for '2025年底'; None for '每年实施'."""
    m = DEADLINE_RE.match(deadline)
    return int(m.group(1)) if m else None


def _normalise_deadline(cell: str, where: str) -> str:
    text = _squash(strip_markup(cell))
    if text == ANNUAL or DEADLINE_RE.match(text):
        return text
    raise TasksError(f"{where}: deadline {cell!r} is neither 'YYYY年底' nor '{ANNUAL}'")


def _numbered(cell: str, pattern: str, where: str) -> tuple[int, str]:
    m = re.match(pattern, cell)
    if not m:
        raise TasksError(f"{where}: cannot read the number in {cell!r}")
    num = m.group(1)
    return (CN_NUM[num] if num in CN_NUM else int(num)), m.group(2).strip()


def parse_annex(text: str, units: UnitList, source: str = "annex") -> pd.DataFrame:
    """Transcribe a tab-separated extraction of the annex table into the task list.

    The table starts at a header row ending in 具体措施/牵头单位/责任单位/完成时限
    (the first cell names the kind, e.g. 五大提升行动) and ends at the first
    non-empty line that is not a 6-cell row. A row with empty lead units, responsible
    units and deadline continues the previous measure's text (PDF page or cell
    wrap); it is joined without a separator because every such break in the
    source falls inside a Chinese sentence.
    """
    rows: list[dict] = []
    kind = group = task = None
    started = False
    for lineno, line in enumerate(text.split("\n"), start=1):
        cells = line.split("\t")
        where = f"{source} line {lineno}"
        if len(cells) == 6 and tuple(c.strip() for c in cells[2:]) == ANNEX_HEADER:
            m = re.match(r"^[一二三四五六七八九十\d]+[大项]?(.+)$", cells[0].strip())
            kind = m.group(1) if m else cells[0].strip()
            if kind not in KIND_PREFIX:
                raise TasksError(f"{where}: unknown kind of group {cells[0]!r}")
            group = task = None
            started = True
            continue
        if not started:
            continue
        if len(cells) != 6:
            if line.strip():
                break  # notes after the table
            continue
        c = [strip_markup(x) for x in cells]
        if c[0]:
            no, name = _numbered(c[0], r"^([一二三四五六七八九十]+)、(.+)$", where)
            group = {"kind": kind, "group_no": no, "group_name": name}
            task = None
        if c[1]:
            no, name = _numbered(c[1], r"^(\d+)[.．、](.+)$", where)
            task = {"task_no": no, "task_name": name}
        if not (c[3] or c[4] or c[5]):
            if c[0] or c[1] or not rows:
                raise TasksError(f"{where}: a new action or task without lead unit and deadline")
            rows[-1]["measure_text"] += c[2]
            rows[-1]["source_lines"] += f";{lineno}"
            continue
        if not c[3] or not c[5]:
            raise TasksError(f"{where}: measure without lead unit or deadline: {line[:60]!r}")
        if group is None or task is None:
            raise TasksError(f"{where}: measure before its action/project or task")
        n = 1 + sum(
            r["kind"] == kind and r["group_no"] == group["group_no"]
            and r["task_no"] == task["task_no"] for r in rows
        )
        rows.append({
            "measure_id": f"{KIND_PREFIX[kind]}{group['group_no']}-{task['task_no']}-{n}",
            **group, **task,
            "measure_text": c[2],
            "lead_units": ";".join(units.split(c[3], f"{where} 牵头单位")),
            "responsible_units": ";".join(units.split(c[4], f"{where} 责任单位")),
            "deadline": _normalise_deadline(c[5], where),
            "source_lines": str(lineno),
        })
    if not rows:
        raise TasksError(f"{source}: no annex table found (header {'/'.join(ANNEX_HEADER)})")
    return pd.DataFrame(rows, columns=TASK_COLUMNS + OPTIONAL_COLUMNS)


def split_list(value) -> list[str]:
    """';'-separated cell -> list (empty cell -> [])."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return []
    return [v.strip() for v in str(value).split(";") if v.strip()]


def _whole(value: str) -> int | None:
    return int(value) if re.fullmatch(r"\d{1,3}", str(value)) else None


def _deadline_problem(dl: str) -> str | None:
    if dl == ANNUAL or DEADLINE_RE.match(dl):
        return None
    m = EXCEL_SERIAL_RE.match(dl)
    if m and 10958 <= int(m.group(1)) <= 73415:  # 1930-01-01 .. 2100-12-31
        day = EXCEL_EPOCH + timedelta(days=int(m.group(1)))
        return (f"deadline {dl!r} is an Excel date serial number ({day.isoformat()}): format the column "
                f"as text and write '{day.year}年底' or '{ANNUAL}'")
    return f"deadline {dl!r} is neither 'YYYY年底' nor '{ANNUAL}'"


def validate_tasks(df: pd.DataFrame, units: UnitList, source: str = "tasks",
                   lines: list[int] | None = None) -> list[str]:
    """Every problem in a task list, each naming the row (its line in the CSV), the column and value.

    `lines`: the file line of each row (read_list); default header on line 1, no blank lines.
    """
    problems: list[str] = []
    missing = [c for c in TASK_COLUMNS if c not in df.columns]
    if missing:
        return [f"{source}: missing columns {missing}"]
    seen: dict[str, int] = {}
    names: dict[tuple, str] = {}
    for i, row in df.reset_index(drop=True).iterrows():
        line = lines[i] if lines is not None else i + 2
        where = f"{source} line {line}"
        mid = str(row["measure_id"])
        m = MEASURE_ID_RE.match(mid)
        if mid in seen:
            problems.append(f"{where}: duplicate measure_id {mid!r} (also line {seen[mid]})")
        seen[mid] = line
        nums = {c: _whole(row[c]) for c in ("group_no", "task_no")}
        for c in (c for c, v in nums.items() if v is None):
            problems.append(f"{where}: {c} {row[c]!r} is not a whole number; expected the number alone, e.g. 3")
        if row["kind"] not in KIND_PREFIX:
            problems.append(f"{where}: kind {row['kind']!r} not in {list(KIND_PREFIX)}")
        elif None not in nums.values() and (not m or m.group(1) != KIND_PREFIX[row["kind"]]
                                            or (int(m.group(2)), int(m.group(3))) != tuple(nums.values())):
            problems.append(f"{where}: measure_id {mid!r} does not match kind/group_no/task_no")
        if not str(row["measure_text"]).strip():
            problems.append(f"{where}: empty measure_text")
        if problem := _deadline_problem(str(row["deadline"])):
            problems.append(f"{where}: {problem}")
        leads = split_list(row["lead_units"])
        if not leads:
            problems.append(f"{where}: no lead unit")
        for col in ("lead_units", "responsible_units"):
            for u in split_list(row[col]):
                if u not in units.slugs:
                    hint = units.normalise(u)
                    problems.append(
                        f"{where}: {col} {u!r} is not a normalised unit"
                        + (f" (alias of {hint!r})" if hint else "")
                    )
        for key, val in (((row["kind"], row["group_no"]), row["group_name"]),
                         ((row["kind"], row["group_no"], row["task_no"]), row["task_name"])):
            if names.setdefault(key, val) != val:
                problems.append(f"{where}: name {val!r} differs from earlier {names[key]!r}")
    return problems


def load_tasks(plan: Plan, units: UnitList | None = None) -> pd.DataFrame:
    """Read and validate the plan's task list; lead/responsible units become lists."""
    path = tasks_path(plan)
    if not path.exists():
        raise TasksError(
            f"task list {path} not found (plan key tasks.file, default plan/{{city}}-tasks.csv)"
        )
    units = units or load_units(plan)
    df, lines = read_list(path, ("measure_id", "kind", "deadline"), "task list")
    problems = validate_tasks(df, units, source=str(path), lines=lines)
    if problems:
        raise TasksError(f"{len(problems)} problem(s) in the task list:\n" + "\n".join(problems))
    df["group_no"] = df["group_no"].astype(int)
    df["task_no"] = df["task_no"].astype(int)
    df["lead_units"] = df["lead_units"].map(split_list)
    df["responsible_units"] = df["responsible_units"].map(split_list)
    df["deadline_year"] = pd.array([deadline_year(d) for d in df["deadline"]], dtype="Int64")
    return df


def lead_units(tasks: pd.DataFrame) -> list[str]:
    """Lead units in order of first appearance in the annex."""
    out: list[str] = []
    for units in tasks["lead_units"]:
        out.extend(u for u in units if u not in out)
    return out


def measures_for_unit(tasks: pd.DataFrame, unit: str) -> pd.DataFrame:
    """Measures that `unit` leads (alone or with others)."""
    return tasks[tasks["lead_units"].map(lambda us: unit in us)]


def find_measure(tasks: pd.DataFrame, sentence: str) -> pd.Series | None:
    """The measure whose text contains `sentence` (whitespace ignored), if exactly one."""
    key = _squash(sentence)
    hits = tasks[tasks["measure_text"].map(lambda t: key in _squash(t))]
    return hits.iloc[0] if len(hits) == 1 else None
