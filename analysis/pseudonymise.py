"""Personal data stops here: PII columns are dropped and resp_id becomes a keyed hash.

resp_key = HMAC-SHA256(key, resp_id) in hex. The key is never in the
repository: it comes from the environment variable SCILIT_PSEUDONYM_KEY or
from .secrets/pseudonym.key (git-ignored), which is created with random
bytes on first use. Keep that file: the same key gives the same resp_key in
every year and every run, so later linkage stays possible without the ids.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .config import ROOT
from .dictionary import load_dictionary
from .errors import UserError

log = logging.getLogger(__name__)

KEY_ENV = "SCILIT_PSEUDONYM_KEY"
KEY_FILE = ROOT / ".secrets" / "pseudonym.key"


def pseudonym_key(path: Path | None = None) -> bytes:
    """The HMAC key: env SCILIT_PSEUDONYM_KEY, else the key file (created when absent)."""
    env = os.environ.get(KEY_ENV)
    if env:
        return env.encode("utf-8")
    path = Path(path) if path is not None else KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        log.warning("no pseudonymisation key found: created %s with a new random key. Keep it "
                    "outside the repository and back it up; without it resp_key cannot be "
                    "reproduced. Set %s to use another key.", path, KEY_ENV)
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise UserError(f"pseudonymisation key file {path} is empty; expected the key written on first "
                        f"use (restore it from your backup, or set {KEY_ENV})")
    return key.encode("utf-8")


def resp_keys(ids: pd.Series, key: bytes) -> pd.Series:
    """HMAC-SHA256 hex digest of each id (missing stays missing).

    HMAC is computed from copies of the pre-keyed inner and outer SHA-256
    states (RFC 2104), which is about twice as fast as hmac.digest per call.
    """
    block = 64
    k = hashlib.sha256(key).digest() if len(key) > block else key
    k = k.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in k))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in k))
    values = ids.to_numpy(dtype=object, na_value=None)
    missing = np.array([v is None for v in values], dtype=bool)
    digests = []
    for v in values:
        h = inner.copy()
        h.update(b"" if v is None else str(v).encode("utf-8"))
        o = outer.copy()
        o.update(h.digest())
        digests.append(o.digest())
    hexed = b"".join(digests).hex().encode("ascii")
    n = len(values)
    offsets = np.arange(0, 64 * n + 1, 64, dtype=np.int64)
    arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(hexed))
    if missing.any():
        arr = pc.if_else(pa.array(missing), pa.scalar(None, pa.large_string()), arr)
    return pd.Series(pd.array(arr, dtype="str"), index=ids.index, name="resp_key")


def pseudonymise(df: pd.DataFrame, key: bytes) -> pd.DataFrame:
    """Drop PII (name, phone, ID card, address) and resp_id; add resp_key after `row`."""
    pii = [c for c in load_dictionary().pii if c in df.columns]
    out = df.drop(columns=[*pii, "resp_id"])
    out.insert(1 if "row" in out.columns else 0, "resp_key", resp_keys(df["resp_id"], key))
    if pii:
        log.info("dropped personal data columns: %s", ", ".join(pii))
    return out
