"""The runner: task planning, skipping up-to-date runs, and naming the failing notebook and cell."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from analysis import pipeline
from analysis.config import load_plan
from analysis.executors import LocalExecutor, SerialExecutor, make_executor
from analysis.pipeline import NotebookFailed, PipelineError, Stage, Task, plan_tasks, run_pipeline


@pytest.fixture
def plan_with_raw(tmp_path):
    """The real plan, reading raw files from a temporary folder with empty survey files."""
    plan = load_plan("zhanjiang")
    raw = tmp_path / "raw"
    (raw / "plan").mkdir(parents=True)
    (raw / "plan" / "zhanjiang.yml").write_bytes(plan.path.read_bytes())
    plan = load_plan("zhanjiang", raw)
    for year in (2016, 2020, 2021, 2023):
        path = plan.raw_survey_path(year)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("resp_id\n", encoding="utf-8")
    return plan


def test_plan_tasks_orders_stages_and_years(plan_with_raw):
    tasks, deps = plan_tasks(plan_with_raw, 2021)
    ids = [t.id for t in tasks]
    assert ids == ["01_clean[2016]", "01_clean[2020]", "01_clean[2021]",
                   "02_weight_estimate[2016]", "02_weight_estimate[2020]", "02_weight_estimate[2021]",
                   "03_trajectory[2021]", "04_county_gaps[2021]", "05_plan_progress[2021]"]
    assert deps[Task("02_weight_estimate", 2020)] == {Task("01_clean", 2020)}
    assert deps[Task("03_trajectory", 2021)] == {Task("02_weight_estimate", y) for y in (2016, 2020, 2021)}
    assert deps[Task("05_plan_progress", 2021)] == {Task("02_weight_estimate", y) for y in (2016, 2020, 2021)}
    for t in tasks:  # every prerequisite comes first
        assert all(ids.index(d.id) < ids.index(t.id) for d in deps[t])


def test_plan_tasks_rejects_unknown_stage_and_year(plan_with_raw):
    with pytest.raises(PipelineError, match="unknown stage"):
        plan_tasks(plan_with_raw, 2021, only={"09_nothing"})
    with pytest.raises(PipelineError, match="outside"):
        plan_tasks(plan_with_raw, 2031)


def test_plan_tasks_without_raw_data_says_how_to_get_it(tmp_path):
    plan = load_plan("zhanjiang")
    (tmp_path / "plan").mkdir()
    (tmp_path / "plan" / "zhanjiang.yml").write_bytes(plan.path.read_bytes())
    with pytest.raises(PipelineError, match="python -m analysis demo"):
        plan_tasks(load_plan("zhanjiang", tmp_path), 2025)


def _notebook(path: Path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('city = "x"\nyear = 2025\nraw_dir = None\nprocessed_root = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("import json, pathlib"), nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


TWO_STAGES = (Stage("a_first", "survey_year"), Stage("b_second", "report_year", ("a_first",)))


@pytest.mark.slow
def test_runner_runs_in_order_skips_up_to_date_and_names_failing_cell(plan_with_raw, tmp_path, monkeypatch):
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    writer = ("out = pathlib.Path(processed_root) / city / str(year)\nout.mkdir(parents=True, exist_ok=True)\n"
              "(out / 'a.json').write_text(json.dumps({'year': year}))\n"
              "(out / 'manifest-a_first.json').write_text('{}')")
    _notebook(nbdir / "a_first.ipynb", writer)
    _notebook(nbdir / "b_second.ipynb", "years = sorted(int(p.parent.name) for p in "
              "(pathlib.Path(processed_root) / city).glob('*/a.json'))\nassert years == [2016, 2020], years\n"
              "(pathlib.Path(processed_root) / city / str(year) / 'manifest-b_second.json').write_text('{}')")
    monkeypatch.setattr(pipeline, "NOTEBOOKS", nbdir)
    monkeypatch.setattr(pipeline, "STAGES", TWO_STAGES)
    monkeypatch.setattr(pipeline, "REPORTS", tmp_path / "reports")
    code = tmp_path / "code"  # a stable stand-in for the analysis package
    code.mkdir()
    (code / "stage.py").write_text("X = 1\n")
    monkeypatch.setattr(pipeline, "CODE_DIR", code)
    processed = tmp_path / "processed"
    real_plan_tasks = pipeline.plan_tasks
    monkeypatch.setattr(pipeline, "plan_tasks",
                        lambda plan, year, only=None: real_plan_tasks(plan, year, TWO_STAGES, only))
    lines: list[str] = []
    ran = run_pipeline(plan_with_raw, 2020, executor=make_executor("local", 2), processed_root=processed,
                       echo=lines.append)
    assert [t.id for t in ran][-1] == "b_second[2020]" and len(ran) == 3
    assert json.loads((processed / "zhanjiang" / "2016" / "a.json").read_text()) == {"year": 2016}
    assert any("done   b_second 2020" in ln for ln in lines)

    lines.clear()
    assert run_pipeline(plan_with_raw, 2020, executor=SerialExecutor(), processed_root=processed,
                        echo=lines.append) == []
    assert "3 of 3 notebook runs are up to date" in lines[0]

    (processed / "zhanjiang" / "2016" / "manifest-a_first.json").unlink()  # lost output: that task reruns
    assert [t.id for t in run_pipeline(plan_with_raw, 2020, executor=SerialExecutor(), processed_root=processed,
                                       echo=lines.append)] == ["a_first[2016]", "b_second[2020]"]

    (code / "stage.py").write_text("X = 2\n")  # a code change reruns everything
    assert len(run_pipeline(plan_with_raw, 2020, executor=SerialExecutor(), processed_root=processed,
                            echo=lines.append)) == 3

    _notebook(nbdir / "b_second.ipynb", "raise ValueError('county 440899 has no boundary')")
    with pytest.raises(NotebookFailed) as info:
        run_pipeline(plan_with_raw, 2020, executor=SerialExecutor(), processed_root=processed, echo=lines.append)
    msg = str(info.value)
    assert "b_second.ipynb" in msg and "cell 3 " in msg and "440899" in msg
    assert "raise ValueError" in msg


def test_make_executor_names():
    assert isinstance(make_executor("serial"), SerialExecutor)
    pool = LocalExecutor(1)
    assert pool.submit(sum, [1, 2, 3]).result() == 6
    pool.shutdown()
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor("dask-someday")
