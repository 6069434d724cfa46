"""Benchmark: the demo province serially and on a 2-worker Dask LocalCluster.

Prints the wall times, the scaling efficiency (serial time / (workers x Dask time); the
target is 80% or more on 2 cores), the peak memory per worker (the worker process's own
peak, its largest child's, i.e. a notebook kernel or a renderer, and the peak of the
process with all its children at one time, sampled every 0.2 s), the time per city-year, and an estimate for
the country's 333 prefecture-level cities on N workers. ``--json PATH`` writes the same
figures as JSON. Everything runs in a temporary folder; nothing under data/ is touched.

    .venv/bin/python benchmarks/bench_batch.py --json bench-batch.json   # the 21-city demo (long)
    .venv/bin/python benchmarks/bench_batch.py --cities 3 --years 2020,2023,2025 --n 600   # a reduced run

A reduced run needs the baseline year (2020) among --years (stage 03 decomposes the change
since it) and three years or more (the city report's trend section); with fewer, those tasks
fail and are reported, the timings are still printed.

--cities counts the real plan of the province (Zhanjiang) among them; cities are taken in
admin-code order. --no-report leaves out the city and provincial reports. Run it on a quiet
machine: the load average before and after is printed, and efficiency means little when other
jobs share the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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
ESTIMATE_WORKERS = (2, 8, 32, 128)


class MemorySampler:
    """Peak resident memory of a process and its children (kernels, renderers), sampled by a thread.

    Not getrusage's ru_maxrss: Linux carries a process's peak across fork and exec, so a kernel
    spawned by a 500 MB process reports at least 500 MB. Sampling misses only a peak shorter than
    `interval`; the process's own peak is read from its VmHWM at the end (exact, reset at exec).
    """

    def __init__(self, interval: float = 0.2):
        import threading

        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.own = self.child = self.tree = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="memory-sampler")
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        own = self.proc.memory_info().rss
        kids = []
        for c in self.proc.children(recursive=True):
            try:
                kids.append(c.memory_info().rss)
            except psutil.Error:  # ended between listing and reading
                pass
        self.own = max(self.own, own)
        self.child = max(self.child, max(kids, default=0))
        self.tree = max(self.tree, own + sum(kids))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self._sample()
        own = max(self.own, _vm_hwm())
        mb = 1024 * 1024
        return {"process_mb": round(own / mb, 1), "largest_child_mb": round(self.child / mb, 1),
                "process_tree_mb": round(max(self.tree, own) / mb, 1)}


def _vm_hwm() -> int:
    """This process's peak resident memory (bytes) since its exec (/proc/self/status VmHWM; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def start_sampler(dask_worker=None) -> bool:  # noqa: ANN001 - client.run passes the Worker
    dask_worker._bench_memory = MemorySampler()
    return True


def stop_sampler(dask_worker=None) -> dict[str, float]:  # noqa: ANN001
    return dask_worker._bench_memory.stop()


def build(raw: Path, cities: int, years: list[int] | None, n: int) -> int:
    """The province's inputs under raw: the real plans' demo data, then the first synthetic cities."""
    for sub in ("plan", "benchmarks", "census"):
        shutil.copytree(RAW / sub, raw / sub)
    real = real_plans(PROVINCE, raw)
    for plan in real:
        synth.build_demo(plan, n_per_year=n, years=years)
        synth_progress.build_demo_returns(plan)
    _, prefs = prefectures(PROVINCE)
    codes = [p.code for p in synthetic_prefectures(prefs, real)][: max(0, cities - len(real))]
    build_province_demo(PROVINCE, raw, n_per_year=n, years=years, only=codes, echo=lambda msg: None)
    return len(real) + len(codes)


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def figures(args: argparse.Namespace, n_cities: int, n_city_years: int, serial: Any, dask: Any,
            serial_memory: dict[str, float], worker_memory: dict[str, dict[str, float]],
            load: dict[str, list[float]], build_s: float) -> dict[str, Any]:
    """Every figure the benchmark reports, as one JSON-ready mapping."""
    eff = serial.wall / (args.workers * dask.wall)
    per_city = serial.wall / n_cities
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "commit": _git_commit(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average": load},
        "run": {"cities": n_cities, "city_years": n_city_years, "respondents_per_city_year": args.n,
                "years": args.years or "all", "reports": not args.no_report, "workers": args.workers,
                "tasks_run_serial": serial.count("ran"), "tasks_run_dask": dask.count("ran"),
                "failures_serial": len(serial.failures), "failures_dask": len(dask.failures),
                "build_inputs_s": round(build_s, 1)},
        "wall_s": {"serial": round(serial.wall, 1), "dask": round(dask.wall, 1)},
        "scaling_efficiency": round(eff, 3),
        "speedup": round(serial.wall / dask.wall, 2),
        "peak_memory_serial": serial_memory,
        "peak_memory_per_worker": worker_memory,
        "time_per_city_year_s": {"serial": round(serial.wall / n_city_years, 1),
                                 "dask_wall": round(dask.wall / n_city_years, 1)},
        "estimate_country": {
            "cities": COUNTRY, "survey_years_per_city": round(n_city_years / n_cities, 1),
            "basis": "serial time per city on this machine / (workers x this run's efficiency, at most 1)",
            "hours_by_workers": {str(w): round(COUNTRY * per_city / (w * min(1.0, eff)) / 3600, 2)
                                 for w in ESTIMATE_WORKERS},
        },
    }


