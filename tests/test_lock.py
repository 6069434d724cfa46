"""The lock file: what `make install` installs, what environment.yml pins, what runs check against."""

from __future__ import annotations

import re

import pytest
import yaml

from analysis import conda_env, provenance
from analysis.cli import main
from analysis.config import ROOT, load_plan
from analysis.provenance import LOCK_FILE, environment_differences, locked_versions, sha256


def test_installed_versions_equal_the_lock():
    """CI installs with `make test`, i.e. from the lock: every locked package is installed at its version."""
    assert environment_differences() == []


def test_every_pin_is_exact_and_hashed():
    text = LOCK_FILE.read_text(encoding="utf-8")
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    pins = [b for b in blocks if "==" in b.split("\n", 1)[0]]
    assert len(pins) > 80
    for block in pins:
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), block.split("\n", 1)[0]
    assert not re.search(r"^[A-Za-z0-9_.-]+\s*(>=|<=|~=|>|<)", text, re.MULTILINE)  # no ranges


@pytest.mark.parametrize("python", ["3.11.9", "3.12.8", "3.13.1"])
def test_lock_covers_python_311_to_313_on_linux_and_every_dependency(python):
    env = dict(conda_env.MARKER_ENVIRONMENT, python_full_version=python, python_version=python[:4])
    pins = locked_versions(LOCK_FILE, env)
    missing = [n for n in conda_env.direct_dependencies() if n not in pins]
    assert missing == []


def test_make_lock_is_universal():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "uv pip compile pyproject.toml --extra dev --universal --generate-hashes" in makefile
    assert "--require-hashes --no-deps -r $(LOCK)" in makefile


def test_environment_yml_pins_the_versions_of_the_lock():
    text = (ROOT / "environment.yml").read_text(encoding="utf-8")
    assert text == conda_env.environment_yml(LOCK_FILE)  # `make lock` wrote it from this lock
    pins = locked_versions(LOCK_FILE, conda_env.MARKER_ENVIRONMENT)
    deps = yaml.safe_load(text)["dependencies"]
    listed = [d for d in deps if isinstance(d, str)] + next(d["pip"] for d in deps if isinstance(d, dict))
    pinned = {provenance._normalise(s.split("==")[0]): s.split("==")[1] for s in listed if "==" in s}
    assert set(pinned) == set(conda_env.direct_dependencies())
    assert all(pins[name] == version for name, version in pinned.items())


def test_manifest_records_the_lock_hash(tmp_path):
    import json

    path = provenance.write_manifest(tmp_path, "x_stage", [], [], {"year": 2025})
    manifest = json.loads(path.read_text(encoding="utf-8"))
    assert manifest["lock"]["sha256"] == sha256(LOCK_FILE) and manifest["lock"]["file"] == "requirements.lock"
    assert manifest["packages"]["requirements.lock"].startswith(f"sha256 {sha256(LOCK_FILE)[:12]}")


@pytest.fixture
def other_lock(tmp_path, monkeypatch):
    """A lock that pins another numpy than the installed one."""
    import numpy

    lock = tmp_path / "requirements.lock"
    lock.write_text("numpy==0.0.1 \\\n    --hash=sha256:" + "0" * 64 + "\n"
                    f"pyyaml=={yaml.__version__} \\\n    --hash=sha256:" + "1" * 64 + "\n", encoding="utf-8")
    monkeypatch.setattr(provenance, "LOCK_FILE", lock)
    return numpy.__version__


@pytest.fixture
def raw_with_plan(tmp_path):
    plan = load_plan("zhanjiang")
    raw = tmp_path / "raw"
    (raw / "plan").mkdir(parents=True)
    (raw / "plan" / "zhanjiang.yml").write_bytes(plan.path.read_bytes())
    plan = load_plan("zhanjiang", raw)
    for year in plan.survey_years:
        plan.raw_survey_path(year).parent.mkdir(parents=True, exist_ok=True)
        plan.raw_survey_path(year).write_text("resp_id\n", encoding="utf-8")
    return raw


def test_a_run_off_the_lock_warns_with_the_packages_and_strict_refuses(other_lock, raw_with_plan, tmp_path, capsys):
    assert environment_differences(provenance.LOCK_FILE) == [("numpy", "0.0.1", other_lock)]
    args = ["run", "--dry-run", "--raw-dir", str(raw_with_plan), "--processed-root", str(tmp_path / "p")]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"warning: the installed packages differ from requirements.lock in 1 package(s): numpy {other_lock} (lock 0.0.1)" in err
    assert main([*args, "--strict"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the installed packages differ") and "--strict refuses" in err
    assert "Traceback" not in err
