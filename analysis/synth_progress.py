"""Synthetic, deterministic filled progress returns for the demo (they say so on every sheet).

Truth is drawn per measure (co-lead units report the same status) and per
indicator; two returns carry deliberate mistakes so the reader's cell-level
messages show up in the demo:
- the lead unit with the fewest measures (first in annex order on ties):
  a status outside the drop-down, a number in the evidence column, a year typed as text;
- the owner of a per-division indicator: a text value in a number cell and an
  extra row with a measure id that is not in the task list.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from openpyxl import load_workbook

from .config import Plan
from .plan_tasks import lead_units, load_tasks, load_units, measures_for_unit
from .progress_returns import (
    FIRST_ROW,
    INDICATOR_COLUMNS,
    INDICATOR_SHEET,
    MEASURE_COLUMNS,
    MEASURE_SHEET,
    freeze_xlsx,
    indicator_specs,
    return_filename,
    write_return,
)

DEFAULT_SEED = 2025


def demo_truth(plan: Plan, tasks: pd.DataFrame, seed: int = DEFAULT_SEED,
               years=range(2021, 2026)) -> tuple[dict, dict]:
    """(statuses, values): statuses[(measure_id, year)] = (status, evidence, note) or absent
    (not reported); values[(indicator_id, division_code, year)] = (value, evidence)."""
    rng = np.random.default_rng(seed)
    years = list(years)
    statuses: dict[tuple[str, int], tuple] = {}
    for _, m in tasks.iterrows():
        short = m["task_name"][:12]
        if m["deadline"] == "每年实施":
            draws = rng.choice(["已完成", "推进中", "未启动"], size=len(years), p=[0.85, 0.1, 0.05])
        else:
            start = years[0] + int(rng.integers(0, 2))
            done = int(rng.choice(years[1:])) if rng.random() < 0.8 else None
            draws = ["未启动" if y < start else "已完成" if done is not None and y >= done
                     else "推进中" for y in years]
        skip = rng.random(len(years)) < 0.06  # a few cells left blank: 未报送
        for y, s, blank in zip(years, draws, skip, strict=True):
            if blank:
                continue
            ev = {"已完成": f"{y}年“{short}”工作总结（示例）",
                  "推进中": f"{y}年“{short}”进展情况报告（示例）"}.get(str(s))
            statuses[(m["measure_id"], y)] = (str(s), ev, None)
    values: dict[tuple[str, str, int], tuple] = {}
    for spec in indicator_specs(plan, tasks):
        if spec.get("owner") is None:
            continue
        if spec["input"] == "count_by_division":
            for d in plan.divisions:
                first = int(rng.choice(years)) if rng.random() < 0.5 else None
                extra = int(rng.choice(years)) if first is not None and rng.random() < 0.3 else None
                for y in years:
                    n = (first is not None and y >= first) + (extra is not None and y >= max(
                        extra, first or 0))
                    values[(spec["id"], str(d["code"]), y)] = (
                        int(n), f"{y}年{d['name_zh']}科普场馆名录（示例）")
        elif spec["annual"]:
            for i, y in enumerate(years):
                v = round(spec["target"] * (0.94 + 0.045 * i) + rng.normal(0, 6))
                values[(spec["id"], "", y)] = (int(v), f"{y}年培训班名单（示例）")
        else:
            lo = spec["target"] * rng.uniform(0.4, 0.6)
            hi = spec["target"] * rng.uniform(0.85, 1.15)
            for i, y in enumerate(years):
                v = int(np.floor(lo + (hi - lo) * i / max(len(years) - 1, 1)))
                values[(spec["id"], "", y)] = (v, f"截至{y}年底认定名单（示例）")
    return statuses, values


def _cell(ws, columns, key: str, row: int):
    return ws.cell(row, [k for k, *_ in columns].index(key) + 1)


def _add_mistakes(path: Path, kind: str) -> None:
    wb = load_workbook(path)
    ws = wb[MEASURE_SHEET]
    if kind == "measures":
        _cell(ws, MEASURE_COLUMNS, "status", FIRST_ROW + 1).value = "完成"
        _cell(ws, MEASURE_COLUMNS, "evidence", FIRST_ROW + 2).value = 20230115
        year = _cell(ws, MEASURE_COLUMNS, "year", FIRST_ROW + 3)
        year.value = f"{year.value}年"
    else:
        r = ws.max_row + 1
        _cell(ws, MEASURE_COLUMNS, "measure_id", r).value = "A1-7-1"
        _cell(ws, MEASURE_COLUMNS, "year", r).value = 2023
        _cell(ws, MEASURE_COLUMNS, "status", r).value = "已完成"
        _cell(ws, MEASURE_COLUMNS, "note", r).value = "旧版模板中的措施（示例错误）"
        wi = wb[INDICATOR_SHEET]
        # a mid-period value, so the final-year verdict does not hinge on the mistake
        rows = range(FIRST_ROW, wi.max_row + 1)
        years = sorted({_cell(wi, INDICATOR_COLUMNS, "year", r).value for r in rows})
        mid = years[len(years) // 2]
        cells = [c for r in rows if isinstance((c := _cell(wi, INDICATOR_COLUMNS, "value", r)).value, int)
                 and c.value > 0]
        # a mid-period cell when there is one (a city with few divisions may have none that year)
        value = next((c for c in cells if _cell(wi, INDICATOR_COLUMNS, "year", c.row).value == mid),
                     cells[0] if cells else None)
        if value is not None:
            value.value = f"约{value.value}"
    wb.save(path)
    freeze_xlsx(path)


def build_demo_returns(plan: Plan, raw_dir: Path | None = None, seed: int = DEFAULT_SEED,
                       years=range(2021, 2026)) -> list[Path]:
    """Write one synthetic filled return per lead unit to <raw_dir>/progress/
    <city>-<unit-slug>-synthetic.xlsx (raw_dir defaults to the plan's)."""
    raw_dir = Path(raw_dir) if raw_dir is not None else plan.raw_dir
    units = load_units(plan)
    tasks = load_tasks(plan, units)
    statuses, values = demo_truth(plan, tasks, seed, years)
    leads = lead_units(tasks)
    fewest = min(leads, key=lambda u: len(measures_for_unit(tasks, u)))
    div_owner = next((s["owner"] for s in indicator_specs(plan, tasks)
                      if s["input"] == "count_by_division" and s.get("owner")), None)
    paths = []
    for unit in leads:
        path = raw_dir / "progress" / return_filename(plan, units, unit, "synthetic")
        write_return(plan, unit, path, tasks=tasks, years=years, synthetic=True,
                     statuses=statuses, values=values)
        if unit == fewest:
            _add_mistakes(path, "measures")
        elif unit == div_owner:
            _add_mistakes(path, "indicators")
        paths.append(path)
    return paths

