"""The notebook pipeline: which notebook runs for which year, in what order, and running them.

For a report year Y the tasks are 01 and 02 for every survey year up to Y that
has a raw file, then 03, 04 and 05 for Y, then the report's render (one task per
language). A task is skipped when its content key matches the stamp left by its
last successful run and its outputs exist. The key covers what the task reads:

- its notebook (or, for the report, the .qmd files, the template and _quarto.yml);
- the analysis/ modules it imports, directly or through other modules (static
  import analysis, analysis/imports.py), and the data files they name;
- its parameters and the installed versions of the locked packages;
- the parts of the plan file it reads (task_inputs.PLAN_KEYS_READ_ONLY_BY);
- the raw files it reads (task_inputs.raw_inputs, plus those its last manifest listed);
- the outputs of the tasks upstream of it, by their hashes: a task rerun whose
  outputs come out byte-identical does not rerun what is downstream of it.

Each notebook writes into a staging copy of its output folder; its files move
into place only when the whole notebook succeeded (analysis/staging.py).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import staging
from .config import NOTEBOOKS, PROCESSED, REPORTS, ROOT, Plan, processed_dir
from .errors import UserError
from .executors import Executor, SerialExecutor, terminate
from .imports import ImportGraph
from .task_inputs import (
    REPORT_STAGE,
    digest,
    environment_digest,
    explain,
    file_digest,
    is_report_stage,
    missing_outputs,
    outputs_digest,
    plan_parts,
    raw_inputs,
    read_stamp,
    rel_path,
    report_sources,
    write_stamp,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    name: str          # notebook file stem in notebooks/
    scope: str         # "survey_year": once per survey year; "report_year": once for the report year
    needs: tuple[str, ...] = ()


STAGES: tuple[Stage, ...] = (
    Stage("01_clean", "survey_year"),
    Stage("02_weight_estimate", "survey_year", ("01_clean",)),
    Stage("03_trajectory", "report_year", ("02_weight_estimate",)),
    Stage("04_county_gaps", "report_year", ("02_weight_estimate",)),
    Stage("05_plan_progress", "report_year", ("02_weight_estimate",)),  # reads the literacy estimate
)


@dataclass(frozen=True)
class Task:
    stage: str
    year: int

    @property
    def id(self) -> str:
        return f"{self.stage}[{self.year}]"


class PipelineError(UserError, RuntimeError):
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


# --- what each task reads: analysis/task_inputs.py ------------------------------------------------

CODE_DIR = ROOT / "analysis"


def is_report(task: Task) -> bool:
    return is_report_stage(task.stage)


def report_task(year: int, lang: str) -> Task:
    return Task(f"{REPORT_STAGE}-{lang}", year)


def _stamp_path(plan: Plan, task: Task, processed_root: Path) -> Path:
    return processed_dir(plan.city, task.year, processed_root) / f".done-{task.stage}.json"


# --- the run's plan: which task runs and why ---------------------------------------------------

@dataclass
class TaskState:
    task: Task
    components: dict[str, Any] = field(default_factory=dict)
    key: str = ""
    reasons: list[str] = field(default_factory=list)     # why it runs (empty: up to date)
    after: list[str] = field(default_factory=list)       # prerequisites that rerun (or may) first

    @property
    def up_to_date(self) -> bool:
        return not self.reasons and not self.after


class RunPlan:
    """The tasks of a run with their content keys, and the reasons each one must run."""

    def __init__(self, plan: Plan, year: int, processed_root: Path | None = None,
                 only: set[str] | None = None, langs: Iterable[str] = (), engine: str = "auto",
                 force: bool = False, report_out_dir: Path | None = None):
        self.plan, self.year = plan, int(year)
        self.processed_root = Path(processed_root or PROCESSED).absolute()  # kernels run in the project folder
        self.force, self.engine = force, engine
        self.report_out_dir = Path(report_out_dir or Path(REPORTS) / "output")
        # keys are over the whole graph, whatever --only leaves out of this run
        every, every_deps = plan_tasks(plan, year)
        self.tasks, self.deps = plan_tasks(plan, year, only=only) if only else (list(every), dict(every_deps))
        notebook_tasks = list(self.tasks)
        for lang in langs:
            t = report_task(self.year, lang)
            self.tasks.append(t)
            self.deps[t] = set(notebook_tasks)
            every_deps[t] = set(every)
        self.upstream = {t: self._transitive(t, every_deps) for t in self.tasks}
        self.scope = {s.name: s.scope for s in STAGES}
        self.graph = ImportGraph(Path(CODE_DIR), Path(self.processed_root) / ".cache" / "imports.json")
        self._environment = environment_digest()
        self.stamps = {t: read_stamp(_stamp_path(plan, t, self.processed_root)) for t in [*every, *self.tasks]}
        self.states: dict[Task, TaskState] = {}
        for t in self.tasks:
            self.states[t] = self.assess(t, planning=True)
        self.graph.save()

    @staticmethod
    def _transitive(task: Task, deps: dict[Task, set[Task]]) -> set[Task]:
        seen: set[Task] = set()
        todo = list(deps[task])
        while todo:
            d = todo.pop()
            if d not in seen:
                seen.add(d)
                todo += deps[d]
        return seen

    def params(self, task: Task) -> dict[str, Any]:
        params = {"city": self.plan.city, "year": task.year, "raw_dir": str(self.plan.raw_dir),
                  "processed_root": str(self.processed_root)}
        if is_report(task):
            params["lang"] = task.stage.split("-", 1)[1]
            params["engine"] = resolved_engine(self.engine)
        return params

    def components(self, task: Task) -> dict[str, Any]:
        """Everything the task's key covers, each part hashed on its own so changes can be named."""
        report = is_report(task)
        if report:
            sources = report_sources(REPORTS)
            source = {rel_path(p, ROOT): file_digest(p) for p in sources}
            modules = self.graph.closure([f"{self.graph.package}.render"])
            for p in sources:
                if p.suffix == ".qmd":
                    modules |= self.graph.closure_of_source(p)
        else:
            nb = Path(NOTEBOOKS) / f"{task.stage}.ipynb"
            source = file_digest(nb)
            modules = self.graph.closure_of_source(nb)
        raw = set(raw_inputs(self.plan, task.stage, task.year))
        stamp = self.stamps.get(task)
        for name in (stamp or {}).get("read", []):  # raw files its manifest said it read last time
            path = Path(name) if Path(name).is_absolute() else ROOT / name
            if path.is_file() and path.resolve() != self.plan.path.resolve():
                raw.add(path)
        survey_year = self.scope.get(task.stage) == "survey_year"
        return {
            "source": source,
            "code": self.graph.used_files(modules),
            "plan": plan_parts(self.plan, task.stage, task.year, survey_year),
            "raw": {rel_path(p, ROOT): file_digest(p) for p in sorted(raw) if p.is_file()},
            "parameters": digest(self.params(task)),
            "environment": self._environment,
            "upstream": {u.id: outputs_digest(self.stamps.get(u), with_manifests=report)
                         for u in sorted(self.upstream[task], key=lambda u: (u.stage, u.year))},
        }

    def assess(self, task: Task, planning: bool = False) -> TaskState:
        """The task's key and why it must run. While planning, upstream tasks that will run are named
        in `after` (the task then runs unless their outputs come out the same)."""
        comps = self.components(task)
        state = TaskState(task, comps, digest(comps))
        stamp = self.stamps.get(task)
        if planning:
            rerun = {u.id for u in self.upstream[task] if u in self.states and not self.states[u].up_to_date}
            state.after = [d.id for d in sorted(self.deps[task], key=self.tasks.index) if d.id in rerun]
            compare = dict(comps, upstream={k: v for k, v in comps["upstream"].items() if k not in rerun})
            old = None if stamp is None else dict(stamp["components"], upstream={
                k: v for k, v in stamp["components"].get("upstream", {}).items() if k not in rerun})
        else:
            compare, old = comps, (stamp or {}).get("components")
        if self.force:
            state.reasons.append("--force")
        if stamp is None:
            state.reasons.append("no earlier run")
        elif stamp.get("key") != state.key or planning:
            state.reasons += [r for r in explain(old, compare, self._what(task)) if r not in state.reasons]
        if stamp is not None:
            missing = missing_outputs(stamp, self.processed_root)
            if missing:
                state.reasons.append(f"output {missing[0]} missing or changed" + (f" (and {len(missing) - 1} more)"
                                                                       if len(missing) > 1 else ""))
        return state

    def _what(self, task: Task) -> str:
        return "report template or sections" if is_report(task) else f"notebook {task.stage}.ipynb"

    @property
    def pending(self) -> list[Task]:
        return [t for t in self.tasks if not self.states[t].up_to_date]

    def describe(self) -> list[str]:
        """The dry-run listing: each task that would run and why."""
        lines = []
        width = max((len(f"{t.stage} {t.year}") for t in self.tasks), default=0)
        for t in self.pending:
            s = self.states[t]
            why = list(s.reasons)
            if s.after:
                shown = ", ".join(s.after[:3]) + (f" and {len(s.after) - 3} more" if len(s.after) > 3 else "")
                why.append(f"after {shown} (skipped if their outputs come out unchanged)")
            lines.append(f"  {t.stage + ' ' + str(t.year):<{width}}  {'; '.join(why)}")
        head = (f"would run {len(self.pending)} of {len(self.tasks)} tasks:" if self.pending
                else f"nothing to run: all {len(self.tasks)} tasks are up to date")
        return [head, *lines]

    def record(self, task: Task, state: TaskState, outputs: dict[str, Path], seconds: float,
               read: list[str]) -> None:
        """Write the stamp of a task that succeeded."""
        stamp = {
            "task": task.id, "key": state.key, "components": state.components,
            "outputs": {self._output_name(p): [file_digest(p), p.stat().st_size]
                        for p in sorted(outputs.values()) if p.is_file()},
            "read": sorted(read), "seconds": round(seconds, 2),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_stamp(_stamp_path(self.plan, task, self.processed_root), stamp)
        self.stamps[task] = stamp

    def _output_name(self, path: Path) -> str:
        try:
            return str(Path(path).relative_to(self.processed_root))
        except ValueError:
            return str(Path(path).resolve())


def resolved_engine(engine: str) -> str:
    import shutil

    if engine == "auto":
        return "quarto" if shutil.which("quarto") else "offline"
    return engine


# --- running one task (in a worker process) ----------------------------------------------------

@contextmanager
def _quiet(log_file: str | None, verbose: bool) -> Iterator[None]:
    """Send this process's stderr and stdout (and so the kernels') to log_file unless verbose:
    kernel warnings and papermill's INFO lines are kept out of the user's terminal."""
    if verbose or not log_file:
        if verbose:
            logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        yield
        return
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_file, "a", encoding="utf-8") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def execute_notebook(source: str, year: int, params: dict[str, Any], executed: str, retries: int = 2,
                     log_file: str | None = None, verbose: bool = False) -> float:
    """Run one notebook (path `source`) with papermill; returns seconds taken."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    notebook = Path(source).stem
    t0 = time.perf_counter()
    Path(executed).parent.mkdir(parents=True, exist_ok=True)
    with _quiet(log_file, verbose):
        for attempt in range(retries + 1):
            try:
                pm.execute_notebook(str(source), executed, parameters=params,
                                    kernel_name="python3", cwd=str(ROOT), progress_bar=False,
                                    log_output=verbose, request_save_on_cell_execute=False)
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


def render_report(plan: Plan, year: int, lang: str, processed_root: str, engine: str,
                  out_dir: str | None, log_file: str | None = None, verbose: bool = False) -> dict[str, Path]:
    """The report task: render one language (in a worker process); returns the files by format."""
    from .render import render

    with _quiet(log_file, verbose):
        # check=False: the runner has just made every result it reads current, task by task
        return render(plan, year, lang=lang, processed_root=Path(processed_root), engine=engine,
                      out_dir=Path(out_dir) if out_dir else None, check=False)


def _source_cell_number(executed: str, index: int) -> int:
    """1-based number of the failing cell in the source notebook (papermill injects a cell)."""
    import nbformat

    try:
        cells = nbformat.read(executed, as_version=4).cells[:index]
    except (OSError, ValueError):
        return index + 1
    injected = sum("injected-parameters" in c.metadata.get("tags", []) for c in cells)
    return index - injected + 1


def _raw_read(manifest: Path, raw_dir: Path) -> list[str]:
    """Raw files a stage's manifest says it read (to add them to the task's key next time)."""
    try:
        inputs = json.loads(manifest.read_text(encoding="utf-8")).get("inputs", {})
    except (OSError, ValueError):
        return []
    raw = Path(raw_dir).resolve()
    out = []
    for name in inputs:
        path = Path(name) if Path(name).is_absolute() else ROOT / name
        try:
            path.resolve().relative_to(raw)
        except ValueError:
            continue
        out.append(name)
    return out


# --- the run ---------------------------------------------------------------------------------

class Progress:
    """What the runner reports: plain lines through `echo`; a progress bar subclass replaces them."""

    def __init__(self, echo: Callable[[str], None], announce_all_current: bool = True):
        self.echo = echo
        self.announce_all_current = announce_all_current

    def begin(self, total: int, up_to_date: int) -> None:
        if up_to_date and (up_to_date < total or self.announce_all_current):
            self.echo(f"{up_to_date} of {total} notebook runs are up to date (same code, parameters and inputs)")

    def start(self, position: int, total: int, task: Task) -> None:
        self.echo(f"[{position:>2}/{total}] start  {task.stage} {task.year}")

    def finish(self, position: int, total: int, task: Task, seconds: float) -> None:
        self.echo(f"[{position:>2}/{total}] done   {task.stage} {task.year} ({seconds:.1f} s)")

    def skip(self, position: int, total: int, task: Task) -> None:
        self.echo(f"[{position:>2}/{total}] skip   {task.stage} {task.year} (its inputs came out unchanged)")

    def close(self) -> None:
        pass


def run_pipeline(plan: Plan, year: int, executor: Executor | None = None,
                 processed_root: Path | None = None, force: bool = False,
                 only: set[str] | None = None, echo: Callable[[str], None] | None = None,
                 executed_root: Path | None = None, langs: Iterable[str] = (), engine: str = "auto",
                 report_out_dir: Path | None = None, progress: Progress | None = None,
                 verbose: bool = False, run_plan: RunPlan | None = None) -> list[Task]:
    """Run the tasks for a report year in dependency order; returns the tasks that ran.

    With langs, the report's render in each language is a task after every notebook.
    """
    processed_root = Path(processed_root or PROCESSED).absolute()
    echo = echo or (lambda msg: print(msg, file=sys.stderr, flush=True))
    progress = progress or Progress(echo)
    rp = run_plan or RunPlan(plan, year, processed_root, only=only, langs=langs, engine=engine,
                             force=force, report_out_dir=report_out_dir)
    executed_root = Path(executed_root or Path(REPORTS) / "executed") / plan.city / str(year)
    staging.clear_stale(processed_root, plan.city)
    total = len(rp.tasks)
    done = {t for t in rp.tasks if rp.states[t].up_to_date}
    progress.begin(total, len(done))
    pending = [t for t in rp.tasks if t not in done]
    if not pending:
        progress.close()
        return []
    executor = executor or SerialExecutor()
    slots = max(1, int(getattr(executor, "_max_workers", 1)))  # start a task only when a worker is free
    ran: list[Task] = []
    running: dict[Future, _Running] = {}
    counter = len(done)
    try:
        while pending or running:
            skipped = True
            while skipped:  # a skipped task may make others ready at once
                skipped = False
                for t in [t for t in pending if rp.deps[t] <= done]:
                    if len(running) >= slots:
                        break
                    pending.remove(t)
                    state = rp.assess(t) if rp.states[t].after else rp.states[t]
                    if not state.reasons:  # its upstream reran and came out the same
                        done.add(t)
                        counter += 1
                        progress.skip(counter, total, t)
                        skipped = True
                        continue
                    progress.start(counter + len(running) + 1, total, t)
                    job = _submit(executor, rp, t, state, executed_root, verbose)
                    running[job.future] = job
            if not running:
                if pending:
                    raise PipelineError(f"cannot schedule {', '.join(t.id for t in pending)}: prerequisites missing")
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                job = running.pop(fut)
                outputs, read = job.finish(executed_root)  # raises NotebookFailed, stopping the run
                seconds = time.perf_counter() - job.started
                rp.record(job.task, job.state, outputs, seconds, read)
                counter += 1
                done.add(job.task)
                ran.append(job.task)
                progress.finish(counter, total, job.task, seconds)
    except BaseException:
        for fut in running:
            fut.cancel()
        if running:  # a failure or Ctrl-C: the notebooks still running would be thrown away anyway
            terminate(executor)
        executor.shutdown(wait=False, cancel_futures=True)
        for job in running.values():
            job.discard()
        staging.clear_stale(processed_root, plan.city)
        progress.close()
        raise
    executor.shutdown()
    staging.clear_stale(processed_root, plan.city)
    progress.close()
    return ran


@dataclass
class _Running:
    """A submitted task: its future, and for a notebook the staging folder its outputs wait in."""

    task: Task
    state: TaskState
    future: Future
    started: float
    stage_dir: staging.Staging | None = None
    executed: Path | None = None
    plan: RunPlan | None = None

    def discard(self) -> None:
        if self.stage_dir is not None:
            staging.discard(self.stage_dir)

    def finish(self, executed_root: Path) -> tuple[dict[str, Path], list[str]]:
        """Move the outputs into place; returns them and the raw files the task says it read."""
        rp = self.plan
        assert rp is not None
        if self.stage_dir is None:  # the report: render() wrote its files in place
            return {kind: Path(p) for kind, p in self.future.result().items()}, []
        target = executed_root / self.executed.name
        try:
            self.future.result()
        except NotebookFailed as exc:
            failed = target.with_name(f"{target.stem}-failed.ipynb")
            if self.executed.is_file():
                staging.unstage_text(self.executed, self.stage_dir)
                failed.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.executed, failed)
            self.discard()
            exec_count, error, first_line = exc.args[3:6]
            error = error.replace(str(self.stage_dir.root), str(self.stage_dir.real_root))  # paths as the user knows them
            raise NotebookFailed(exc.notebook, exc.year, exc.cell, exec_count, error, first_line, str(failed)) from None
        except BaseException:
            self.discard()
            raise
        st = self.stage_dir
        if self.executed.is_file():  # the executed copy is a log, not an output: it goes to reports/executed
            staging.unstage_text(self.executed, st)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.executed, target)
        names = staging.commit(st)
        target.with_name(f"{target.stem}-failed.ipynb").unlink(missing_ok=True)
        outputs = {name: st.real_own / name for name in names}
        manifest = st.real_own / f"manifest-{self.task.stage}.json"
        read = _raw_read(manifest, rp.plan.raw_dir) if manifest.is_file() else []
        return outputs, read


def _submit(executor: Executor, rp: RunPlan, task: Task, state: TaskState, executed_root: Path,
            verbose: bool) -> _Running:
    log_file = executed_root / f"{task.stage}-{task.year}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.unlink(missing_ok=True)
    started = time.perf_counter()
    if is_report(task):
        params = rp.params(task)
        fut = executor.submit(render_report, rp.plan, task.year, params["lang"], str(rp.processed_root),
                              params["engine"], str(rp.report_out_dir), str(log_file), verbose)
        return _Running(task, state, fut, started, plan=rp)
    st = staging.prepare(rp.processed_root, rp.plan.city, Path(rp.plan.city) / str(task.year),
                         f"{task.stage}-{task.year}")
    params = dict(rp.params(task), processed_root=str(st.root))
    executed = st.root / f"{task.stage}-{task.year}.ipynb"
    fut = executor.submit(execute_notebook, str(Path(NOTEBOOKS) / f"{task.stage}.ipynb"), task.year, params,
                          str(executed), 2, str(log_file), verbose)
    return _Running(task, state, fut, started, st, executed, rp)
