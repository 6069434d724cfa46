"""Staged outputs: a task writes into a staging copy and its files move into place only on success.

The notebook runs with `processed_root` pointing at a staging root beside the real one:
its own output folder (<city>/<year>) is a copy of the real folder, every other entry of
<city>/ is a symbolic link to the real one, so upstream results read as usual. When the
whole notebook has succeeded, the files it wrote (new or rewritten) replace the real ones
and the files it deleted are deleted; a failed or killed run leaves the real folder as it
was (a stale staging folder is removed by the next run).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

STAGING = ".staging"
# outputs that may name the staging folder in their text (paths recorded in manifests and results)
TEXT_SUFFIXES = {".json", ".csv", ".md", ".txt", ".ipynb", ".yml", ".yaml", ".html"}


@dataclass
class Staging:
    real_root: Path     # the processed root
    root: Path          # the staging root handed to the notebook as processed_root
    own: Path           # relative folder the task writes (<city>/<year>)
    before: dict[str, tuple[int, int]] = field(default_factory=dict)  # file -> (size, mtime_ns)

    @property
    def real_own(self) -> Path:
        return self.real_root / self.own

    @property
    def staged_own(self) -> Path:
        return self.root / self.own


def staging_root(real_root: Path, city: str, name: str) -> Path:
    """A fixed place per task (the same on every run, so recorded paths do not change between runs)."""
    return Path(real_root) / STAGING / city / name


def clear_stale(real_root: Path, city: str) -> None:
    """Remove what a killed run left in the staging area."""
    shutil.rmtree(Path(real_root) / STAGING / city, ignore_errors=True)


def prepare(real_root: Path, city: str, own: Path, name: str) -> Staging:
    """Build the staging root for a task writing real_root/own (own = <city>/<year>)."""
    real_root = Path(real_root)
    root = staging_root(real_root, city, name)
    shutil.rmtree(root, ignore_errors=True)
    city_real = real_root / city
    city_real.mkdir(parents=True, exist_ok=True)
    city_staged = root / city
    city_staged.mkdir(parents=True)
    for entry in city_real.iterdir():
        if entry.name != own.name and not entry.name.startswith("."):
            (city_staged / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    st = Staging(real_root, root, Path(own))
    if st.real_own.is_dir():
        shutil.copytree(st.real_own, st.staged_own, symlinks=True, copy_function=shutil.copy2)
    else:
        st.staged_own.mkdir(parents=True)
    st.before = _listing(st.staged_own)
    return st


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            stat = path.stat()
            out[str(path.relative_to(folder))] = (stat.st_size, stat.st_mtime_ns)
    return out


def written(st: Staging) -> tuple[list[str], list[str]]:
    """Files of the task's folder the task wrote (new or rewritten) and the ones it deleted."""
    after = _listing(st.staged_own)
    new = sorted(rel for rel, sig in after.items() if st.before.get(rel) != sig)
    gone = sorted(rel for rel in st.before if rel not in after)
    return new, gone


def unstage_text(path: Path, st: Staging) -> None:
    """Replace the staging root by the real root in a text file's recorded paths."""
    if path.suffix not in TEXT_SUFFIXES:
        return
    data = path.read_bytes()
    pairs = [(str(st.root), str(st.real_root)), (str(st.root.resolve()), str(st.real_root.resolve()))]
    try:
        cwd = Path.cwd()
        pairs.append((os.path.relpath(st.root, cwd), os.path.relpath(st.real_root, cwd)))
    except ValueError:
        pass
    for old, new in pairs:
        data = data.replace(old.encode(), new.encode())
    path.write_bytes(data)


def commit(st: Staging) -> list[str]:
    """Move the task's files into place; returns them relative to the task's folder."""
    new, gone = written(st)
    for rel in new:
        unstage_text(st.staged_own / rel, st)
    for rel in new:
        target = st.real_own / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(st.staged_own / rel, target)
    for rel in gone:
        (st.real_own / rel).unlink(missing_ok=True)
    discard(st)
    return new


def discard(st: Staging) -> None:
    shutil.rmtree(st.root, ignore_errors=True)
