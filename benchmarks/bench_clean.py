"""Benchmark stage 01: harmonise, pseudonymise, clean, score and validate N synthetic rows.

The rows come from analysis.synth.generate_survey, made in a child process and
cached as Parquet (named with a hash of the generator's code, so a cache made by
an older generator is not reused), so the generator's memory is not counted. The timed part is
analysis.clean_stage.process (everything the stage does between reading the
file and writing the outputs); --with-csv also times reading the same rows
from a CSV file through analysis.ingest. Peak memory is the process's maximum
resident set size (getrusage), which includes the loaded input frame.

    .venv/bin/python benchmarks/bench_clean.py              # 1,000,000 rows
    .venv/bin/python benchmarks/bench_clean.py --rows 100000 --with-csv

Target: under 30 s and 3 GB on a 2-core machine for 1,000,000 rows.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GEN = """
import sys
from analysis.config import load_plan
from analysis.synth import generate_survey, make_questionnaire
rows, seed, year, out, qout = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
plan = load_plan("zhanjiang")
q = make_questionnaire(plan, seed)
raw, faults = generate_survey(plan, year, rows, seed, questionnaire=q)
raw.to_parquet(out, index=False)
q.to_csv(qout, index=False)
"""


def generator_digest() -> str:
    """Short hash of the generator's modules and the plan: a cache made by another version is not reused."""
    h = hashlib.sha256()
    for rel in ("synth.py", "synth_survey.py", "synth_census.py", "synth_population.py"):
        h.update((ROOT / "analysis" / rel).read_bytes())
    h.update((ROOT / "data" / "raw" / "plan" / "zhanjiang.yml").read_bytes())
    return h.hexdigest()[:10]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--year", type=int, default=2025)
    ap.add_argument("--seed", type=int, default=20210601)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "scilit-bench-clean")
    ap.add_argument("--with-csv", action="store_true", help="also time CSV ingest of the same rows")
    args = ap.parse_args()

    args.cache.mkdir(parents=True, exist_ok=True)
    version = generator_digest()
    data = args.cache / f"survey-{args.year}-{args.rows}-{args.seed}-{version}.parquet"
    qpath = args.cache / f"questionnaire-{args.seed}-{version}.csv"
    if not data.exists() or not qpath.exists():
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", GEN, str(args.rows), str(args.seed), str(args.year),
                        str(data), str(qpath)], cwd=ROOT, check=True)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - t:.1f} s (child process) -> {data}")

    import numpy as np
    import pandas as pd

    from analysis.clean_stage import process
    from analysis.config import load_plan
    from analysis.ingest import Source, read_survey
    from analysis.scoring import load_questionnaire

    plan = load_plan("zhanjiang")
    q = load_questionnaire(qpath, plan)
    raw = pd.read_parquet(data)
    raw.insert(0, "row", np.arange(len(raw), dtype="int64"))
    source = Source(path=data, format="parquet")
    print(f"loaded {len(raw):,} rows x {raw.shape[1]} columns; RSS peak so far {peak_rss_mb():,.0f} MB")

    if args.with_csv:
        csv_path = args.cache / data.with_suffix(".csv").name
        if not csv_path.exists():
            raw.drop(columns="row").to_csv(csv_path, index=False)
        t = time.perf_counter()
        ingested, source = read_survey(csv_path)
        print(f"ingest CSV ({csv_path.stat().st_size / 2**20:,.0f} MB, {source.encoding}): "
              f"{time.perf_counter() - t:.1f} s")
        raw = ingested

    t, cpu = time.perf_counter(), time.process_time()
    table, result = process(raw, source, plan, args.year, q, b"benchmark-key")
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    n_drop = int((result.ledger["status"] == "dropped").sum())
    print(f"clean + score: {len(raw):,} rows in, {len(table):,} kept, {n_drop:,} dropped")
    # CPU time (all threads) tells a slower clean from a busy machine: on a quiet 2-core machine
    # the wall time is at most the CPU time.
    print(f"wall time {wall:.1f} s (CPU {cpu:.1f} s); peak memory (max RSS) {peak_rss_mb() / 1024:.2f} GB")
    ok = wall < 30 and peak_rss_mb() < 3 * 1024
    print("target (30 s, 3 GB):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
