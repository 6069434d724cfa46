"""Many cities in one run: every city's tasks and report, then the provincial stage and report.

The run is one task graph. Each city's pending tasks come from its RunPlan (the
single-city runner's planning: content keys, stamps, reasons), so a batch skips
what a `run` would skip. A node runs on a worker as `run_city_task`: it
re-assesses its task there (its upstream may just have rerun with identical
outputs), runs the notebook through the runner's staging, and writes the stamp.

Failures stay in their city: a node whose upstream failed is not run
(``blocked``), the other cities go on, and the provincial stage compares the
cities that finished (the ones left out are named in its results). A notebook
that fails is a result, not an exception, so an engine's retries are spent only
on errors the task did not raise itself (a lost worker, a full disk).

Engines: ``run_graph_serial`` (in this process, topological order) and
``run_graph_pool`` (any concurrent.futures executor, the local process pool);
the Dask engine is ``analysis.dask_executor.run_graph_dask``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import NOTEBOOKS, PROCESSED, RAW, REPORTS, Plan, load_plan, processed_dir
from .errors import UserError

PROVINCE_STAGE = "06_province"  # catalog.PROVINCE_STAGE.name, spelled out: the CLI imports this module at start


class BatchError(UserError):
    """The batch could not be planned (no plans, a city planned twice, a bad province)."""


@dataclass(frozen=True)
class Node:
    """One task of the batch graph: what to call, with which arguments, after which nodes."""

    id: str
    city: str
    fn: Callable[..., dict[str, Any]]
    args: tuple[Any, ...]
    deps: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class BatchTask:
    """What every task of the batch needs (plain values: it travels to other machines)."""

    raw_dir: str
    processed_root: str
    executed_root: str
    langs: tuple[str, ...]
    engine: str
    force: bool
    report_out_dir: str
    verbose: bool = False


@dataclass(frozen=True, kw_only=True)
class CityTask(BatchTask):
    """One task of one city."""

    city: str
    report_year: int
    stage: str
    year: int
    only: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.city}/{self.stage}[{self.year}]"


def _result(node_id: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "status": status, **extra}


def _blocked_by(upstream: Iterable[dict[str, Any]]) -> str | None:
    for u in upstream:
        if u["status"] == "failed":
            return u["id"]
        if u["status"] == "blocked":
            return u["by"]
    return None


def run_city_task(spec: CityTask, *upstream: dict[str, Any]) -> dict[str, Any]:
    """Run one task of one city (on a worker): skipped when up to date, blocked after a failure."""
    from .executors import SerialExecutor
    from .pipeline import NotebookFailed, RunPlan, Task, _submit
    from .render import RenderError

    by = _blocked_by(upstream)
    if by is not None:
        return _result(spec.id, "blocked", by=by)
    t0 = time.perf_counter()
    plan = load_plan(spec.city, Path(spec.raw_dir))
    rp = RunPlan(plan, spec.report_year, Path(spec.processed_root), only=set(spec.only) or None, langs=spec.langs,
                 engine=spec.engine, force=spec.force, report_out_dir=Path(spec.report_out_dir))
    task = Task(spec.stage, spec.year)
    state = rp.assess(task)
    if not state.reasons:
        return _result(spec.id, "skipped", seconds=time.perf_counter() - t0)
    executed_root = Path(spec.executed_root) / plan.city / str(spec.report_year)
    job = _submit(SerialExecutor(), rp, task, state, executed_root, spec.verbose)
    try:
        outputs, read = job.finish(executed_root)
    except (NotebookFailed, RenderError, UserError) as exc:  # the task's own failure: no retry would change it
        return _result(spec.id, "failed", error=str(exc), seconds=time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    rp.record(task, state, outputs, seconds, read)
    return _result(spec.id, "ran", seconds=seconds)


# --- the provincial stage and report as graph nodes -------------------------------------------

@dataclass(frozen=True, kw_only=True)
class ProvinceTask(BatchTask):
    """The provincial stage or report (raw_dir: the province's, with benchmarks/published.csv)."""

    province_code: str
    province_zh: str
    benchmark_scope: str
    cities: tuple[tuple[str, str], ...]        # (city id, raw dir)
    year: int

    @property
    def province(self) -> str:
        from .province_stage import province_id

        return province_id(self.province_code)


def province_components(spec: ProvinceTask, plans: list[Plan], what: str) -> dict[str, Any]:
    """The provincial stage's ('stage') or report's ('report-<lang>') inputs, part by part, as a city
    task's (task_inputs): its key is their digest, and `task_inputs.explain` says what changed."""
    from . import catalog
    from .imports import ImportGraph
    from .pipeline import CODE_DIR
    from .province_stage import CITIES_FILE
    from .task_inputs import environment_digest, file_digest, outputs_digest, read_stamp, rel_path

    root = Path(spec.processed_root)
    graph = ImportGraph(Path(CODE_DIR), None)
    raw: dict[str, str] = {}
    upstream: dict[str, str | None] = {}
    if what == "stage":
        nb = Path(NOTEBOOKS) / f"{PROVINCE_STAGE}.ipynb"
        source = {"notebook": file_digest(nb)}
        code = graph.used_files(graph.closure_of_source(nb))
        for plan in plans:
            for stamp_path in sorted(processed_dir(plan.city, None, root).glob("*/.done-0[235]_*.json")):
                upstream[f"{plan.city}/{stamp_path.parent.name}/{stamp_path.name}"] = outputs_digest(
                    read_stamp(stamp_path), with_manifests=False)
            raw[f"{plan.city}/margins"] = file_digest(plan.census_margins_path)
        raw[CITIES_FILE] = file_digest(catalog.province_output_path(spec.province, CITIES_FILE, None, root))
        benchmarks = Path(spec.raw_dir) / "benchmarks" / "published.csv"
        raw[rel_path(benchmarks, spec.raw_dir)] = file_digest(benchmarks)
    else:
        from .province_report import PROVINCE_QMD, province_report_sources

        source = {str(p): file_digest(p) for p in province_report_sources()}
        code = graph.used_files(graph.closure([f"{graph.package}.province_report"])
                                | graph.closure_of_source(PROVINCE_QMD))
        stamp = read_stamp(processed_dir(spec.province, spec.year, root) / f".done-{PROVINCE_STAGE}.json")
        upstream = {PROVINCE_STAGE: outputs_digest(stamp, with_manifests=True)}
    return {"what": what, "source": source, "code": code, "plan": {}, "raw": raw, "upstream": upstream,
            "environment": environment_digest(),
            "parameters": [spec.province, spec.year, spec.raw_dir, spec.processed_root]}


def _outputs_of(folder: Path, root: Path) -> dict[str, list]:
    from .task_inputs import file_digest

    return {str(p.relative_to(root)): [file_digest(p), p.stat().st_size]
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".done-")}


