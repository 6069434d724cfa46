"""Runs that are killed, that overlap, or that fail: nothing left behind, one clear message."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from test_pipeline import READER, WRITER, _notebook

from analysis import cli
from analysis.config import ROOT, load_plan
from analysis.errors import InputError
from analysis.runlock import RunLocked, run_lock


@pytest.fixture
def plan_with_raw(tmp_path):
    """The real plan, reading raw files from a temporary folder with empty survey files."""
    raw = tmp_path / "raw"
    (raw / "plan").mkdir(parents=True)
    (raw / "plan" / "zhanjiang.yml").write_bytes(load_plan("zhanjiang").path.read_bytes())
    plan = load_plan("zhanjiang", raw)
    for year in (2016, 2020, 2021, 2023):
        plan.raw_survey_path(year).parent.mkdir(parents=True, exist_ok=True)
        plan.raw_survey_path(year).write_text("resp_id\n", encoding="utf-8")
    return plan


RUN_TOY = '''
import sys
from pathlib import Path
from analysis import pipeline
from analysis.config import load_plan
from analysis.executors import LocalExecutor
from analysis.pipeline import Stage
from analysis.runlock import run_lock

if __name__ == "__main__":  # workers are spawned: they import this file without running it
    nbdir, raw, processed, executed = map(Path, sys.argv[1:5])
    stages = (Stage("a_first", "survey_year"), Stage("b_second", "report_year", ("a_first",)))
    pipeline.NOTEBOOKS, pipeline.STAGES = nbdir, stages
    real_plan_tasks = pipeline.plan_tasks
    pipeline.plan_tasks = lambda plan, year, only=None: real_plan_tasks(plan, year, stages, only)
    plan = load_plan("zhanjiang", raw)
    with run_lock(processed, plan.city):
        pipeline.run_pipeline(plan, 2020, executor=LocalExecutor(2), processed_root=processed,
                              executed_root=executed, echo=print)
'''


def _toy_run(tmp_path: Path, processed: Path) -> subprocess.Popen:
    script = tmp_path / "run_toy.py"
    script.write_text(RUN_TOY, encoding="utf-8")
    return subprocess.Popen([sys.executable, str(script), str(tmp_path / "notebooks"), str(tmp_path / "raw"),
                             str(processed), str(tmp_path / "executed")], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _files(root: Path) -> dict[str, bytes]:
    """Every output file below root except the runner's own (stamps, lock, caches: they hold times)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)}


@pytest.mark.slow
def test_a_killed_run_leaves_no_worker_and_the_rerun_matches_a_clean_run(plan_with_raw, tmp_path):
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    flag, started = tmp_path / "hold", tmp_path / "started"
    hold = (f"\nif pathlib.Path({str(flag)!r}).exists():\n"
            f"    pathlib.Path({str(started)!r}).write_text('x')\n"
            "    import time\n    time.sleep(600)")
    _notebook(nbdir / "a_first.ipynb", WRITER + hold)
    _notebook(nbdir / "b_second.ipynb", READER)

    clean = tmp_path / "clean"
    first = _toy_run(tmp_path, clean)
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out

    flag.write_text("hold")
    processed = tmp_path / "processed"
    run = _toy_run(tmp_path, processed)
    deadline = time.monotonic() + 300
    while not started.exists():
        assert run.poll() is None, run.stdout.read()
        assert time.monotonic() < deadline, "the toy notebook never started"
        time.sleep(0.2)
    family = psutil.Process(run.pid).children(recursive=True)
    assert any("ipykernel" in " ".join(p.cmdline()) for p in family)  # a kernel runs the notebook
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    gone, alive = psutil.wait_procs(family, timeout=20)
    assert alive == [], [p.cmdline() for p in alive]
    # the killed task wrote into its staging folder only
    assert not (processed / "zhanjiang" / "2016" / "a.json").exists()
    assert not (processed / "zhanjiang" / "2016" / ".done-a_first.json").exists()

    flag.unlink()
    rerun = _toy_run(tmp_path, processed)
    out, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, out
    assert _files(processed) == _files(clean) and len(_files(clean)) == 5
    assert not (processed / ".staging" / "zhanjiang").exists()