def report(f: dict[str, Any]) -> list[str]:
    run, wall = f["run"], f["wall_s"]
    lines = [f"cities: {run['cities']}; city-years: {run['city_years']}; tasks run: {run['tasks_run_serial']} "
             f"({'with' if run['reports'] else 'without'} reports); respondents per city-year: "
             f"{run['respondents_per_city_year']}; load average before/after: "
             f"{f['machine']['load_average']['before']} / {f['machine']['load_average']['after']}",
             f"serial:                 {wall['serial']:8.1f} s   (peak memory: this process "
             f"{f['peak_memory_serial']['process_mb']:.0f} MB, largest kernel "
             f"{f['peak_memory_serial']['largest_child_mb']:.0f} MB, together "
             f"{f['peak_memory_serial']['process_tree_mb']:.0f} MB)",
             f"dask, {run['workers']} workers:        {wall['dask']:8.1f} s   (speed-up {f['speedup']:.2f}x)",
             f"scaling efficiency:     {f['scaling_efficiency']:8.0%}   (serial / ({run['workers']} x dask); "
             "target >= 80%)"]
    for w, mem in sorted(f["peak_memory_per_worker"].items()):
        lines.append(f"peak memory, worker {w}: process {mem['process_mb']:.0f} MB, largest kernel "
                     f"{mem['largest_child_mb']:.0f} MB, process and kernels together {mem['process_tree_mb']:.0f} MB")
    per = f["time_per_city_year_s"]
    lines.append(f"time per city-year:     {per['serial']:8.1f} s   serial ({per['dask_wall']:.1f} s of Dask wall "
                 f"time; stages 01-05{' and reports' if run['reports'] else ''})")
    est = f["estimate_country"]
    lines.append(f"estimate for {est['cities']} cities with {est['survey_years_per_city']:g} survey years each "
                 "(this machine's speed per worker, this run's efficiency):")
    lines += [f"  {w:>4} workers: {h:6.1f} h" for w, h in est["hours_by_workers"].items()]
    if run["failures_serial"] or run["failures_dask"]:
        lines.append(f"FAILURES: serial {run['failures_serial']}, dask {run['failures_dask']} (timed all the same)")
    return lines


def _run_both(args: argparse.Namespace, tmp: Path, langs: tuple[str, ...]):
    plans = find_plans(None, PROVINCE, tmp / "raw")

    def batch(executor: str, name: str, **kw):
        return run_batch(plans, 2025, executor=executor, processed_root=tmp / name / "processed",
                         raw_dir=tmp / "raw", langs=langs, province_code=PROVINCE,
                         executed_root=tmp / name / "executed", report_out_dir=tmp / name / "out",
                         echo=lambda msg: None, **kw)

    sampler = MemorySampler()
    serial = batch("serial", "serial")
    serial_memory = sampler.stop()
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=50) as cluster, Client(cluster) as client:
        client.run(start_sampler)
        dask = batch("dask", "dask", scheduler=cluster.scheduler_address)
        worker_memory = client.run(stop_sampler)
    for name, s in (("serial", serial), ("dask", dask)):
        if s.failures:  # timed all the same: the failed tasks ran, their dependants did not
            print(f"{name} run had failures:\n" + "\n".join(s.lines()))
    n_city_years = sum(len([y for y in p.survey_years if p.raw_survey_path(y).exists()]) for p in plans)
    return serial, dask, serial_memory, worker_memory, n_city_years


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cities", type=int, default=21, help="cities in the run (default: the whole demo province)")
    ap.add_argument("--years", help="survey years, e.g. 2020,2025 (default: all eight)")
    ap.add_argument("--n", type=int, default=3000, help="respondents per city and survey year")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-report", action="store_true")
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    years = [int(y) for y in args.years.split(",")] if args.years else None
    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    langs = () if args.no_report else ("zh",)
    load_before = [round(x, 2) for x in os.getloadavg()]
    try:
        t0 = time.perf_counter()
        n_cities = build(tmp / "raw", args.cities, years, args.n)
        build_s = time.perf_counter() - t0
        print(f"built {n_cities} cities' inputs in {build_s:.0f} s", flush=True)
        serial, dask, serial_memory, worker_memory, n_city_years = _run_both(args, tmp, langs)
        load = {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]}
        f = figures(args, n_cities, n_city_years, serial, dask, serial_memory, worker_memory, load, build_s)
        print("\n".join(report(f)))
        if args.json:
            Path(args.json).write_text(json.dumps(f, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            print(f"figures written to {args.json}")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