def _current(stamp: dict[str, Any] | None, key: str, root: Path, force: bool) -> bool:
    from .task_inputs import missing_outputs

    if force or stamp is None or stamp.get("key") != key:
        return False
    return not missing_outputs(stamp, root)


def run_province_task(spec: ProvinceTask, *upstream: dict[str, Any]) -> dict[str, Any]:
    """The provincial stage (notebook 06) over the cities whose tasks did not fail."""
    from datetime import UTC, datetime

    from .pipeline import NotebookFailed, execute_notebook
    from .province_stage import write_cities
    from .task_inputs import digest, read_stamp, write_stamp

    node_id = f"{spec.province}/{PROVINCE_STAGE}[{spec.year}]"
    t0 = time.perf_counter()
    failed = {u["id"].split("/", 1)[0]: _blocked_by([u]) for u in upstream if _blocked_by([u])}
    plans = [load_plan(c, Path(r)) for c, r in spec.cities if c not in failed]
    if len(plans) < 2:
        return _result(node_id, "blocked", by=next(iter(failed.values()), "fewer than two cities"))
    root = Path(spec.processed_root)
    left_out = sorted(failed)
    write_cities(root, spec.province_code, plans, spec.province_zh, spec.benchmark_scope, left_out)
    components = province_components(spec, plans, "stage")
    key = digest(components)
    out = processed_dir(spec.province, spec.year, root)
    stamp_path = out / f".done-{PROVINCE_STAGE}.json"
    if _current(read_stamp(stamp_path), key, root, spec.force):
        return _result(node_id, "skipped", left_out=left_out, seconds=time.perf_counter() - t0)
    executed = Path(spec.executed_root) / spec.province / str(spec.year) / f"{PROVINCE_STAGE}-{spec.year}.ipynb"
    log_file = executed.with_suffix(".log")
    params = {"city": spec.province, "year": spec.year, "raw_dir": spec.raw_dir, "processed_root": spec.processed_root}
    try:
        execute_notebook(str(Path(NOTEBOOKS) / f"{PROVINCE_STAGE}.ipynb"), spec.year, params, str(executed), 2,
                         str(log_file), spec.verbose)
    except NotebookFailed as exc:
        return _result(node_id, "failed", error=str(exc), left_out=left_out)
    write_stamp(stamp_path, {"key": key, "components": components, "outputs": _outputs_of(out, root),
                             "seconds": time.perf_counter() - t0,
                             "finished": datetime.now(UTC).isoformat(timespec="seconds")})
    return _result(node_id, "ran", left_out=left_out, seconds=time.perf_counter() - t0)