def test_a_second_run_on_the_same_city_stops_with_a_message(tmp_path):
    with run_lock(tmp_path, "zhanjiang"):
        with pytest.raises(RunLocked, match=rf"another run is using .*zhanjiang \(process {os.getpid()}, started "):
            with run_lock(tmp_path, "zhanjiang"):
                pass
        told: list[str] = []
        t0 = time.monotonic()
        with pytest.raises(RunLocked):
            with run_lock(tmp_path, "zhanjiang", wait=1.0, on_wait=told.append):
                pass
        assert time.monotonic() - t0 >= 1.0 and told and told[0].startswith("waiting for the run using")
    with run_lock(tmp_path, "zhanjiang"):  # released on leaving
        pass
    with run_lock(tmp_path, "other-city"), run_lock(tmp_path, "zhanjiang"):  # cities do not block each other
        pass


def test_the_lock_of_a_killed_run_is_free(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom analysis.runlock import run_lock\n"
                               f"with run_lock({str(tmp_path)!r}, 'zhanjiang'):\n    print('held', flush=True)\n"
                               "    time.sleep(600)"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunLocked):
        with run_lock(tmp_path, "zhanjiang"):
            pass
    holder.kill()
    holder.wait()
    with run_lock(tmp_path, "zhanjiang"):
        pass


def test_cli_run_while_another_holds_the_city_exits_1_with_one_message(plan_with_raw, tmp_path, capsys):
    processed = tmp_path / "processed"
    with run_lock(processed, "zhanjiang"):
        code = cli.main(["run", "--year", "2021", "--raw-dir", str(plan_with_raw.raw_dir),
                         "--processed-root", str(processed), "--no-report"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith("error: another run is using")
    assert not any("Traceback" in ln for ln in err)


def test_cli_user_errors_are_one_line_and_debug_shows_the_traceback(monkeypatch, capsys, tmp_path):
    def bad_input(args):
        raise InputError(tmp_path / "survey.csv", "not a division name: 12 characters", row=3, line=5,
                         column="county", expected="a division of the plan")

    monkeypatch.setattr(cli, "_run", bad_input)
    assert cli.main(["run"]) == 1
    err = capsys.readouterr().err
    assert err == (f"error: {tmp_path / 'survey.csv'}, row 3, line 5, column 'county': not a division name: "
                   "12 characters; expected a division of the plan\n")
    with pytest.raises(InputError):
        cli.main(["run", "--debug"])


def test_cli_plan_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "plan").mkdir()
    assert cli.main(["demo", "--city", "nowhere", "--raw-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no plan file") and err.count("\n") == 1


def test_render_refuses_results_that_are_not_current(plan_with_raw, tmp_path, capsys):
    assert cli.main(["render", "--year", "2021", "--raw-dir", str(plan_with_raw.raw_dir),
                     "--processed-root", str(tmp_path / "processed")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the results in data/processed are not current for 01_clean 2016")
    assert "python -m analysis run --year 2021" in err


def test_stamps_record_outputs_by_hash(plan_with_raw, tmp_path):
    from analysis import pipeline

    rp = pipeline.RunPlan(plan_with_raw, 2021, tmp_path)
    out = tmp_path / "zhanjiang" / "2016" / "x.json"
    out.parent.mkdir(parents=True)
    out.write_text("{}")
    task = rp.tasks[0]
    rp.record(task, rp.states[task], {"x.json": out}, 1.0, [])
    stamp = json.loads((tmp_path / "zhanjiang" / "2016" / f".done-{task.stage}.json").read_text())
    assert stamp["outputs"] == {"zhanjiang/2016/x.json": [provenance_sha(out), 2]}
    assert pipeline.RunPlan(plan_with_raw, 2021, tmp_path).states[task].up_to_date
    out.write_text("{ }")  # an output changed by hand (size differs): the task reruns
    assert pipeline.RunPlan(plan_with_raw, 2021, tmp_path).states[task].reasons == [
        "output zhanjiang/2016/x.json missing or changed"]


def provenance_sha(path: Path) -> str:
    from analysis.provenance import sha256

    return sha256(path)
