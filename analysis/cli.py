"""Command line: `python -m analysis demo|run|render`.

Errors a user can fix (analysis.errors.UserError and the plan, pipeline and render errors)
end in one message on stderr and exit status 1; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from .config import PROCESSED, RAW, PlanError, load_plan
from .errors import UserError


class EnvironmentMismatch(UserError):
    """The installed packages differ from the lock file and --strict was given."""


def default_city(raw_dir: Path = RAW) -> str | None:
    """The plan id when data/raw/plan holds exactly one plan file; otherwise --city is required."""
    plans = sorted(p.stem for p in (raw_dir / "plan").glob("*.yml"))
    return plans[0] if len(plans) == 1 else None


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def check_environment(strict: bool) -> None:
    """Warn (or, strict, refuse) when the installed packages are not the ones the lock file pins."""
    from .provenance import LOCK_FILE, describe_differences, environment_differences

    if not LOCK_FILE.is_file():
        return
    diffs = environment_differences(LOCK_FILE)
    if not diffs:
        return
    msg = (f"the installed packages differ from {LOCK_FILE.name} in {len(diffs)} package(s): "
           f"{describe_differences(diffs)}; results may differ from a locked run "
           "(reinstall with `make install`, or see the README's section on the lock file)")
    if strict:
        raise EnvironmentMismatch(msg + "; --strict refuses to run")
    _say(f"warning: {msg}")


def _demo(args: argparse.Namespace) -> int:
    if args.province:  # the synthetic cities of a province (analysis/batch.py)
        from .batch import demo_province

        return demo_province(args)

    plan = load_plan(args.city, args.raw_dir)
    survey_present = all(plan.raw_survey_path(y).exists() for y in plan.survey_years)
    progress_present = any((plan.raw_dir / "progress").glob(f"{plan.city}-*-synthetic.xlsx"))
    inputs_present = (survey_present and plan.census_margins_path.exists() and plan.questionnaire_path.exists()
                      and progress_present)
    if args.if_absent and inputs_present:
        print(f"demo inputs present under {plan.raw_dir} (synthetic); not rebuilt")
        return 0
    from . import synth, synth_progress  # imported only when building: keeps `make report` quick

    t0 = time.perf_counter()
    written = synth.build_demo(plan, seed=args.seed, n_per_year=args.n)
    returns = synth_progress.build_demo_returns(plan, seed=args.seed)
    n_files = sum(len(v) for v in written.values()) + len(returns)
    print(f"built {n_files} SYNTHETIC demo files under {plan.raw_dir} in {time.perf_counter() - t0:.1f} s")
    return 0


def _pdfs(rp) -> list[str]:  # noqa: ANN001 - a pipeline.RunPlan
    from .pipeline import is_report

    found = []
    for task in rp.tasks:
        stamp = rp.stamps.get(task) if is_report(task) else None
        found += [name for name in (stamp or {}).get("outputs", {}) if name.endswith(".pdf")]
    return found


def _run(args: argparse.Namespace) -> int:
    from .pipeline import Progress, RunPlan, is_report, run_pipeline
    from .runlock import run_lock

    t0 = time.perf_counter()
    check_executor_arguments(args)
    plan = load_plan(args.city, args.raw_dir)
    check_environment(args.strict)
    only = set(args.only.split(",")) if args.only else None
    langs = [] if args.no_report else [lang for lang in args.lang.split(",") if lang]

    def plan_run(stages: set[str] | None, report_langs: list[str]) -> RunPlan:
        return RunPlan(plan, args.year, args.processed_root, only=stages, langs=report_langs, engine=args.engine,
                       force=args.force)

    def execute(rp: RunPlan) -> list:
        if not rp.pending:
            return []
        from .executors import make_executor
        from .progress_bar import TaskBar

        bar = (None if args.verbose else TaskBar.for_terminal(sys.stderr)) or Progress(_say, False)
        executor = make_executor(args.executor, args.workers, scheduler=args.scheduler,
                                 processed_root=args.processed_root)
        return run_pipeline(plan, args.year, executor=executor,
                            processed_root=args.processed_root, run_plan=rp, progress=bar, verbose=args.verbose)

    if args.dry_run:
        print("\n".join(plan_run(only, [] if only else langs).describe()))
        return 0
    with run_lock(args.processed_root, plan.city, wait=args.wait, on_wait=_say):
        rp = plan_run(only, [] if only else langs)  # planned under the lock: another run may just have finished
        ran = execute(rp)
        if only and langs:  # the report reads every stage: render it only when all of them are current
            full = plan_run(None, langs)
            stale = [t for t in full.pending if not is_report(t)]
            if stale:
                _say(f"the report was not rendered: {len(stale)} task(s) outside --only are not current "
                     f"(first {stale[0].stage} {stale[0].year}); run without --only to bring them up to date")
            else:
                ran += execute(full)
                rp = full
    if not ran:
        _say(f"nothing changed: all {len(rp.tasks)} tasks are up to date")
    wall = time.perf_counter() - t0
    pdfs = _pdfs(rp)
    print(f"report: {', '.join(pdfs)} (wall time {wall:.1f} s)" if pdfs else f"wall time {wall:.1f} s")
    return 0


def _render(args: argparse.Namespace) -> int:
    from .pipeline import RunPlan, is_report
    from .render import render
    from .runlock import run_lock

    t0 = time.perf_counter()
    plan = load_plan(args.city, args.raw_dir)
    check_environment(args.strict)
    with run_lock(args.processed_root, plan.city, wait=args.wait, on_wait=_say):
        rp = RunPlan(plan, args.year, args.processed_root)
        stale = [t for t in rp.tasks if not is_report(t) and not rp.states[t].up_to_date]
        if stale:
            raise UserError("the results in data/processed are not current for "
                            + ", ".join(f"{t.stage} {t.year}" for t in stale[:5])
                            + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
                            + f"; run the notebooks first: python -m analysis run --year {args.year}")
        pdfs = []
        for lang in args.lang.split(","):
            for kind, path in render(plan, args.year, lang=lang, processed_root=args.processed_root,
                                     engine=args.engine, check=False).items():
                _say(f"{kind}: {path}")
                if kind == "pdf":
                    pdfs.append(str(path))
    print(f"report: {', '.join(pdfs)} (wall time {time.perf_counter() - t0:.1f} s)")
    return 0


EXECUTOR_CHOICES = ("local", "serial", "dask")


def executor_arguments(sp: argparse.ArgumentParser, default: str, workers: int | None) -> None:
    """--executor, --workers and --scheduler, the same for `run` and `batch`."""
    sp.add_argument("--executor", default=default, choices=EXECUTOR_CHOICES,
                    help=f"local (process pool), serial (this process) or dask (dask.distributed); default {default}")
    sp.add_argument("--workers", type=int, default=workers,
                    help="workers of the local pool or of a new local Dask cluster "
                         f"(default: {workers or 'one per core'})")
    sp.add_argument("--scheduler", metavar="ADDRESS",
                    help="with --executor dask: an existing scheduler, e.g. tcp://HOST:8786 (default: "
                         "$DASK_SCHEDULER_ADDRESS, else a local cluster)")


def check_executor_arguments(args: argparse.Namespace) -> None:
    if args.scheduler and args.executor != "dask":
        raise UserError(f"--scheduler is for --executor dask, not {args.executor}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        city = default_city()
        sp.add_argument("--city", default=city, required=city is None,
                        help="plan id: data/raw/plan/<city>.yml (default: the only plan there)")
        sp.add_argument("--raw-dir", type=Path, default=RAW, help="folder of raw inputs (default data/raw)")
        sp.add_argument("--processed-root", type=Path, default=PROCESSED,
                        help="folder of outputs (default data/processed)")
        sp.add_argument("--debug", action="store_true", help="show the traceback of an error")
        sp.add_argument("--verbose", action="store_true",
                        help="show every log line (papermill, kernels) instead of a progress bar")

    def locked(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--strict", action="store_true",
                        help="refuse to run when the installed packages differ from requirements.lock")
        sp.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long for another run on the same city to finish (default: stop at once)")

    d = sub.add_parser("demo", help="build the synthetic demo inputs")
    common(d)
    d.add_argument("--seed", type=int, default=20210601)
    d.add_argument("--n", type=int, default=3000, help="respondents per survey year")
    d.add_argument("--if-absent", action="store_true", help="do nothing when the demo files exist")
    d.add_argument("--province", metavar="CODE", help="build the synthetic cities of a province, e.g. 440000")
    d.add_argument("--years", help="survey years to generate with --province, e.g. 2020,2025 (default: all)")
    d.set_defaults(func=_demo)

    r = sub.add_parser("run", help="run the notebooks for a report year, then render the report")
    common(r)
    locked(r)
    r.add_argument("--year", type=int, default=2025)
    executor_arguments(r, default="local", workers=2)
    r.add_argument("--force", action="store_true", help="rerun tasks that are up to date")
    r.add_argument("--dry-run", action="store_true", help="list the tasks that would run and why; run nothing")
    r.add_argument("--only", help="comma-separated stages, e.g. 01_clean,02_weight_estimate")
    r.add_argument("--no-report", action="store_true", help="run the notebooks only")
    r.add_argument("--lang", default="zh", help="report language(s): zh, en or zh,en")
    r.add_argument("--engine", default="auto", help="auto (quarto when installed), quarto or offline")
    r.set_defaults(func=_run)

    rd = sub.add_parser("render", help="render the report from data/processed (the results must be current)")
    common(rd)
    locked(rd)
    rd.add_argument("--year", type=int, default=2025)
    rd.add_argument("--lang", default="zh")
    rd.add_argument("--engine", default="auto")
    rd.set_defaults(func=_render)

    from .batch import add_batch_parser

    add_batch_parser(sub, common, locked, executor_arguments)
    return p


def _user_errors() -> tuple[type[BaseException], ...]:
    """Error types whose message is enough: the user can act on it without a traceback."""
    from .pipeline import PipelineError
    from .render import RenderError

    return (UserError, PlanError, PipelineError, RenderError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except _user_errors() as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into a pager or `head` that stopped reading
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("stopped (Ctrl-C); the outputs of unfinished tasks were not kept", file=sys.stderr)
        return 130
