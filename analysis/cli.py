"""Command line: `python -m analysis demo|run|render`."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from .config import PROCESSED, RAW, PlanError, load_plan


def default_city(raw_dir: Path = RAW) -> str | None:
    """The plan id when data/raw/plan holds exactly one plan file; otherwise --city is required."""
    plans = sorted(p.stem for p in (raw_dir / "plan").glob("*.yml"))
    return plans[0] if len(plans) == 1 else None


def _demo(args: argparse.Namespace) -> int:
    from . import synth, synth_progress

    plan = load_plan(args.city, args.raw_dir)
    survey_present = all(plan.raw_survey_path(y).exists() for y in plan.survey_years)
    progress_present = any((plan.raw_dir / "progress").glob(f"{plan.city}-*-synthetic.xlsx"))
    inputs_present = (survey_present and plan.census_margins_path.exists() and plan.questionnaire_path.exists()
                      and progress_present)
    if args.if_absent and inputs_present:
        print(f"demo inputs present under {plan.raw_dir} (synthetic); not rebuilt")
        return 0
    t0 = time.perf_counter()
    written = synth.build_demo(plan, seed=args.seed, n_per_year=args.n)
    returns = synth_progress.build_demo_returns(plan, seed=args.seed)
    n_files = sum(len(v) for v in written.values()) + len(returns)
    print(f"built {n_files} SYNTHETIC demo files under {plan.raw_dir} in {time.perf_counter() - t0:.1f} s")
    return 0


def _run(args: argparse.Namespace) -> int:
    from .executors import make_executor
    from .pipeline import run_pipeline
    from .render import render

    t0 = time.perf_counter()
    plan = load_plan(args.city, args.raw_dir)
    only = set(args.only.split(",")) if args.only else None
    run_pipeline(plan, args.year, executor=make_executor(args.executor, args.workers),
                 processed_root=args.processed_root, force=args.force, only=only)
    if not args.no_report:
        for lang in args.lang.split(","):
            files = render(plan, args.year, lang=lang, processed_root=args.processed_root,
                           engine=args.engine)
            for kind, path in files.items():
                print(f"{kind}: {path}")
    print(f"wall time: {time.perf_counter() - t0:.1f} s")
    return 0


def _render(args: argparse.Namespace) -> int:
    from .render import render

    t0 = time.perf_counter()
    plan = load_plan(args.city, args.raw_dir)
    for lang in args.lang.split(","):
        for kind, path in render(plan, args.year, lang=lang, processed_root=args.processed_root,
                                 engine=args.engine).items():
            print(f"{kind}: {path}")
    print(f"wall time: {time.perf_counter() - t0:.1f} s")
    return 0


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

    d = sub.add_parser("demo", help="build the synthetic demo inputs")
    common(d)
    d.add_argument("--seed", type=int, default=20210601)
    d.add_argument("--n", type=int, default=3000, help="respondents per survey year")
    d.add_argument("--if-absent", action="store_true", help="do nothing when the demo files exist")
    d.set_defaults(func=_demo)

    r = sub.add_parser("run", help="run the notebooks for a report year, then render the report")
    common(r)
    r.add_argument("--year", type=int, default=2025)
    r.add_argument("--executor", default="local", help="local (process pool) or serial")
    r.add_argument("--workers", type=int, default=2, help="parallel notebooks (local executor)")
    r.add_argument("--force", action="store_true", help="rerun notebooks that are up to date")
    r.add_argument("--only", help="comma-separated stages, e.g. 01_clean,02_weight_estimate")
    r.add_argument("--no-report", action="store_true", help="run the notebooks only")
    r.add_argument("--lang", default="zh", help="report language(s): zh, en or zh,en")
    r.add_argument("--engine", default="auto", help="auto (quarto when installed), quarto or offline")
    r.set_defaults(func=_run)

    rd = sub.add_parser("render", help="render the report from data/processed")
    common(rd)
    rd.add_argument("--year", type=int, default=2025)
    rd.add_argument("--lang", default="zh")
    rd.add_argument("--engine", default="auto")
    rd.set_defaults(func=_render)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .pipeline import PipelineError
    from .render import RenderError

    try:
        return args.func(args)
    except (PlanError, PipelineError, RenderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
