"""Benchmark: the demo province serially and on a 2-worker Dask LocalCluster.

Prints the wall times, the scaling efficiency (serial time / (workers x Dask time); the
target is 80% or more on 2 cores), the peak memory per worker (its own and its kernels'),
the time per city-year, and an estimate for the country's 333 prefecture-level cities on
N workers. Everything runs in a temporary folder; nothing under data/ is touched.

    .venv/bin/python benchmarks/bench_batch.py                   # the 21-city demo (long: about an hour serially)
    .venv/bin/python benchmarks/bench_batch.py --cities 4 --years 2020,2025 --n 600   # a reduced run

--cities counts the real plan of the province (Zhanjiang) among them; cities are taken in
admin-code order. --no-report leaves out the city and provincial reports.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import synth, synth_progress  # noqa: E402
from analysis.batch import run_batch  # noqa: E402
from analysis.config import RAW  # noqa: E402
from analysis.synth_province import (  # noqa: E402
    build_province_demo,
    find_plans,
    prefectures,
    real_plans,
    synthetic_prefectures,
)

PROVINCE = "440000"
COUNTRY = 333


def peak_rss_mb() -> float:
    """Peak resident memory of this process and of the largest child it waited for (the kernels), MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024


def build(raw: Path, cities: int, years: list[int] | None, n: int) -> int:
    for sub in ("plan", "benchmarks", "census"):
        shutil.copytree(RAW / sub, raw / sub)
    real = real_plans(PROVINCE, raw)
    for plan in real:
        synth.build_demo(plan, n_per_year=n, years=years)
        synth_progress.build_demo_returns(plan)
    _, prefs = prefectures(PROVINCE)
    codes = [p.code for p in synthetic_prefectures(prefs, real)]
    codes = codes[: max(0, cities - len(real))]
    build_province_demo(PROVINCE, raw, n_per_year=n, years=years, only=codes, echo=lambda msg: None)
    return len(real) + len(codes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cities", type=int, default=21, help="cities in the run (default: the whole demo province)")
    ap.add_argument("--years", help="survey years, e.g. 2020,2025 (default: all eight)")
    ap.add_argument("--n", type=int, default=3000, help="respondents per city and survey year")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-report", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    years = [int(y) for y in args.years.split(",")] if args.years else None
    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    langs = () if args.no_report else ("zh",)
    try:
        t0 = time.perf_counter()
        n_cities = build(tmp / "raw", args.cities, years, args.n)
        print(f"built {n_cities} cities' inputs in {time.perf_counter() - t0:.0f} s")
        plans = find_plans(None, PROVINCE, tmp / "raw")
        n_city_years = sum(len([y for y in p.survey_years if p.raw_survey_path(y).exists()]) for p in plans)

        def batch(executor: str, name: str, **kw):
            return run_batch(plans, 2025, executor=executor, processed_root=tmp / name / "processed",
                             raw_dir=tmp / "raw", langs=langs, province_code=PROVINCE,
                             executed_root=tmp / name / "executed", report_out_dir=tmp / name / "out",
                             echo=lambda msg: None, **kw)

        serial = batch("serial", "serial")
        serial_peak = peak_rss_mb()
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=50) as cluster, Client(cluster) as client:
            dask = batch("dask", "dask", scheduler=cluster.scheduler_address)
            worker_peaks = client.run(peak_rss_mb)
        for name, s in (("serial", serial), ("dask", dask)):
            if s.failures:  # timed all the same: the failed tasks ran, their dependants did not
                print(f"{name} run had failures:\n" + "\n".join(s.lines()))
        tasks = serial.count("ran")
        eff = serial.wall / (args.workers * dask.wall)
        per_city_year = serial.wall / n_city_years
        per_city = serial.wall / n_cities
        print(f"cities: {n_cities}; city-years: {n_city_years}; tasks run: {tasks} "
              f"({'with' if langs else 'without'} reports); respondents per city-year: {args.n}")
        print(f"serial:                 {serial.wall:8.1f} s   (peak memory {serial_peak:.0f} MB)")
        print(f"dask, {args.workers} workers:        {dask.wall:8.1f} s")
        print(f"scaling efficiency:     {eff:8.0%}   (serial / ({args.workers} x dask); target >= 80%)")
        for w, mb in sorted(worker_peaks.items()):
            print(f"peak memory, worker {w}: {mb:.0f} MB (the worker or its largest kernel)")
        print(f"time per city-year:     {per_city_year:8.1f} s   (serial wall time / city-years, stages 01-05"
              f"{' and reports' if langs else ''})")
        print(f"estimate for {COUNTRY} cities with {n_city_years / n_cities:.0f} survey years each "
              "(this machine's speed per worker, this run's efficiency):")
        for n_workers in (2, 8, 32, 128):
            hours = COUNTRY * per_city / (n_workers * min(1.0, eff)) / 3600
            print(f"  {n_workers:>4} workers: {hours:6.1f} h")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