def run_province_report(spec: ProvinceTask, lang: str, *upstream: dict[str, Any]) -> dict[str, Any]:
    from datetime import UTC, datetime

    from .province_report import render_province
    from .render import RenderError
    from .task_inputs import digest, read_stamp, write_stamp

    node_id = f"{spec.province}/report-{lang}[{spec.year}]"
    by = _blocked_by(upstream)
    if by is not None:
        return _result(node_id, "blocked", by=by)
    t0 = time.perf_counter()
    root = Path(spec.processed_root)
    out = processed_dir(spec.province, spec.year, root)
    plans = [load_plan(c, Path(r)) for c, r in spec.cities]
    components = province_components(spec, plans, f"report-{lang}")
    key = digest(components)
    stamp_path = out / f".done-report-{lang}.json"
    stamp = read_stamp(stamp_path)
    if (not spec.force and stamp and stamp.get("key") == key
            and all(Path(p).is_file() for p in stamp.get("files", {}).values())):
        return _result(node_id, "skipped", files=stamp["files"], seconds=time.perf_counter() - t0)
    try:
        files = render_province(spec.province, spec.year, lang=lang, processed_root=root, raw_dir=Path(spec.raw_dir),
                                out_dir=Path(spec.report_out_dir), engine=spec.engine)
    except (RenderError, UserError) as exc:
        return _result(node_id, "failed", error=str(exc))
    files = {k: str(v) for k, v in files.items()}
    write_stamp(stamp_path, {"key": key, "components": components, "files": files,
                             "finished": datetime.now(UTC).isoformat(timespec="seconds")})
    return _result(node_id, "ran", files=files, seconds=time.perf_counter() - t0)


# --- planning the graph -------------------------------------------------------------------------

@dataclass
class BatchPlan:
    nodes: list[Node]
    plans: list[Plan]
    total_tasks: int                      # all tasks of all cities (pending or not)
    up_to_date: int
    province: ProvinceTask | None = None
    messages: list[str] = field(default_factory=list)


