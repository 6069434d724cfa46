"""Markdown building blocks for the report: numbers, tables and figures with cross-reference labels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .config import ROOT

SUPPRESSED = {"zh": "（抑制）", "en": "(suppressed)"}


def pct(value: float | None, digits: int = 1) -> str:
    """'13.5%'; a dash for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}%"


def num(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}"


def interval(low: float | None, high: float | None, digits: int = 1, unit: str = "%") -> str:
    """'11.2%–15.8%'."""
    if low is None or high is None or any(isinstance(v, float) and math.isnan(v) for v in (low, high)):
        return "—"
    return f"{low:.{digits}f}{unit}–{high:.{digits}f}{unit}"


def _cell(value: object) -> str:
    text = "—" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(df: pd.DataFrame, caption: str, label: str, align: Sequence[str] | None = None) -> str:
    """A pipe table with a caption and a `tbl-` label, for Quarto and pandoc alike."""
    if not label.startswith("tbl-"):
        raise ValueError(f"table label must start with 'tbl-': {label}")
    if df.empty:
        raise ValueError(f"table {label} has no rows")
    align = list(align) if align else ["l"] + ["r"] * (df.shape[1] - 1)
    rule = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(_cell(c) for c in df.columns) + " |",
             "|" + "|".join(rule[a] for a in align) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
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

_SHEET_BAD = str.maketrans({c: " " for c in "[]:*?/\\"})


def write_workbook(path: Path, title: str, notice: str | None,
                   tables: list[tuple[str, str, pd.DataFrame]] | None = None) -> Path:
    """An Excel workbook with every published table, one sheet each, and a contents sheet first."""
    tables = PUBLISHED if tables is None else tables
    if not tables:
        raise ValueError("no tables to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    contents = pd.DataFrame({"工作表": [f"表{i}" for i in range(1, len(tables) + 1)],
                             "标题": [caption for _, caption, _ in tables],
                             "标签": [label for label, _, _ in tables]})
    tmp = path.with_suffix(".tmp.xlsx")
    with pd.ExcelWriter(tmp, engine="openpyxl") as xl:
        head = pd.DataFrame({"说明": [title, notice or "",
                                      "“—”表示无数据或按披露控制规则不予发布（见各表“备注”列）。"]})
        head.to_excel(xl, sheet_name="说明", index=False)
        contents.to_excel(xl, sheet_name="说明", index=False, startrow=5)
        for i, (_, caption, table) in enumerate(tables, 1):
            name = f"表{i} {caption}".translate(_SHEET_BAD)[:31]
            table.to_excel(xl, sheet_name=name, index=False)
            sheet = xl.sheets[name]
            for col in sheet.columns:
                width = max(len(str(c.value or "")) for c in col[:50])
                sheet.column_dimensions[col[0].column_letter].width = min(40, max(8, width * 1.6))
    tmp.replace(path)
    return path


def number_crossrefs(markdown: str, lang: str = "zh") -> str:
    """Quarto-style @fig-/@tbl-/@sec- references as numbered links (for HTML, where Typst does not number)."""
    import re

    numbers: dict[str, str] = {}
    counters = {"fig": 0, "tbl": 0}
    sec = [0, 0, 0]
    for line in markdown.splitlines():
        h = re.match(r"^(#{1,3}) .*\{#(sec-[\w-]+)", line)
        if h:
            level = len(h.group(1)) - 1
            sec[level] += 1
            sec[level + 1:] = [0] * (2 - level)
            numbers[h.group(2)] = ".".join(str(n) for n in sec[: level + 1])
        for label in re.findall(r"\{#((?:fig|tbl)-[\w-]+)", line):
            kind = label.split("-")[0]
            counters[kind] += 1
            numbers[label] = str(counters[kind])
    names = {"zh": {"fig": "图", "tbl": "表", "sec": "第"}, "en": {"fig": "Figure", "tbl": "Table", "sec": "Section"}}[lang]

    def link(m: re.Match) -> str:
        label = m.group(1)
        kind = label.split("-")[0]
        n = numbers.get(label, "?")
        text = f"{names['sec']}{n}节" if kind == "sec" and lang == "zh" else f"{names[kind]} {n}"
        return f"[{text}](#{label})"
    return re.sub(r"(?<![\w`])@((?:fig|tbl|sec)-[\w-]+)", link, markdown)
