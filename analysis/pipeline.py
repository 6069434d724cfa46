"""The notebook pipeline: which notebook runs for which year, in what order, and running them.

For a report year Y the tasks are 01 and 02 for every survey year up to Y that
has a raw file, then 03, 04 and 05 for Y. A task is skipped when its content
key (notebook, parameters, the analysis package, the raw inputs) matches the
stamp left by its last successful run, so a second run right after the first
only re-renders what changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .catalog import STAGES, Stage
from .config import NOTEBOOKS, PROCESSED, REPORTS, ROOT, Plan, processed_dir
from .executors import Executor, SerialExecutor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    stage: str
    year: int

    @property
    def id(self) -> str:
        return f"{self.stage}[{self.year}]"


class PipelineError(RuntimeError):
    """A run could not be planned or a notebook failed; the message names the notebook and cell."""


class NotebookFailed(PipelineError):
    def __init__(self, notebook: str, year: int, cell: int | None, exec_count: int | None,
                 error: str, source_line: str, executed: str):
        self.notebook, self.year, self.cell = notebook, year, cell
        super().__init__(notebook, year, cell, exec_count, error, source_line, executed)
        self.message = (f"notebook {notebook}.ipynb (year {year}) failed in cell {cell} (counting from 1)"
                        f" (execution count {exec_count}): {error}\n  cell starts: {source_line}\n"
                        f"  executed copy with the traceback: {executed}")

    def __str__(self) -> str:
        return self.message


def survey_years_up_to(plan: Plan, year: int) -> list[int]:
    """Survey years <= year whose raw file exists (any supported extension)."""
    years = []
    for y in plan.survey_years:
        if y > year:
            continue
        base = plan.raw_survey_path(y)
        if any(base.with_suffix(ext).exists() for ext in (".csv", ".xlsx", ".sav", ".dta")):
            years.append(y)
        else:
            log.warning("no raw survey file for %s (%s): that year is left out", y, base)
    if not years:
        raise PipelineError(f"no raw survey file for any year up to {year} under {plan.raw_dir / 'survey'}; "
                            "run `python -m analysis demo` to build the synthetic demo data")
    return years


def plan_tasks(plan: Plan, year: int, stages: Iterable[Stage] = STAGES,
               only: set[str] | None = None) -> tuple[list[Task], dict[Task, set[Task]]]:
    """Tasks in a valid order and each task's prerequisites."""
    start, end = plan.period
    if not (min(plan.survey_years) <= year <= max(end, max(plan.survey_years))):
        raise PipelineError(f"year {year} is outside the plan's survey years and period ({start}-{end})")
    years = survey_years_up_to(plan, year)
    by_stage = {s.name: s for s in stages}
    tasks: list[Task] = []
    deps: dict[Task, set[Task]] = {}
    for stage in stages:
        for y in (years if stage.scope == "survey_year" else [year]):
            task = Task(stage.name, y)
            need: set[Task] = set()
            for dep_name in stage.needs:
                dep = by_stage[dep_name]
                dep_years = [y] if stage.scope == dep.scope else years
                need |= {Task(dep_name, dy) for dy in dep_years}
            tasks.append(task)
            deps[task] = need
    if only:
        unknown = only - set(by_stage)
        if unknown:
            raise PipelineError(f"unknown stage(s) {sorted(unknown)}; stages: {', '.join(by_stage)}")
        tasks = [t for t in tasks if t.stage in only]
        deps = {t: {d for d in deps[t] if d.stage in only} for t in tasks}
    return tasks, deps


def _hash_tree(h: Any, root: Path, patterns: tuple[str, ...]) -> None:
    for pattern in patterns:
        for path in sorted(root.glob(pattern)):
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(root)).encode())
                h.update(path.read_bytes())


CODE_DIR = ROOT / "analysis"


def task_key(plan: Plan, task: Task, params: dict[str, Any]) -> str:
    """Content key of a task: notebook, parameters, analysis package, raw inputs."""
    h = hashlib.sha256()
    h.update((NOTEBOOKS / f"{task.stage}.ipynb").read_bytes())
    h.update(json.dumps(params, sort_keys=True).encode())
    _hash_tree(h, CODE_DIR, ("**/*.py", "**/*.yml"))
    _hash_tree(h, plan.raw_dir, ("**/*",))
    return h.hexdigest()


def _stamp_path(plan: Plan, task: Task, processed_root: Path) -> Path:
    return processed_dir(plan.city, task.year, processed_root) / f".done-{task.stage}.json"


