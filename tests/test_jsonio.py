"""The one JSON writer of stage outputs: types, NaN handling, rounding, atomic replacement."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analysis.jsonio import dumps, to_jsonable, write_json


def test_numpy_pandas_and_paths_become_plain_json():
    obj = {"n": np.int64(7), "x": np.float32(0.5), "ok": np.bool_(True), "arr": np.array([1.5, np.nan]),
           "nan": float("nan"), "inf": np.inf, "ninf": -math.inf, "na": pd.NA, "nat": pd.NaT,
           "when": pd.Timestamp("2025-06-30 08:00"), "day": np.datetime64("2025-01-02"),
           "path": Path("/tmp/a.json"), 2025: {"nested": (np.int32(1), None, "文")},
           "s": pd.Series([1, 2]), "set": {"b", "a"}}
    out = json.loads(dumps(obj))
    assert out == {"n": 7, "x": 0.5, "ok": True, "arr": [1.5, None], "nan": None, "inf": None,
                   "ninf": None, "na": None, "nat": None, "when": "2025-06-30T08:00:00",
                   "day": "2025-01-02T00:00:00", "path": "/tmp/a.json", "2025": {"nested": [1, None, "文"]},
                   "s": [1, 2], "set": ["a", "b"]}
    assert type(out["n"]) is int and type(out["ok"]) is bool
    assert "文" in dumps(obj)  # Chinese kept as is, not \u escapes


def test_rounding_only_when_asked_and_bools_stay_bools():
    assert to_jsonable({"p": 0.123456789, "b": True, "i": 3}, 4) == {"p": 0.1235, "b": True, "i": 3}
    assert to_jsonable(0.123456789) == 0.123456789


def test_unknown_types_fail_with_the_type_name():
    with pytest.raises(TypeError, match="cannot write a object to JSON"):
        to_jsonable({"x": object()})


def test_write_is_atomic(tmp_path):
    path = tmp_path / "out" / "stage.json"
    write_json(path, {"a": np.float64(1.0)})
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": 1.0}
    with pytest.raises(TypeError):
        write_json(path, {"a": 2.0, "bad": object()})
    # the failed write left the old file untouched and no temporary file behind
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": 1.0}
    assert [p.name for p in path.parent.iterdir()] == ["stage.json"]


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(), kids, max_size=4),
                    max_leaves=20))
def test_round_trip_is_strict_json_and_keeps_finite_values(obj):
    text = dumps(obj)  # allow_nan=False: would raise on any NaN left behind
    back = json.loads(text)

    def same(a, b):
        if isinstance(a, float) and not math.isfinite(a):
            return b is None
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, list):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
        return a == b and type(a) is type(b)
    assert same(obj, back)


def test_written_file_has_ordinary_permissions(tmp_path):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        path = write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
