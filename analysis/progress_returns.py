"""Progress returns: Excel templates per lead unit, and a reader that validates filled ones.

A return is one workbook per lead unit with two sheets: 任务进展 (one row per
measure and year: status from a drop-down, evidence, note) and 指标数据 (the
plan indicators the unit owns, one row per item and year). Headers and the
descriptive columns are locked; only the input cells are editable.

The reader never stops at the first mistake: every problem becomes a row of
(file, sheet, cell, problem) and the valid rest of the file is kept.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from openpyxl import Workbook, load_workbook
from openpyxl.styles import Alignment, Font, PatternFill, Protection
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from .config import Plan
from .plan_tasks import UnitList, find_measure, load_tasks, load_units, measures_for_unit

STATUSES = ("已完成", "推进中", "未启动")
MEASURE_SHEET = "任务进展"
INDICATOR_SHEET = "指标数据"
HEADER_ROW = 3
FIRST_ROW = HEADER_ROW + 1
SYNTHETIC_NOTICE = "本表为合成示例数据：由程序随机生成，不是任何单位的真实填报，仅用于演示和测试。"
TEMPLATE_NOTICE = (
    "填写说明：只填白色单元格。完成状态请从下拉列表选择（已完成/推进中/未启动）；"
    "年度填四位数字；佐证材料填文件名称或文号；数值只填数字，不带单位。"
)
CITY_SCOPE = "全市"
FIXED_TIME = datetime(2021, 1, 1)

# (key, Chinese header, column width, input column)
MEASURE_COLUMNS = [
    ("measure_id", "措施编号", 10, False),
    ("group_name", "行动/工程", 18, False),
    ("task_name", "主要工作任务", 20, False),
    ("measure_text", "具体措施", 60, False),
    ("lead_units", "牵头单位", 16, False),
    ("deadline", "完成时限", 10, False),
    ("year", "年度", 8, True),
    ("status", "完成状态", 10, True),
    ("evidence", "佐证材料", 36, True),
    ("note", "备注", 20, True),
]
INDICATOR_COLUMNS = [
    ("indicator_id", "指标编号", 26, False),
    ("name_zh", "指标", 28, False),
    ("item", "填报项", 30, False),
    ("scope", "范围", 10, False),
    ("division_code", "区划代码", 10, False),
    ("year", "年度", 8, True),
    ("value", "数值", 10, True),
    ("unit", "计量单位", 8, False),
    ("target", "目标", 16, False),
    ("evidence", "佐证材料", 36, True),
]
# How a plan indicator is reported. Overridden per indicator id by the plan key
# tasks.indicator_inputs; an indicator not listed is one number for the city a year.
DEFAULT_INDICATOR_INPUTS: dict[str, dict[str, Any]] = {
    "literacy_rate": {"source": "survey"},
    "divisions_with_museum_share": {
        "input": "count_by_division", "input_name_zh": "实体科普馆数量", "input_unit": "座",
        "threshold": 1,
    },
}

_HEADER_FILL = PatternFill("solid", fgColor="D9E1F2")
_LOCKED_FILL = PatternFill("solid", fgColor="F2F2F2")


# --------------------------------------------------------------------------- indicators

def indicator_specs(plan: Plan, tasks: pd.DataFrame) -> list[dict[str, Any]]:
    """The plan's indicators with how they are reported and which lead unit owns them.

    Owner: plan key tasks.indicator_owners.<id> if given, else the FIRST lead unit
    of the annex measure whose text contains the indicator's source sentence.
    Indicators from the survey (literacy) have no owner and no return rows.
    """
    overrides = plan.settings.tasks.indicator_inputs
    owners = plan.settings.tasks.indicator_owners
    specs = []
    for ind in plan.settings.indicators:
        conf = {"input": "value", **DEFAULT_INDICATOR_INPUTS.get(ind["id"], {}),
                **overrides.get(ind["id"], {})}
        measure = find_measure(tasks, ind.get("source", "")) if ind.get("source") else None
        spec = {
            "id": ind["id"], "name_zh": ind["name_zh"], "name_en": ind.get("name_en"),
            "target": float(ind["target"]),
            "comparison": ind.get("comparison", ">="), "unit": ind.get("unit", ""),
            "deadline": ind.get("deadline"), "source": ind.get("source", ""),
            "measure_id": measure["measure_id"] if measure is not None else None,
            **conf,
        }
        if conf.get("source") == "survey":
            spec["owner"] = None
        else:
            spec["owner"] = owners.get(ind["id"]) or (
                measure["lead_units"][0] if measure is not None else None)
        spec["annual"] = spec["deadline"] == "every_year"
        if "input_name_zh" not in spec:
            spec["input_name_zh"] = ind["name_zh"]
        if "input_unit" not in spec:
            spec["input_unit"] = spec["unit"].split("/")[0]
        specs.append(spec)
    return specs


def _target_text(spec: dict) -> str:
    when = "每年" if spec["annual"] else f"{spec['deadline']}年"
    target = f"{spec['target']:g}"
    unit = "%" if spec["unit"] == "percent" else spec["unit"].split("/")[0]
    comp = {">=": "≥", "<=": "≤"}.get(spec["comparison"], spec["comparison"])
    return f"{when}{comp}{target}{unit}"


def _item_text(spec: dict) -> str:
    if spec["input"] == "count_by_division":
        return f"{spec['input_name_zh']}（截至当年年底）"
    if spec["annual"]:
        return f"当年{spec['input_name_zh'].removeprefix('每年')}"
    return f"{spec['input_name_zh']}（截至当年年底累计）"


def indicator_rows(plan: Plan, spec: dict, years: list[int]) -> list[dict]:
    """The prefilled rows a unit fills for one indicator (per division for division counts)."""
    scopes = ([(d["name_zh"], str(d["code"])) for d in plan.divisions]
              if spec["input"] == "count_by_division" else [(CITY_SCOPE, "")])
    return [
        {"indicator_id": spec["id"], "name_zh": spec["name_zh"], "item": _item_text(spec),
         "scope": scope, "division_code": code, "year": y, "unit": spec["input_unit"],
         "target": _target_text(spec)}
        for y in years for scope, code in scopes
    ]


# --------------------------------------------------------------------------- templates

def _years(plan: Plan, years) -> list[int]:
    start, end = plan.period
    return list(years) if years is not None else list(range(start, end + 1))


def _setup_sheet(ws, plan: Plan, unit: str, columns, title: str, synthetic: bool) -> None:
    ws.cell(1, 1, title).font = Font(bold=True, size=13)
    ws.cell(2, 1, "填报单位").font = Font(bold=True)
    ws.cell(2, 2, unit)
    ws.cell(2, 3, "说明").font = Font(bold=True)
    notice = ws.cell(2, 4, SYNTHETIC_NOTICE if synthetic else TEMPLATE_NOTICE)
    if synthetic:
        notice.font = Font(bold=True, color="C00000")
    for j, (_, label, width, _) in enumerate(columns, start=1):
        c = ws.cell(HEADER_ROW, j, label)
        c.font = Font(bold=True)
        c.fill = _HEADER_FILL
        c.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        ws.column_dimensions[get_column_letter(j)].width = width
    ws.freeze_panes = ws.cell(FIRST_ROW, 1)
    ws.protection.sheet = True  # no password: it prevents accidents, not edits
    ws.protection.formatColumns = False
    ws.protection.formatRows = False


def _write_rows(ws, columns, rows: list[dict]) -> None:
    for i, row in enumerate(rows):
        r = FIRST_ROW + i
        for j, (key, _, _, is_input) in enumerate(columns, start=1):
            val = row.get(key)
            c = ws.cell(r, j, val if val is not None and val != "" else None)
            c.alignment = Alignment(vertical="top", wrap_text=key in {
                "measure_text", "task_name", "group_name", "evidence", "item", "name_zh"})
            if is_input:
                c.protection = Protection(locked=False)
            else:
                c.fill = _LOCKED_FILL


def _col(columns, key) -> str:
    return get_column_letter([k for k, *_ in columns].index(key) + 1)


def _validation(ws, columns, key, last: int, dv: DataValidation) -> None:
    dv.add(f"{_col(columns, key)}{FIRST_ROW}:{_col(columns, key)}{max(last, FIRST_ROW)}")
    ws.add_data_validation(dv)


def status_validation() -> DataValidation:
    return DataValidation(
        type="list", formula1='"' + ",".join(STATUSES) + '"', allow_blank=True,
        showDropDown=False,  # openpyxl's name is inverted: False shows the arrow
        showErrorMessage=True, errorTitle="完成状态", error="请从下拉列表选择：" + "/".join(STATUSES),
        showInputMessage=True, promptTitle="完成状态", prompt="/".join(STATUSES),
    )


def write_return(
    plan: Plan, unit: str, path: Path, *, tasks: pd.DataFrame | None = None,
    years=None, synthetic: bool = False,
    statuses: dict[tuple[str, int], tuple] | None = None,
    values: dict[tuple[str, str, int], tuple] | None = None,
) -> Path:
    """Write a return workbook for one lead unit (empty template unless filled).

    statuses: (measure_id, year) -> (status, evidence, note);
    values: (indicator_id, division_code or '', year) -> (value, evidence).
    """
    tasks = tasks if tasks is not None else load_tasks(plan)
    years = _years(plan, years)
    start, end = plan.period
    title_kind = "合成示例数据，非真实填报" if synthetic else "模板"
    title = f"{plan.settings.city.plan_title_zh} 工作任务进展填报表（{title_kind}）"
    wb = Workbook()
    ws = wb.active
    ws.title = MEASURE_SHEET
    _setup_sheet(ws, plan, unit, MEASURE_COLUMNS, title, synthetic)
    rows = []
    for _, m in measures_for_unit(tasks, unit).iterrows():
        for y in years:
            fill = (statuses or {}).get((m["measure_id"], y), (None, None, None))
            rows.append({
                "measure_id": m["measure_id"], "group_name": m["group_name"],
                "task_name": m["task_name"], "measure_text": m["measure_text"],
                "lead_units": "、".join(m["lead_units"]), "deadline": m["deadline"],
                "year": y, "status": fill[0], "evidence": fill[1], "note": fill[2],
            })
    _write_rows(ws, MEASURE_COLUMNS, rows)
    last = FIRST_ROW + len(rows) - 1
    _validation(ws, MEASURE_COLUMNS, "status", last, status_validation())
    _validation(ws, MEASURE_COLUMNS, "year", last, DataValidation(
        type="whole", operator="between", formula1=str(start), formula2=str(end),
        showErrorMessage=True, error=f"年度应为{start}—{end}的整数"))

    owned = [s for s in indicator_specs(plan, tasks) if s.get("owner") == unit]
    if owned:
        wi = wb.create_sheet(INDICATOR_SHEET)
        _setup_sheet(wi, plan, unit, INDICATOR_COLUMNS, title, synthetic)
        irows = []
        for spec in owned:
            for row in indicator_rows(plan, spec, years):
                key = (row["indicator_id"], row["division_code"], row["year"])
                val = (values or {}).get(key, (None, None))
                irows.append({**row, "value": val[0], "evidence": val[1]})
        _write_rows(wi, INDICATOR_COLUMNS, irows)
        ilast = FIRST_ROW + len(irows) - 1
        _validation(wi, INDICATOR_COLUMNS, "value", ilast, DataValidation(
            type="decimal", operator="greaterThanOrEqual", formula1="0",
            showErrorMessage=True, error="数值应为不小于0的数字（不带单位）"))
        _validation(wi, INDICATOR_COLUMNS, "year", ilast, DataValidation(
            type="whole", operator="between", formula1=str(start), formula2=str(end),
            showErrorMessage=True, error=f"年度应为{start}—{end}的整数"))
    wb.properties.creator = "sciliteracy-eval"
    wb.properties.title = title
    wb.properties.description = SYNTHETIC_NOTICE if synthetic else TEMPLATE_NOTICE
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    freeze_xlsx(path)
    return path


def freeze_xlsx(path: Path) -> None:
    """Rewrite an .xlsx with fixed zip and document timestamps so equal content gives equal bytes."""
    path = Path(path)
    with zipfile.ZipFile(path) as zin:
        entries = [(i.filename, zin.read(i.filename)) for i in zin.infolist()]
    stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
        for name, data in entries:
            if name == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*",
                              rb"\g<1>" + stamp.encode(), data)
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(info, data)
    tmp.replace(path)


def return_filename(plan: Plan, units: UnitList, unit: str, suffix: str) -> str:
    return f"{plan.city}-{units.slug(unit)}-{suffix}.xlsx"


def write_templates(plan: Plan, out_dir: Path, years=None) -> list[Path]:
    """One empty template per lead unit: <city>-<unit-slug>-template.xlsx."""
    from .plan_tasks import lead_units

    units = load_units(plan)
    tasks = load_tasks(plan, units)
    return [write_return(plan, u, Path(out_dir) / return_filename(plan, units, u, "template"),
                         tasks=tasks, years=years)
            for u in lead_units(tasks)]


# --------------------------------------------------------------------------- reading

PROBLEM_COLUMNS = ["file", "sheet", "cell", "problem", "severity", "code", "value"]


@dataclass
class Returns:
    """Validated content of one or more returns."""

    measures: pd.DataFrame
    indicators: pd.DataFrame
    problems: pd.DataFrame
    files: pd.DataFrame = field(default_factory=pd.DataFrame)


class _Collector:
    def __init__(self, file: str):
        self.file = file
        self.rows: list[dict] = []

    def add(self, sheet, cell, code, problem, value=None, severity="error"):
        self.rows.append({"file": self.file, "sheet": sheet, "cell": cell, "problem": problem,
                          "severity": severity, "code": code,
                          "value": None if value is None else str(value)})


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _numeric_text(v: str) -> float | None:
    try:
        return float(v.strip().replace(",", ""))
    except ValueError:
        return None


def _find_header(ws, labels: dict[str, str]) -> tuple[int, dict[str, int]] | None:
    for r in range(1, min(ws.max_row, 10) + 1):
        found = {}
        for c in range(1, ws.max_column + 1):
            v = ws.cell(r, c).value
            if isinstance(v, str) and v.strip() in labels:
                found[labels[v.strip()]] = c
        if len(found) >= 2:
            return r, found
    return None


def _merged_cells(ws, hrow: int, col: _Collector) -> None:
    """A merged range below the header is reported: only its first cell holds a value, and the
    rows it covers would otherwise be read as blank without anyone noticing."""
    for rng in sorted(ws.merged_cells.ranges, key=lambda r: (r.min_row, r.min_col)):
        if rng.max_row > hrow:
            col.add(ws.title, rng.coord, "merged_cell",
                    f"合并单元格 {rng.coord}：只有左上角单元格有内容，其余单元格按空白读取；"
                    "请取消合并，在每一行分别填写")


def _read_year(v, cell, sheet, col: _Collector, period) -> int | None:
    start, end = period
    if v is None or (isinstance(v, str) and not v.strip()):
        col.add(sheet, cell, "missing_year", "缺少年度", v)
        return None
    if isinstance(v, str):
        num = _numeric_text(v)
        if num is None:
            col.add(sheet, cell, "text_for_number", f"此处应为数字（年度），实为文字“{v}”", v)
            return None
        col.add(sheet, cell, "numeric_text", f"年度“{v}”是文本格式的数字，已按数字读取", v,
                severity="warning")
        v = num
    if not _is_number(v) or float(v) != int(v):
        col.add(sheet, cell, "bad_year", f"年度应为整数，实为 {v!r}", v)
        return None
    if not start <= int(v) <= end:
        col.add(sheet, cell, "year_out_of_period", f"年度 {int(v)} 不在规划期 {start}—{end} 内", v)
        return None
    return int(v)


def _read_text(v, cell, sheet, col: _Collector, label: str) -> str | None:
    if v is None:
        return None
    if _is_number(v) or isinstance(v, datetime):
        col.add(sheet, cell, "number_for_text", f"此处应为文字（{label}），实为数字 {v}", v)
        return None
    text = str(v).strip()
    return text or None


def _unit_of(ws, col: _Collector, units: UnitList) -> str | None:
    label, name = ws.cell(2, 1).value, ws.cell(2, 2).value
    if label != "填报单位" or not name:
        col.add(ws.title, "B2", "missing_unit", "找不到填报单位（B2）", name)
        return None
    unit = units.normalise(str(name))
    if unit is None:
        col.add(ws.title, "B2", "unknown_unit", f"填报单位“{name}”不在单位名录中", name)
    return unit


def read_return(path: Path, plan: Plan, tasks: pd.DataFrame | None = None,
                units: UnitList | None = None) -> Returns:
    """Validate one filled return; problems are per cell and never lose the valid rows."""
    path = Path(path)
    units = units or load_units(plan)
    tasks = tasks if tasks is not None else load_tasks(plan, units)
    col = _Collector(path.name)
    measures: list[dict] = []
    indicators: list[dict] = []
    info = {"file": path.name, "unit": None, "synthetic": False}
    try:
        wb = load_workbook(path, data_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one problem row
        col.add("", "", "unreadable", f"无法打开文件：{type(exc).__name__}: {exc}")
        return _result(measures, indicators, col, [info])
    if MEASURE_SHEET not in wb.sheetnames:
        col.add("", "", "missing_sheet", f"缺少工作表“{MEASURE_SHEET}”", ",".join(wb.sheetnames))
    else:
        ws = wb[MEASURE_SHEET]
        info["unit"] = _unit_of(ws, col, units)
        info["synthetic"] = "合成" in str(ws.cell(1, 1).value or "") + str(ws.cell(2, 4).value or "")
        measures = _read_measures(ws, plan, tasks, info["unit"], col)
    if INDICATOR_SHEET in wb.sheetnames:
        ws = wb[INDICATOR_SHEET]
        unit = info["unit"] or _unit_of(ws, col, units)
        indicators = _read_indicators(ws, plan, tasks, unit, col)
    for rows in (measures, indicators):
        for r in rows:
            r.update(file=path.name, unit=info["unit"])
    return _result(measures, indicators, col, [info])


def _read_measures(ws, plan, tasks, unit, col: _Collector) -> list[dict]:
    labels = {label: key for key, label, *_ in MEASURE_COLUMNS} | {k: k for k, *_ in MEASURE_COLUMNS}
    found = _find_header(ws, labels)
    sheet = ws.title
    if found is None or not {"measure_id", "year", "status"} <= set(found[1]):
        col.add(sheet, f"A{HEADER_ROW}", "missing_header",
                "找不到表头（需要“措施编号”“年度”“完成状态”列）")
        return []
    hrow, cols = found
    _merged_cells(ws, hrow, col)
    known = dict(zip(tasks["measure_id"], tasks["lead_units"], strict=True))
    seen: dict[tuple, str] = {}
    out = []
    for r in range(hrow + 1, ws.max_row + 1):
        vals = {k: ws.cell(r, c).value for k, c in cols.items()}
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in vals.values()):
            continue
        addr = {k: f"{get_column_letter(c)}{r}" for k, c in cols.items()}
        mid = str(vals["measure_id"] or "").strip()
        if mid not in known:
            col.add(sheet, addr["measure_id"], "unknown_measure",
                    f"未知措施编号“{mid}”（不在任务清单中），该行未读入", mid)
            continue
        if unit is not None and unit not in known[mid]:
            col.add(sheet, addr["measure_id"], "not_lead",
                    f"措施 {mid} 的牵头单位不含{unit}，仍读入", mid, severity="warning")
        year = _read_year(vals["year"], addr["year"], sheet, col, plan.period)
        if year is None:
            continue
        status = vals["status"]
        if status is not None:
            if _is_number(status):
                col.add(sheet, addr["status"], "number_for_text",
                        f"此处应为文字（完成状态），实为数字 {status}", status)
                status = None
            elif str(status).strip() not in STATUSES:
                if str(status).strip():
                    col.add(sheet, addr["status"], "bad_status",
                            f"完成状态“{status}”不在下拉列表（{'/'.join(STATUSES)}）中", status)
                status = None
            else:
                status = str(status).strip()
        evidence = _read_text(vals.get("evidence"), addr.get("evidence"), sheet, col, "佐证材料")
        note = _read_text(vals.get("note"), addr.get("note"), sheet, col, "备注")
        if status is None and evidence is None and note is None and not any(
                p["cell"] in addr.values() for p in col.rows):
            continue  # a prefilled row nobody filled in: not a report
        if (mid, year) in seen:
            col.add(sheet, addr["measure_id"], "duplicate",
                    f"措施 {mid} {year} 年重复填报（首次在 {seen[(mid, year)]}），以首次为准", mid)
            continue
        seen[(mid, year)] = addr["measure_id"]
        out.append({"measure_id": mid, "year": year, "status": status, "evidence": evidence,
                    "note": note, "row": r})
    return out


def _read_indicators(ws, plan, tasks, unit, col: _Collector) -> list[dict]:
    labels = {label: key for key, label, *_ in INDICATOR_COLUMNS} | {
        k: k for k, *_ in INDICATOR_COLUMNS}
    found = _find_header(ws, labels)
    sheet = ws.title
    if found is None or not {"indicator_id", "year", "value"} <= set(found[1]):
        col.add(sheet, f"A{HEADER_ROW}", "missing_header", "找不到表头（需要“指标编号”“年度”“数值”列）")
        return []
    hrow, cols = found
    _merged_cells(ws, hrow, col)
    specs = {s["id"]: s for s in indicator_specs(plan, tasks)}
    divisions = {str(d["code"]): str(d["code"]) for d in plan.divisions}
    for d in plan.divisions:
        for name in [d["name_zh"], *d.get("aliases", [])]:
            divisions[name] = str(d["code"])
    seen: dict[tuple, str] = {}
    out = []
    for r in range(hrow + 1, ws.max_row + 1):
        vals = {k: ws.cell(r, c).value for k, c in cols.items()}
        if vals.get("value") is None or (isinstance(vals["value"], str) and not vals["value"].strip()):
            continue  # nothing reported on this row
        addr = {k: f"{get_column_letter(c)}{r}" for k, c in cols.items()}
        iid = str(vals["indicator_id"] or "").strip()
        spec = specs.get(iid)
        if spec is None or spec.get("source") == "survey":
            col.add(sheet, addr["indicator_id"], "unknown_indicator",
                    f"未知或不由部门填报的指标编号“{iid}”，该行未读入", iid)
            continue
        if unit is not None and spec["owner"] != unit:
            col.add(sheet, addr["indicator_id"], "not_owner",
                    f"指标 {iid} 由{spec['owner']}填报，此处仍读入", iid, severity="warning")
        code = ""
        if spec["input"] == "count_by_division":
            raw = vals.get("division_code") or vals.get("scope")
            code = divisions.get(str(raw).strip()) if raw is not None else None
            if code is None:
                cell = addr.get("division_code") or addr.get("scope") or addr["indicator_id"]
                col.add(sheet, cell, "unknown_division", f"无法识别的县（市、区）“{raw}”，该行未读入", raw)
                continue
        year = _read_year(vals["year"], addr["year"], sheet, col, plan.period)
        if year is None:
            continue
        value = vals["value"]
        if isinstance(value, str):
            num = _numeric_text(value)
            if num is None:
                col.add(sheet, addr["value"], "text_for_number",
                        f"此处应为数字（{spec['input_name_zh']}），实为文字“{value}”，该值未读入", value)
                continue
            col.add(sheet, addr["value"], "numeric_text",
                    f"数值“{value}”是文本格式的数字，已按数字读取", value, severity="warning")
            value = num
        if not _is_number(value):
            col.add(sheet, addr["value"], "text_for_number", f"此处应为数字，实为 {value!r}", value)
            continue
        if value < 0:
            col.add(sheet, addr["value"], "negative", f"数值 {value} 小于0，该值未读入", value)
            continue
        evidence = _read_text(vals.get("evidence"), addr.get("evidence"), sheet, col, "佐证材料")
        key = (iid, code, year)
        if key in seen:
            col.add(sheet, addr["value"], "duplicate",
                    f"指标 {iid} {code} {year} 年重复填报（首次在 {seen[key]}），以首次为准", value)
            continue
        seen[key] = addr["value"]
        out.append({"indicator_id": iid, "division_code": code, "year": year,
                    "value": float(value), "evidence": evidence, "row": r})
    return out


MEASURE_RETURN_COLUMNS = ["file", "unit", "measure_id", "year", "status", "evidence", "note", "row"]
INDICATOR_RETURN_COLUMNS = ["file", "unit", "indicator_id", "division_code", "year", "value",
                            "evidence", "row"]


def _result(measures, indicators, col: _Collector, files) -> Returns:
    m = pd.DataFrame(measures, columns=MEASURE_RETURN_COLUMNS)
    i = pd.DataFrame(indicators, columns=INDICATOR_RETURN_COLUMNS)
    m["year"] = m["year"].astype("int64")
    i["year"] = i["year"].astype("int64")
    i["value"] = i["value"].astype("float64")
    return Returns(measures=m, indicators=i,
                   problems=pd.DataFrame(col.rows, columns=PROBLEM_COLUMNS),
                   files=pd.DataFrame(files, columns=["file", "unit", "synthetic"]))


def read_returns(paths: list[Path], plan: Plan, tasks: pd.DataFrame | None = None,
                 units: UnitList | None = None) -> Returns:
    """Read, validate and merge several returns.

    Two files from the same unit reporting the same measure and year: the first
    file (in path order) wins and the other gets a problem row. Indicator values
    reported twice: the owner's value wins, else the first file's.
    """
    units = units or load_units(plan)
    tasks = tasks if tasks is not None else load_tasks(plan, units)
    parts = [read_return(p, plan, tasks, units) for p in sorted(Path(p) for p in paths)]
    if not parts:
        return _result([], [], _Collector(""), [])
    measures = pd.concat([p.measures for p in parts], ignore_index=True)
    indicators = pd.concat([p.indicators for p in parts], ignore_index=True)
    problems = [p.problems for p in parts]
    files = pd.concat([p.files for p in parts], ignore_index=True)
    extra = _Collector("")
    dup = measures.duplicated(["unit", "measure_id", "year"], keep="first")
    for _, r in measures[dup].iterrows():
        extra.file = r["file"]
        extra.add(MEASURE_SHEET, f"A{r['row']}", "duplicate",
                  f"{r['unit']} 已在另一文件填报措施 {r['measure_id']} {r['year']} 年，以先读入者为准",
                  r["measure_id"])
    measures = measures[~dup].reset_index(drop=True)
    specs = {s["id"]: s for s in indicator_specs(plan, tasks)}
    indicators["_owner"] = [specs[i]["owner"] == u
                            for i, u in zip(indicators["indicator_id"], indicators["unit"], strict=True)]
    indicators = indicators.sort_values("_owner", ascending=False, kind="stable")
    dup = indicators.duplicated(["indicator_id", "division_code", "year"], keep="first")
    for _, r in indicators[dup].iterrows():
        extra.file = r["file"]
        extra.add(INDICATOR_SHEET, f"A{r['row']}", "duplicate",
                  f"指标 {r['indicator_id']} {r['year']} 年已由其他文件填报，本值未采用", r["value"],
                  severity="warning")
    indicators = (indicators[~dup].drop(columns="_owner")
                  .sort_values(["indicator_id", "division_code", "year"]).reset_index(drop=True))
    problems.append(pd.DataFrame(extra.rows, columns=PROBLEM_COLUMNS))
    problems = pd.concat([p for p in problems if len(p)], ignore_index=True) if any(
        len(p) for p in problems) else pd.DataFrame(columns=PROBLEM_COLUMNS)
    return Returns(measures=measures, indicators=indicators, problems=problems, files=files)
