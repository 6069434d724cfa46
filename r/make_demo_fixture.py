"""Write tests/fixtures/survey_r/demo_survey.csv and demo_margins.csv from the demo's 2020 year.

Run from the project root before r/make_survey_fixtures.R (which reads them):

    .venv/bin/python r/make_demo_fixture.py && Rscript r/make_survey_fixtures.R

The rows are the 2020 demo survey (default seed and size) after stage 01's cleaning,
built in a temporary folder; the margins are the demo's census margins.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import synth
from analysis.clean_stage import run_clean
from analysis.config import RAW, load_plan

YEAR = 2020
OUT = Path("tests/fixtures/survey_r")
COLUMNS = ["division_code", "stratum", "psu", "design_weight", "sex", "age", "age_group", "urban_rural",
           "education", "occupation", "score_knowledge", "score_method", "score_spirit",
           "score_application", "score_total", "level", "literate"]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        for rel in ("plan/zhanjiang.yml", "census/zhanjiang-population-published.csv"):
            (raw / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(RAW / rel, raw / rel)
        plan = load_plan("zhanjiang", raw)
        synth.build_demo(plan, years=[YEAR])
        run_clean(plan, YEAR, Path(tmp) / "processed", key=b"fixture")
        clean = pd.read_parquet(Path(tmp) / "processed" / plan.city / str(YEAR) / "survey_clean.parquet")
        out = clean[COLUMNS].copy()
        out.insert(0, "row", np.arange(len(out)))
        OUT.mkdir(parents=True, exist_ok=True)
        out.to_csv(OUT / "demo_survey.csv", index=False, encoding="utf-8", lineterminator="\n")
        shutil.copy(plan.census_margins_path, OUT / "demo_margins.csv")
        print(f"wrote {len(out)} rows to {OUT / 'demo_survey.csv'}")


if __name__ == "__main__":
    main()
