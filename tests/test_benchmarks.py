"""Benchmark file: the published figures exactly, and clear errors for bad rows."""

import pandas as pd
import pytest

from analysis import benchmarks as bm

# Copied from ../shared/reference/published-figures.md (national and Guangdong tables).
NATIONAL = {2003: 1.98, 2005: 1.60, 2007: 2.25, 2010: 3.27, 2015: 6.20, 2018: 8.47,
            2020: 10.56, 2022: 12.93, 2023: 14.14, 2024: 15.37}
GUANGDONG = {2018: 10.35, 2020: 12.79, 2022: 14.8}


@pytest.fixture(scope="module")
def bench():
    return bm.load_benchmarks()


def test_published_series_match_reference(bench):
    assert bm.series(bench, "national").to_dict() == NATIONAL
    assert bm.series(bench, "guangdong").to_dict() == GUANGDONG


def test_targets(bench):
    t = bench[bench["kind"] == "target"].set_index(["scope", "year"])["value"].to_dict()
    assert t == {("national", 2025): 15.0, ("national", 2035): 25.0, ("guangdong", 2025): 16.0}


def test_every_row_has_a_source_and_nothing_else(bench):
    assert bench["source"].str.len().min() > 3
    assert set(bench["scope"]) == {"national", "guangdong"}
    assert len(bench) == len(NATIONAL) + len(GUANGDONG) + 3


def _write(tmp_path, rows):
    p = tmp_path / "published.csv"
    pd.DataFrame(rows, columns=bm.COLUMNS).to_csv(p, index=False)
    return p


GOOD = ["national", 2020, 10.56, "observed", "中国网 2021-01"]


@pytest.mark.parametrize("bad, message", [
    (["national", 2021, 11.0, "estimate", "x"], "line 3: column kind is 'estimate'"),
    (["national", 2021, 11.0, "observed", ""], "line 3: column source is empty"),
    (["national", 2021, 140.0, "observed", "x"], "line 3: column value is '140.0'"),
    (["national", "twenty", 11.0, "observed", "x"], "line 3: column year is 'twenty'"),
    (["national", 2020, 10.0, "observed", "x"], "duplicate (scope, year, kind) on lines [2, 3]"),
])
def test_bad_rows_are_named(tmp_path, bad, message):
    p = _write(tmp_path, [GOOD, bad])
    with pytest.raises(bm.BenchmarkError) as e:
        bm.load_benchmarks(p)
    assert message in str(e.value) and str(p) in str(e.value)


def test_missing_column_and_file(tmp_path):
    p = tmp_path / "published.csv"
    p.write_text("scope,year,value,kind\nnational,2020,10.56,observed\n", encoding="utf-8")
    with pytest.raises(bm.BenchmarkError, match=r"missing columns \['source'\]"):
        bm.load_benchmarks(p)
    with pytest.raises(bm.BenchmarkError, match="no benchmark file"):
        bm.load_benchmarks(tmp_path / "nope.csv")


def test_bom_is_tolerated(tmp_path):
    p = tmp_path / "published.csv"
    p.write_text("\ufeffscope,year,value,kind,source\nnational,2020,10.56,observed,中国网\n",
                 encoding="utf-8")
    assert bm.series(bm.load_benchmarks(p), "national").to_dict() == {2020: 10.56}