def plan_batch(plans: list[Plan], year: int, processed_root: Path | None = None, raw_dir: Path | None = None,
               langs: Iterable[str] = ("zh",), engine: str = "auto", force: bool = False,
               executed_root: Path | None = None, report_out_dir: Path | None = None,
               province_code: str | None = None, verbose: bool = False,
               only: set[str] | None = None) -> BatchPlan:
    """Every city's pending tasks as graph nodes, then (with a province) the provincial stage and report.

    only: stages to run (as `run --only`); the provincial stage needs them all and is left out."""
    from . import staging
    from .pipeline import RunPlan, resolved_engine

    if not plans:
        raise BatchError("no plans to run")
    processed_root = Path(processed_root or PROCESSED).resolve()
    raw_dir = Path(raw_dir or RAW).resolve()
    executed_root = Path(executed_root or Path(REPORTS) / "executed").resolve()
    report_out_dir = Path(report_out_dir or Path(REPORTS) / "output").resolve()
    langs = tuple(langs)
    engine = resolved_engine(engine)
    nodes: list[Node] = []
    total = current = 0
    city_nodes: dict[str, list[str]] = {}
    common = {"processed_root": str(processed_root), "executed_root": str(executed_root), "langs": langs,
              "engine": engine, "force": force, "report_out_dir": str(report_out_dir), "verbose": verbose}
    for plan in plans:
        staging.clear_stale(processed_root, plan.city)
        rp = RunPlan(plan, year, processed_root, only=only, langs=langs, engine=engine, force=force,
                     report_out_dir=report_out_dir)
        total += len(rp.tasks)
        pending = set(rp.pending)
        current += len(rp.tasks) - len(pending)
        ids = []
        for t in rp.tasks:
            if t not in pending:
                continue
            spec = CityTask(city=plan.city, raw_dir=str(Path(plan.raw_dir).resolve()), report_year=int(year),
                            stage=t.stage, year=t.year, only=tuple(sorted(only or ())), **common)
            deps = tuple(f"{plan.city}/{d.id}" for d in sorted(rp.deps[t], key=rp.tasks.index) if d in pending)
            nodes.append(Node(spec.id, plan.city, run_city_task, (spec,), deps))
            ids.append(spec.id)
        city_nodes[plan.city] = ids
    bp = BatchPlan(nodes, plans, total, current)
    if province_code and not only:
        from .synth_province import prefectures, scope_of

        province_zh, _ = prefectures(province_code)
        spec = ProvinceTask(province_code=str(province_code), province_zh=province_zh,
                            benchmark_scope=scope_of(province_code),
                            cities=tuple((p.city, str(Path(p.raw_dir).resolve())) for p in plans), year=int(year),
                            raw_dir=str(raw_dir), **common)
        stage_id = f"{spec.province}/{PROVINCE_STAGE}[{year}]"
        # after what it reads (stages 02, 03, 05 and so 01): a city whose maps (04) or report failed is kept
        read = ("/01_clean[", "/02_weight_estimate[", "/03_trajectory[", "/05_plan_progress[")
        deps = tuple(i for ids in city_nodes.values() for i in ids if any(r in i for r in read))
        nodes.append(Node(stage_id, spec.province, run_province_task, (spec,), deps))
        for lang in langs:
            nodes.append(Node(f"{spec.province}/report-{lang}[{year}]", spec.province, run_province_report,
                              (spec, lang), (stage_id,)))
        bp.province = spec
        bp.total_tasks += 1 + len(langs)
    return bp


def order(nodes: list[Node]) -> list[Node]:
    """Nodes in a dependency order (the order they were planned in is one already)."""
    seen: set[str] = set()
    for n in nodes:
        missing = [d for d in n.deps if d not in seen]
        if missing:
            raise BatchError(f"{n.id} is planned before its prerequisite {missing[0]}")
        seen.add(n.id)
    return nodes


# --- engines -------------------------------------------------------------------------------------

Echo = Callable[[str], None]


def _say(echo: Echo, k: int, total: int, res: dict[str, Any]) -> None:
    status = res["status"]
    extra = (f" ({res['seconds']:.1f} s)" if status in ("ran", "skipped") and "seconds" in res
             else f" (after {res['by']} failed)" if status == "blocked" else "")
    echo(f"[{k:>3}/{total}] {status:<7} {res['id']}{extra}")


def run_graph_serial(nodes: list[Node], echo: Echo) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for k, n in enumerate(order(nodes), 1):
        results[n.id] = n.fn(*n.args, *[results[d] for d in n.deps])
        _say(echo, k, len(nodes), results[n.id])
    return results


