"""One JSON writer for stage outputs: plain types, NaN/inf as null, atomic write."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def to_jsonable(obj: Any, ndigits: int | None = None) -> Any:
    """obj as JSON-ready Python: numpy scalars/arrays, pandas NA/Timestamps, Paths, sets.

    Non-finite floats become None (JSON has no NaN); floats are rounded to `ndigits`
    when given. Dict keys become strings; tuples and sets lists (sets sorted).
    """
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, ndigits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, ndigits) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return [to_jsonable(v, ndigits) for v in sorted(obj, key=str)]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if not math.isfinite(x):
            return None
        return round(x, ndigits) if ndigits is not None else x
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist(), ndigits)
    if isinstance(obj, (pd.Series, pd.Index)):
        return to_jsonable(obj.tolist(), ndigits)
    if isinstance(obj, pd.DataFrame):
        return to_jsonable(obj.to_dict(orient="records"), ndigits)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (pd.Timestamp, dt.datetime, dt.date)):
        return None if pd.isna(obj) else obj.isoformat()
    if isinstance(obj, np.datetime64):
        return None if np.isnat(obj) else pd.Timestamp(obj).isoformat()
    if obj is pd.NaT or obj is pd.NA:
        return None
    raise TypeError(f"cannot write a {type(obj).__name__} to JSON: {obj!r}")


def dumps(obj: Any, ndigits: int | None = None) -> str:
    """Strict JSON text (UTF-8 Chinese kept, indented) of to_jsonable(obj)."""
    return json.dumps(to_jsonable(obj, ndigits), ensure_ascii=False, indent=2, allow_nan=False)


def write_json(path: Path, obj: Any, ndigits: int | None = None) -> Path:
    """Write obj as JSON to path atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    text = dumps(obj, ndigits)  # fails before anything is written
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
