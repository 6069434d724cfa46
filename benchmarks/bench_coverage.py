"""Benchmark: coverage of the 95% intervals and MSE of the estimators, scored against the synthetic truth.

Draws R replicates; each replicate is an independent 3,000-row survey for every demo
year (2020-2025 by default) from the demo population (analysis/synth_population.py),
run through the same code as the stages (analysis/coverage.py). Prints the coverage
of the 95% intervals of the city, division (direct and Fay–Herriot, benchmarked) and
group estimates, of the trend forecast of the last year (fitted one and two years
ahead), and the MSE of Fay–Herriot relative to the direct estimator for divisions.
Targets (issue 12): design-based and Fay–Herriot coverage 93-97%; FH MSE below direct.

    .venv/bin/python benchmarks/bench_coverage.py [--replicates 200] [--n 3000] [--boot 100] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import benchmarks as bm  # noqa: E402
from analysis import coverage as cv  # noqa: E402
from analysis import trajectory as tr  # noqa: E402
from analysis.config import load_plan  # noqa: E402

_WORLD: cv.World | None = None
_ARGS: dict = {}


def _init(args: dict) -> None:
    global _WORLD, _ARGS
    plan = load_plan(args["city"])
    national = bm.series(bm.load_benchmarks(bm.default_path(plan.raw_dir)), "national")
    _WORLD = cv.make_world(plan, args["seed"], national)
    bt_until = int(plan.get("trajectory.backtest_fit_until", 2020))
    args["backtest"] = tr.backtest(national, bt_until, [int(y) for y in national.index if y > bt_until])
    _ARGS = args


def _one(r: int) -> dict[str, pd.DataFrame]:
    return cv.replicate(_WORLD, _ARGS["years"], _ARGS["n"], 1 + r, _ARGS["boot"], _ARGS["backtest"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--replicates", type=int, default=200)
    ap.add_argument("--n", type=int, default=3000, help="respondents per survey")
    ap.add_argument("--years", default="2020,2021,2022,2023,2024,2025")
    ap.add_argument("--boot", type=int, default=100, help="bootstrap replicates of the FH MSE per fit")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=20210601, help="population seed (the demo's)")
    ap.add_argument("--city", default="zhanjiang")
    ap.add_argument("--json", type=Path, help="also write the summary here")
    a = ap.parse_args()
    args = {"city": a.city, "seed": a.seed, "n": a.n, "boot": a.boot,
            "years": [int(y) for y in a.years.split(",")]}
    t0 = time.perf_counter()
    parts: dict[str, list[pd.DataFrame]] = {"direct": [], "fh": [], "trend": []}
    if a.workers > 1:
        with ProcessPoolExecutor(a.workers, initializer=_init, initargs=(args,)) as ex:
            results = ex.map(_one, range(a.replicates))
            for i, res in enumerate(results, 1):
                for k, v in res.items():
                    parts[k].append(v)
                if i % 10 == 0:
                    print(f"  {i}/{a.replicates} replicates, {time.perf_counter() - t0:.0f} s", flush=True)
    else:
        _init(args)
        for r in range(a.replicates):
            for k, v in _one(r).items():
                parts[k].append(v)
            if (r + 1) % 10 == 0:
                print(f"  {r + 1}/{a.replicates} replicates, {time.perf_counter() - t0:.0f} s", flush=True)
    s = cv.summarise(*(pd.concat(parts[k], ignore_index=True) for k in ("direct", "fh", "trend")))
    n_surveys = a.replicates * len(args["years"])
    print(f"\n{a.replicates} replicates x {len(args['years'])} years = {n_surveys} simulated surveys of "
          f"{a.n} rows; FH bootstrap {a.boot}; {time.perf_counter() - t0:.0f} s")
    print(f"{'estimator':<32}{'coverage':>10}{'intervals':>11}{'none':>6}")
    rows = [("city (direct)", s["city"]), ("divisions, direct", s["division_direct"]),
            ("divisions, Fay-Herriot benchm.", s["division_fh"]), ("groups, all cells", s["groups"]),
            ("groups, published cells", s["groups_published"]),
            *((f"  {d}", v) for d, v in s["groups_by_domain"].items()),
            *((f"trend, {k} yr ahead ({max(args['years'])})", v) for k, v in s["trend"].items())]
    for name, v in rows:
        print(f"{name:<32}{v['coverage']:>10.3f}{v['cells']:>11}{v.get('no_interval', 0):>6}")
    print(f"\nDivision MSE (points^2): direct {s['mse_direct']:.2f}, Fay-Herriot benchmarked {s['mse_fh']:.2f}; "
          f"relative MSE FH/direct {s['relative_mse_fh_to_direct']:.3f}")
    print("relative MSE by division:", s["relative_mse_by_division"])
    print("trend models chosen:", {k: v["models"] for k, v in s["trend"].items()})
    print(f"mean standardised error of the city estimate: {s['city_mean_z']:+.3f}")
    if a.json:
        a.json.write_text(json.dumps(s, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