def run_graph_pool(nodes: list[Node], executor: Any, echo: Echo) -> dict[str, dict[str, Any]]:
    """Any concurrent.futures executor: a node is submitted when its prerequisites have finished."""
    results: dict[str, dict[str, Any]] = {}
    pending = list(order(nodes))
    running: dict[Future, Node] = {}
    slots = max(1, int(getattr(executor, "_max_workers", 1)))
    try:
        while pending or running:
            for n in [n for n in pending if all(d in results for d in n.deps)]:
                if len(running) >= slots:
                    break
                pending.remove(n)
                running[executor.submit(n.fn, *n.args, *[results[d] for d in n.deps])] = n
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                n = running.pop(fut)
                try:
                    results[n.id] = fut.result()
                except Exception as exc:  # noqa: BLE001 - an error the task did not report itself
                    results[n.id] = _result(n.id, "failed", error=f"{type(exc).__name__}: {exc}")
                _say(echo, len(results), len(nodes), results[n.id])
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    return results


@dataclass
class BatchSummary:
    results: dict[str, dict[str, Any]]
    wall: float
    total_tasks: int
    up_to_date: int

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.results.values())

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.results.values() if r["status"] == "failed"]

    def lines(self) -> list[str]:
        head = (f"{len(self.results)} of {self.total_tasks} tasks submitted ({self.up_to_date} up to date before "
                f"the run): {self.count('ran')} ran, {self.count('skipped')} came out unchanged, "
                f"{self.count('failed')} failed, {self.count('blocked')} not run after a failure; "
                f"wall time {self.wall:.1f} s")
        out = [head]
        for r in self.failures:
            blocked = sorted(x["id"] for x in self.results.values() if x.get("by") == r["id"])
            out.append(f"FAILED {r['id']}: {r['error']}")
            if blocked:
                out.append(f"  not run because of it: {', '.join(blocked)}")
        for r in self.results.values():
            if r.get("left_out"):
                out.append(f"{r['id']}: compared without {', '.join(r['left_out'])} (their tasks failed)")
            for kind, path in (r.get("files") or {}).items():
                if kind == "pdf":
                    out.append(f"report: {path}")
        return out


def run_batch(plans: list[Plan], year: int, executor: str = "serial", workers: int | None = None,
              scheduler: str | None = None, processed_root: Path | None = None, raw_dir: Path | None = None,
              langs: Iterable[str] = ("zh",), engine: str = "auto", force: bool = False,
              province_code: str | None = None, executed_root: Path | None = None,
              report_out_dir: Path | None = None, echo: Echo | None = None, verbose: bool = False,
              wait_lock: float = 0.0, only: set[str] | None = None) -> BatchSummary:
    """Plan and run the batch on an engine (serial, local or dask); returns the summary."""
    from .runlock import run_lock

    echo = echo or (lambda msg: print(msg, file=sys.stderr, flush=True))
    processed_root = Path(processed_root or PROCESSED)
    t0 = time.perf_counter()
    with ExitStack() as locks:
        for plan in plans:  # one run at a time on each city's folder, as `run` does
            locks.enter_context(run_lock(processed_root, plan.city, wait=wait_lock, on_wait=echo))
        if province_code and not only:
            from .province_stage import province_id

            locks.enter_context(run_lock(processed_root, province_id(province_code), wait=wait_lock, on_wait=echo))
        bp = plan_batch(plans, year, processed_root, raw_dir, langs, engine, force, executed_root,
                        report_out_dir, province_code, verbose, only)
        echo(f"{len(plans)} cities, {bp.total_tasks} tasks: {bp.up_to_date} up to date, "
             f"{len(bp.nodes)} to run or check on the {executor} executor")
        if not bp.nodes:
            results = {}
        elif executor == "serial":
            results = run_graph_serial(bp.nodes, echo)
        elif executor == "local":
            from .executors import LocalExecutor

            results = run_graph_pool(bp.nodes, LocalExecutor(workers or 2), echo)
        elif executor == "dask":
            from .dask_executor import connect, run_graph_dask

            with connect(scheduler, workers, processed_root=processed_root, echo=echo) as client:
                results = run_graph_dask(bp.nodes, client, echo)
        else:
            raise BatchError(f"unknown executor {executor!r}; choose from serial, local, dask")
    return BatchSummary(results, time.perf_counter() - t0, bp.total_tasks, bp.up_to_date)


