"""One run at a time on a city's processed folder: an advisory lock (flock) held for the whole run.

The operating system releases the lock when the holder dies, however it dies, so a killed
run never leaves a stale lock behind. The lock file names the holder for the message a
second run shows.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from .errors import UserError


class RunLocked(UserError):
    """Another run holds the processed folder."""


def lock_path(processed_root: Path, city: str) -> Path:
    return Path(processed_root) / f".{city}.lock"


def _try_lock(fh: IO[str]) -> bool:
    if os.name == "nt":  # pragma: no cover - Windows
        import msvcrt

        try:
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
        return f"process {info['pid']}, started {info['started']}"
    except (OSError, ValueError, KeyError):
        return "another process"


@contextmanager
def run_lock(processed_root: Path, city: str, wait: float = 0.0,
             on_wait: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold the city's lock; wait up to `wait` seconds for it (0: stop at once) and then raise RunLocked."""
    path = lock_path(processed_root, city)
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = path.open("a+", encoding="utf-8")
    try:
        deadline = time.monotonic() + wait
        told = False
        while not _try_lock(fh):
            if time.monotonic() >= deadline:
                raise RunLocked(f"another run is using {Path(processed_root) / city} ({_holder(path)}); "
                                "wait for it to finish, or pass --wait SECONDS to queue behind it")
            if not told and on_wait is not None:
                on_wait(f"waiting for the run using {Path(processed_root) / city} ({_holder(path)})")
                told = True
            time.sleep(0.5)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(),
                             "started": datetime.now(UTC).isoformat(timespec="seconds")}))
        fh.flush()
        yield path
    finally:
        fh.close()  # closing releases the lock