def execute_notebook(notebook: str, year: int, params: dict[str, Any], executed: str,
                     retries: int = 2) -> float:
    """Run one notebook with papermill (in a worker process); returns seconds taken."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    t0 = time.perf_counter()
    Path(executed).parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries + 1):
        try:
            pm.execute_notebook(str(NOTEBOOKS / f"{notebook}.ipynb"), executed, parameters=params,
                                kernel_name="python3", cwd=str(ROOT), progress_bar=False,
                                log_output=False, request_save_on_cell_execute=False)
            return time.perf_counter() - t0
        except PapermillExecutionError as exc:
            first = next((ln for ln in (exc.source or "").splitlines() if ln.strip()), "")
            raise NotebookFailed(notebook, year, _source_cell_number(executed, exc.cell_index),
                                 exec_count=exc.exec_count,
                                 error=f"{exc.ename}: {exc.evalue}", source_line=first,
                                 executed=executed) from None
        except RuntimeError as exc:  # kernel failed to start (port clash, slow start): retry
            if attempt == retries or "kernel" not in str(exc).lower():
                raise
            log.warning("kernel start failed for %s (%s); retrying", notebook, exc)
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def _source_cell_number(executed: str, index: int) -> int:
    """1-based number of the failing cell in the source notebook (papermill injects a cell)."""
    import nbformat

    try:
        cells = nbformat.read(executed, as_version=4).cells[:index]
    except (OSError, ValueError):
        return index + 1
    injected = sum("injected-parameters" in c.metadata.get("tags", []) for c in cells)
    return index - injected + 1


def run_pipeline(plan: Plan, year: int, executor: Executor | None = None,
                 processed_root: Path | None = None, force: bool = False,
                 only: set[str] | None = None, echo: Callable[[str], None] | None = None,
                 executed_root: Path | None = None) -> list[Task]:
    """Run the notebooks for a report year in dependency order; returns the tasks that ran."""
    executor = executor or SerialExecutor()
    processed_root = Path(processed_root or PROCESSED)
    echo = echo or (lambda msg: print(msg, file=sys.stderr, flush=True))
    tasks, deps = plan_tasks(plan, year, only=only)
    executed_root = Path(executed_root or REPORTS / "executed") / plan.city / str(year)
    params_of = {t: {"city": plan.city, "year": t.year, "raw_dir": str(plan.raw_dir),
                     "processed_root": str(processed_root)} for t in tasks}
    keys = {t: task_key(plan, t, params_of[t]) for t in tasks}
    done: set[Task] = set()
    ran: list[Task] = []
    for t in tasks:
        stamp = _stamp_path(plan, t, processed_root)
        manifest = stamp.parent / f"manifest-{t.stage}.json"
        if (not force and stamp.exists() and manifest.exists()
                and json.loads(stamp.read_text())["key"] == keys[t]):
            done.add(t)
    total = len(tasks)
    if done:
        echo(f"{len(done)} of {total} notebook runs are up to date (same code, parameters and inputs)")
    pending = [t for t in tasks if t not in done]
    # a task whose prerequisite reruns must rerun too
    changed = True
    while changed:
        changed = False
        for t in list(done):
            if deps[t] - done:
                done.discard(t)
                pending.append(t)
                changed = True
    pending.sort(key=tasks.index)
    running: dict[Future, Task] = {}
    counter = len(done)
    try:
        while pending or running:
            for t in [t for t in pending if deps[t] <= done]:
                executed = str(executed_root / f"{t.stage}-{t.year}.ipynb")
                echo(f"[{counter + len(running) + 1:>2}/{total}] start  {t.stage} {t.year}")
                running[executor.submit(execute_notebook, t.stage, t.year, params_of[t], executed)] = t
                pending.remove(t)
            if not running:
                blocked = ", ".join(t.id for t in pending)
                raise PipelineError(f"cannot schedule {blocked}: prerequisites missing")
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                t = running.pop(fut)
                seconds = fut.result()  # raises NotebookFailed, stopping the run
                counter += 1
                done.add(t)
                ran.append(t)
                stamp = _stamp_path(plan, t, processed_root)
                stamp.parent.mkdir(parents=True, exist_ok=True)
                stamp.write_text(json.dumps({"key": keys[t], "seconds": round(seconds, 2)}))
                echo(f"[{counter:>2}/{total}] done   {t.stage} {t.year} ({seconds:.1f} s)")
    except BaseException:
        for fut in running:
            fut.cancel()
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown()
    return ran