def find_plans(patterns: list[str] | None, province_code: str | None, raw_dir: Path | None = None) -> list[Plan]:
    from .synth_province import find_plans as _find

    return _find(patterns, province_code, Path(raw_dir or RAW))


# --- command line (python -m analysis batch, python -m analysis demo --province) ----------------

def demo_province(args: Any) -> int:
    """`demo --province CODE`: the real plans' demo inputs when absent, then the synthetic cities."""
    from . import synth, synth_progress
    from .synth_province import build_province_demo, real_plans

    t0 = time.perf_counter()
    raw_dir = Path(args.raw_dir)
    for plan in real_plans(args.province, raw_dir):
        if not all(plan.raw_survey_path(y).exists() for y in plan.survey_years):
            synth.build_demo(plan, seed=args.seed, n_per_year=args.n)
            synth_progress.build_demo_returns(plan, seed=args.seed)
            print(f"built the SYNTHETIC demo inputs of {plan.city} under {plan.raw_dir}")
    years = [int(y) for y in args.years.split(",")] if getattr(args, "years", None) else None
    plans = build_province_demo(args.province, raw_dir, seed=args.seed, n_per_year=args.n, years=years)
    print(f"wrote {len(plans)} SYNTHETIC city plans and their inputs under "
          f"{raw_dir / 'province' / str(args.province)} in {time.perf_counter() - t0:.1f} s")
    return 0


def common_province(plans: list[Plan]) -> str | None:
    """The province of every plan when they share one and are two or more (then it is compared too)."""
    provinces = {p.code[:2] + "0000" for p in plans}
    return provinces.pop() if len(plans) >= 2 and len(provinces) == 1 else None


def _batch(args: Any) -> int:
    from .cli import check_environment, check_executor_arguments

    check_executor_arguments(args)
    check_environment(args.strict)
    plans = find_plans(args.plans, args.province, args.raw_dir)
    langs = [] if args.no_report else [lang for lang in args.lang.split(",") if lang]
    province = args.province or common_province(plans)
    summary = run_batch(plans, args.year, executor=args.executor, workers=args.workers, scheduler=args.scheduler,
                        processed_root=args.processed_root, raw_dir=args.raw_dir, langs=langs, engine=args.engine,
                        force=args.force, province_code=province, verbose=args.verbose, wait_lock=args.wait)
    for line in summary.lines():
        print(line)
    return 1 if summary.failures else 0


def add_batch_parser(sub: Any, common: Callable[[Any], None], locked: Callable[[Any], None],
                     executor_arguments: Callable[..., None]) -> None:
    b = sub.add_parser("batch", help="run many cities (and a provincial comparison) as one task graph")
    common(b)
    locked(b)
    b.add_argument("--plans", action="append", metavar="GLOB",
                   help="plan files, e.g. 'data/raw/plan/*.yml' (repeatable)")
    b.add_argument("--province", metavar="CODE",
                   help="a province's admin code (e.g. 440000): its real plans in data/raw/plan, its synthetic "
                        "demo cities in data/raw/province/CODE, then the provincial stage and report")
    b.add_argument("--year", type=int, default=2025)
    executor_arguments(b, default="serial", workers=None)
    b.add_argument("--force", action="store_true", help="rerun tasks that are up to date")
    b.add_argument("--no-report", action="store_true", help="notebooks and the provincial stage only")
    b.add_argument("--lang", default="zh", help="report language(s): zh, en or zh,en")
    b.add_argument("--engine", default="auto", help="auto (quarto when installed), quarto or offline")
    b.set_defaults(func=_batch)
