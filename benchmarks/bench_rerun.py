"""A `make report` with nothing changed: the wall time of its two commands (target < 1.5 s on 2 cores).

Runs what `make report` runs after installation (the demo step, which finds its files present,
and the run, which finds every task up to date), several times, and prints the median and the
slowest. A first full run is made when the results are not current yet.

    .venv/bin/python benchmarks/bench_rerun.py [--repeat 5] [--year 2025]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 1.5


def commands(year: int) -> list[list[str]]:
    """The commands of `make report` after its install step (see the Makefile)."""
    py = sys.executable
    return [[py, "-m", "analysis", "demo", "--if-absent"],
            [py, "-m", "analysis", "run", "--year", str(year), "--lang", "zh"]]


def timed(cmds: list[list[str]]) -> tuple[float, str, float]:
    """Wall time, output of the last command, and CPU time (user + system) of the commands."""
    t0, cpu0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    out = ""
    for cmd in cmds:
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[1:])} failed:\n{res.stderr}")
        out = res.stdout + res.stderr
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - t0, out, (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--year", type=int, default=2025)
    args = ap.parse_args()
    cmds = commands(args.year)
    dry = subprocess.run([*cmds[1], "--dry-run"], cwd=ROOT, capture_output=True, text=True)
    if dry.returncode != 0 or not dry.stdout.startswith("nothing to run"):
        print("results not current: a first full run (minutes) ...", flush=True)
        seconds, _, _ = timed(cmds)
        print(f"first run: {seconds:.1f} s")
    times, cpus = [], []
    for _ in range(args.repeat):
        seconds, out, cpu = timed(cmds)
        if "nothing changed" not in out:
            raise SystemExit(f"the rerun was expected to find nothing changed:\n{out}")
        times.append(seconds)
        cpus.append(cpu)
    median = statistics.median(times)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"make report with nothing changed: median {median:.2f} s, slowest {max(times):.2f} s "
          f"over {len(times)} runs (target < {TARGET_S} s) -> {'ok' if median < TARGET_S else 'SLOWER THAN TARGET'}")
    print(f"CPU time (user + system) median {statistics.median(cpus):.2f} s; load average {load:.1f} on "
          f"{os.cpu_count()} cores (on a busy machine the wall time exceeds the CPU time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
