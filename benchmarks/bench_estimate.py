"""Benchmark: raking + domain estimates with Taylor SEs, Python (analysis/) against R's survey.

Default size: 1,000,000 respondents, 300 strata, 3,000 PSUs, 100 domains, three raking
margins (30 + 10 + 5 cells). Prints wall time and peak memory of the Python work and,
when Rscript with the survey package is installed, runs the same work in R in the same
run (svydesign + rake + svyby(svymean)) and prints the time ratio and the largest
relative difference between the two sets of SEs.

    .venv/bin/python benchmarks/bench_estimate.py [--n 1000000] [--no-r]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.estimate import Calibration, Design, confidence_interval, domain_means  # noqa: E402
from analysis.weighting import Margin, rake  # noqa: E402

R_SCRIPT = r"""
suppressMessages(library(survey))
args <- commandArgs(TRUE)
d <- read.csv(args[1], colClasses = c(m1 = "character", m2 = "character", m3 = "character"))
t_pop <- read.csv(args[2], colClasses = c(cell = "character"))
pops <- lapply(c("m1", "m2", "m3"), function(m) {
  x <- t_pop[t_pop$margin == m, ]; out <- data.frame(x$cell, x$population); names(out) <- c(m, "Freq"); out })
gc(reset = TRUE)
t0 <- proc.time()[["elapsed"]]
des <- svydesign(ids = ~psu, strata = ~stratum, weights = ~w, data = d, nest = TRUE)
rk <- rake(des, list(~m1, ~m2, ~m3), pops, control = list(maxit = 100, epsilon = 1e-10))
t1 <- proc.time()[["elapsed"]]
est <- svyby(~y, ~dom, rk, svymean)
t2 <- proc.time()[["elapsed"]]
mem <- sum(gc()[, 6])  # "max used" (Mb) of Ncells and Vcells
cat(sprintf('{"rake_s": %.3f, "domains_s": %.3f, "total_s": %.3f, "peak_mb": %.1f, "se": [%s], "est": [%s]}\n',
            t1 - t0, t2 - t1, t2 - t0, mem, paste(sprintf("%.17g", SE(est)), collapse = ","),
            paste(sprintf("%.17g", coef(est)), collapse = ",")))
"""


def make_data(n: int, strata: int, psus: int, domains: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    psu = np.sort(rng.integers(0, psus, n))
    stratum = psu * strata // psus
    dom = rng.integers(0, domains, n)
    m1 = stratum * 30 // strata                     # 30 regions made of strata
    m2 = rng.integers(0, 10, n)                      # sex x age group
    m3 = np.minimum(rng.poisson(1.5, n), 4)          # education
    eff = rng.normal(0, 0.3, psus)[psu]
    p = 1 / (1 + np.exp(-(-1.5 + 0.3 * m3 + eff)))
    y = (rng.random(n) < p).astype(float)
    w = rng.uniform(50, 150, n) * (1 + 0.2 * (m1 % 3))
    df = pd.DataFrame({"stratum": stratum, "psu": psu, "w": w, "dom": dom, "y": y,
                       "m1": m1.astype(str), "m2": m2.astype(str), "m3": m3.astype(str)})
    total = w.sum() * 1.1
    margins = []
    for name, codes, k in (("m1", m1, 30), ("m2", m2, 10), ("m3", m3, 5)):
        share = np.bincount(codes, minlength=k) * rng.uniform(0.8, 1.2, k)
        pop = total * share / share.sum()
        margins.append(Margin(name, (name,), pd.Series(
            pop, index=pd.Index([(str(i),) for i in range(k)], tupleize_cols=False))))
    return df, margins


def python_run(df: pd.DataFrame, margins: list[Margin], domains: int):
    tracemalloc.start()
    t0 = time.perf_counter()
    res = rake(df, "w", margins, max_iter=100, tol=1e-10)
    t1 = time.perf_counter()
    design = Design.from_frame(df, res.weights, "stratum", "psu",
                               calibration=Calibration("raking", tuple(res.codes)))
    out = domain_means(design, df["y"].to_numpy(float), df["dom"].to_numpy(), domains)
    out["ci_low"], out["ci_high"] = confidence_interval(out["estimate"], out["se"], out["df"], True)
    t2 = time.perf_counter()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, {"rake_s": t1 - t0, "domains_s": t2 - t1, "total_s": t2 - t0,
                 "peak_mb": peak / 2**20, "iterations": res.iterations}


def r_run(df: pd.DataFrame, margins: list[Margin], timeout: float):
    if not shutil.which("Rscript"):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.csv"
        pop = Path(tmp) / "pop.csv"
        script = Path(tmp) / "bench.R"
        df.to_csv(data, index=False)
        pd.DataFrame([{"margin": m.name, "cell": k[0], "population": v}
                      for m in margins for k, v in m.totals.items()]).to_csv(pop, index=False)
        script.write_text(R_SCRIPT)
        try:
            out = subprocess.run(["Rscript", str(script), str(data), str(pop)], capture_output=True,
                                 text=True, timeout=timeout, check=True)
        except subprocess.TimeoutExpired:
            return {"timeout": timeout}
        except subprocess.CalledProcessError as err:
            if "there is no package called" in err.stderr:
                return None
            raise
        return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--strata", type=int, default=300)
    ap.add_argument("--psus", type=int, default=3000)
    ap.add_argument("--domains", type=int, default=100)
    ap.add_argument("--no-r", action="store_true", help="skip the R comparison")
    ap.add_argument("--r-timeout", type=float, default=1800)
    a = ap.parse_args(argv)
    df, margins = make_data(a.n, a.strata, a.psus, a.domains)
    print(f"data: {a.n:,} respondents, {df['stratum'].nunique()} strata, {df['psu'].nunique()} PSUs, "
          f"{a.domains} domains, margins {[len(m.totals) for m in margins]}")
    out, py = python_run(df, margins, a.domains)
    print(f"python: rake {py['rake_s']:.2f} s ({py['iterations']} iterations), domain estimates "
          f"{py['domains_s']:.2f} s, total {py['total_s']:.2f} s, peak traced memory "
          f"{py['peak_mb']:.0f} MB (process max RSS incl. data generation "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
    if a.no_r:
        return
    r = r_run(df, margins, a.r_timeout)
    if r is None:
        print("R: Rscript with the survey package not installed; comparison skipped")
    elif "timeout" in r:
        print(f"R: did not finish within {r['timeout']:.0f} s; python is more than "
              f"{r['timeout'] / py['total_s']:.0f}x faster")
    else:
        se_gap = np.max(np.abs(np.asarray(r["se"]) / out["se"].to_numpy() - 1))
        est_gap = np.max(np.abs(np.asarray(r["est"]) / out["estimate"].to_numpy() - 1))
        print(f"R survey: rake {r['rake_s']:.2f} s, svyby {r['domains_s']:.2f} s, total "
              f"{r['total_s']:.2f} s, max memory used {r['peak_mb']:.0f} MB")
        print(f"ratio R / python: {r['total_s'] / py['total_s']:.1f}x; largest relative gap "
              f"estimates {est_gap:.1e}, SEs {se_gap:.1e}")


if __name__ == "__main__":
    main()
