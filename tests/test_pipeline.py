"""The runner: task planning, skipping up-to-date runs, and naming the failing notebook and cell."""

from __future__ import annotations

import json
import shutil
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
    nb.cells = [params, nbformat.v4.new_code_cell("import json, pathlib\nfrom analysis import jsonio"),
                nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


TWO_STAGES = (Stage("a_first", "survey_year"), Stage("b_second", "report_year", ("a_first",)))
WRITER = ("out = pathlib.Path(processed_root) / city / str(year)\nout.mkdir(parents=True, exist_ok=True)\n"
          "(out / 'a.json').write_text(json.dumps({'year': year}))\n"
          "(out / 'manifest-a_first.json').write_text('{}')")
READER = ("years = sorted(int(p.parent.name) for p in (pathlib.Path(processed_root) / city).glob('*/a.json'))\n"
          "assert years == [2016, 2020], years\n"
          "(pathlib.Path(processed_root) / city / str(year) / 'manifest-b_second.json').write_text('{}')")


@pytest.fixture
def toy(plan_with_raw, tmp_path, monkeypatch):
    """Two toy stages (a_first per survey year, b_second for the report year) in a temporary project."""
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    _notebook(nbdir / "a_first.ipynb", WRITER)
    _notebook(nbdir / "b_second.ipynb", READER)
    monkeypatch.setattr(pipeline, "NOTEBOOKS", nbdir)
    monkeypatch.setattr(pipeline, "STAGES", TWO_STAGES)
    monkeypatch.setattr(pipeline, "REPORTS", tmp_path / "reports")
    code = tmp_path / "code" / "analysis"  # a copy of the package: the keys read its modules
    shutil.copytree(pipeline.CODE_DIR, code, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(pipeline, "CODE_DIR", code)
    real_plan_tasks = pipeline.plan_tasks
    monkeypatch.setattr(pipeline, "plan_tasks",
                        lambda plan, year, only=None: real_plan_tasks(plan, year, TWO_STAGES, only))
    return plan_with_raw, nbdir, code, tmp_path / "processed"


def _ids(tasks) -> list[str]:
    return [t.id for t in tasks]


@pytest.mark.slow
def test_runner_runs_in_order_skips_up_to_date_and_names_failing_cell(toy):
    plan, nbdir, code, processed = toy
    lines: list[str] = []
    ran = run_pipeline(plan, 2020, executor=make_executor("local", 2), processed_root=processed,
                       echo=lines.append)
    assert _ids(ran)[-1] == "b_second[2020]" and len(ran) == 3
    assert json.loads((processed / "zhanjiang" / "2016" / "a.json").read_text()) == {"year": 2016}
    assert any("done   b_second 2020" in ln for ln in lines)
    assert not (processed / ".staging" / "zhanjiang").exists()  # staging folders are gone

    lines.clear()
    assert run_pipeline(plan, 2020, executor=SerialExecutor(), processed_root=processed, echo=lines.append) == []
    assert "3 of 3 notebook runs are up to date" in lines[0]

    # lost output: that task reruns; it writes the same bytes, so what reads it is not rerun
    (processed / "zhanjiang" / "2016" / "manifest-a_first.json").unlink()
    lines.clear()
    assert _ids(run_pipeline(plan, 2020, executor=SerialExecutor(), processed_root=processed,
                             echo=lines.append)) == ["a_first[2016]"]
    assert any("skip   b_second 2020" in ln for ln in lines)

    # a module only the report uses reruns no notebook; a module the notebooks import reruns them
    (code / "report_text.py").write_text((code / "report_text.py").read_text() + "\n# wording\n")
    assert run_pipeline(plan, 2020, executor=SerialExecutor(), processed_root=processed, echo=lines.append) == []
    (code / "jsonio.py").write_text((code / "jsonio.py").read_text() + "\n# changed\n")
    assert len(run_pipeline(plan, 2020, executor=SerialExecutor(), processed_root=processed,
                            echo=lines.append)) == 3

    # an upstream output that changes reruns what reads it
    _notebook(nbdir / "a_first.ipynb", WRITER.replace("{'year': year}", "{'year': year, 'v': 2}"))
    assert _ids(run_pipeline(plan, 2020, executor=SerialExecutor(), processed_root=processed,
                             echo=lines.append)) == ["a_first[2016]", "a_first[2020]", "b_second[2020]"]

    # a failing notebook: named cell; the outputs and stamp of its last success stay as they were
    out = processed / "zhanjiang" / "2020"
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    _notebook(nbdir / "b_second.ipynb", "(pathlib.Path(processed_root) / city / str(year) / 'half.json')"
              ".write_text('{}')\n(pathlib.Path(processed_root) / city / str(year) / 'manifest-b_second.json')"
              ".write_text('{\"new\": 1}')\nraise ValueError(f'county 440899 has no boundary in {processed_root}')")
    with pytest.raises(NotebookFailed) as info:
        run_pipeline(plan, 2020, executor=SerialExecutor(), processed_root=processed, echo=lines.append)
    msg = str(info.value)
    assert "b_second.ipynb" in msg and "cell 3 " in msg and "440899" in msg
    assert "raise ValueError" in msg or "write_text" in msg
    assert f"has no boundary in {processed}\n" in msg  # the staging folder is not shown
    assert "b_second-2020-failed.ipynb" in msg and Path(msg.rsplit(": ", 1)[-1].strip()).is_file()
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert not (out / "half.json").exists()
    assert not (processed / ".staging" / "zhanjiang").exists()


def _all_stamped(plan, year, processed, langs=("zh",)) -> None:
    """Record every task as done (as if it had run and written nothing), upstream first."""
    rp = pipeline.RunPlan(plan, year, processed, langs=langs)
    for t in rp.tasks:
        rp.record(t, rp.assess(t), {}, 0.0, [])
    assert pipeline.RunPlan(plan, year, processed, langs=langs).pending == []


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture
def stamped(plan_with_raw, tmp_path, monkeypatch):
    """The real notebooks and report planned against a temporary copy of reports/ and analysis/."""
    reports = tmp_path / "project" / "reports"
    shutil.copytree(pipeline.REPORTS, reports, ignore=shutil.ignore_patterns("executed", "output"))
    monkeypatch.setattr(pipeline, "REPORTS", reports)
    code = tmp_path / "project" / "analysis"
    shutil.copytree(pipeline.CODE_DIR, code, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(pipeline, "CODE_DIR", code)
    processed = tmp_path / "processed"
    _all_stamped(plan_with_raw, 2021, processed)
    return plan_with_raw, processed, reports, code


def _would_run(plan, processed, year=2021) -> dict[str, list[str]]:
    rp = pipeline.RunPlan(plan, year, processed, langs=("zh",))
    return {t.id: rp.states[t].reasons for t in rp.pending}


def test_dry_run_after_report_wording_edit_lists_the_report_alone(stamped):
    plan, processed, reports, code = stamped
    _edit(reports / "sections" / "_summary.qmd", "```", "<!-- wording -->\n```")
    assert _would_run(plan, processed) == {"report-zh[2021]": ["report template or sections changed"]}
    _all_stamped(plan, 2021, processed)
    report_only = {"report_text.py", "report_format.py", "qmd.py"}
    for name in report_only:  # the static import analysis finds no notebook that imports them
        (code / name).write_text((code / name).read_text() + "\n# edit\n")
    assert _would_run(plan, processed) == {"report-zh[2021]": [f"analysis/{n} changed" for n in sorted(report_only)]}


def test_dry_run_after_cleaning_threshold_edit_lists_stage_01_and_its_dependants(stamped):
    plan, processed, _, _ = stamped
    _edit(plan.path, "min_duration_minutes: 8.0", "min_duration_minutes: 9.0")
    plan = load_plan("zhanjiang", plan.raw_dir)
    rp = pipeline.RunPlan(plan, 2021, processed, langs=("zh",))
    years = (2016, 2020, 2021)
    assert {t.id for t in rp.pending} == ({f"01_clean[{y}]" for y in years} | {f"02_weight_estimate[{y}]" for y in years}
                                          | {"03_trajectory[2021]", "04_county_gaps[2021]", "05_plan_progress[2021]",
                                             "report-zh[2021]"})
    for t in rp.pending:
        s = rp.states[t]
        if t.stage == "01_clean":
            assert s.reasons == ["plan file: survey.cleaning changed"] and s.after == []
        elif t.stage == "report-zh":
            assert s.reasons == ["plan file: survey.cleaning changed"]  # the report lists the thresholds
        else:  # only because stage 01 reruns: skipped if its outputs come out the same
            assert s.reasons == [] and s.after, t
    assert rp.states[Task("02_weight_estimate", 2020)].after == ["01_clean[2020]"]
    text = "\n".join(rp.describe())
    assert "01_clean 2016" in text and "after 01_clean[2016]" in text


def test_dry_run_after_one_years_scoring_rule_edit_lists_that_year_only(stamped):
    plan, processed, _, _ = stamped
    _edit(plan.path, "    2016: three_dimension", "    2016: score")
    plan = load_plan("zhanjiang", plan.raw_dir)
    assert set(_would_run(plan, processed)) == {"01_clean[2016]", "02_weight_estimate[2016]", "03_trajectory[2021]",
                                                "04_county_gaps[2021]", "05_plan_progress[2021]", "report-zh[2021]"}


def test_dry_run_after_trajectory_settings_edit_lists_stage_03_and_the_report(stamped):
    plan, processed, _, _ = stamped
    _edit(plan.path, "backtest_fit_until: 2020", "backtest_fit_until: 2016")
    plan = load_plan("zhanjiang", plan.raw_dir)
    assert _would_run(plan, processed) == {"03_trajectory[2021]": ["plan file: trajectory.backtest_fit_until changed"],
                                           "report-zh[2021]": ["plan file: trajectory.backtest_fit_until changed"]}


def test_dry_run_after_a_raw_file_edit_names_the_file(stamped):
    plan, processed, _, _ = stamped
    plan.raw_survey_path(2020).write_text("resp_id\n1\n", encoding="utf-8")
    runs = _would_run(plan, processed)
    assert runs["01_clean[2020]"] == ["input " + str(plan.raw_survey_path(2020).resolve()) + " changed"]
    assert "01_clean[2016]" not in runs


def test_cli_dry_run_prints_tasks_and_reasons(stamped, capsys):
    from analysis.cli import main

    plan, processed, reports, _ = stamped
    _edit(reports / "sections" / "_summary.qmd", "```", "<!-- wording -->\n```")
    assert main(["run", "--year", "2021", "--dry-run", "--raw-dir", str(plan.raw_dir),
                 "--processed-root", str(processed)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "would run 1 of 10 tasks:"
    assert out[1].split() == ["report-zh", "2021", "report", "template", "or", "sections", "changed"]


def test_make_executor_names():
    assert isinstance(make_executor("serial"), SerialExecutor)
    pool = LocalExecutor(1)
    assert pool.submit(sum, [1, 2, 3]).result() == 6
    pool.shutdown()
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor("dask-someday")


def test_progress_bar_names_the_running_task_and_counts_tasks():
    import io

    from analysis.progress_bar import TaskBar

    assert TaskBar.for_terminal(io.StringIO()) is None  # no terminal: plain lines instead
    out = io.StringIO()
    bar = TaskBar(out)
    bar.begin(3, 1)
    bar.start(2, 3, Task("02_weight_estimate", 2020))
    assert "running 02_weight_estimate 2020" in out.getvalue()
    bar.finish(2, 3, Task("02_weight_estimate", 2020), 1.0)
    bar.skip(3, 3, Task("03_trajectory", 2020))
    bar.close()
    assert "3/3 tasks" in out.getvalue()


def _fake_notebook(source, year, params, executed, retries=2, log_file=None, verbose=False):
    """Stands in for papermill: each toy stage writes fixed files into the (staging) folder it is given."""
    stage = Path(source).stem
    out = Path(params["processed_root"]) / params["city"] / str(year)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stage}.json").write_text(json.dumps({"year": year}))
    (out / f"manifest-{stage}.json").write_text("{}")
    return 0.01


def test_a_task_skipped_after_an_unchanged_upstream_lets_the_tasks_after_it_run(toy, monkeypatch):
    plan, nbdir, _, processed = toy
    three = (*TWO_STAGES, Stage("c_third", "report_year", ("b_second",)))
    _notebook(nbdir / "c_third.ipynb", "pass")
    monkeypatch.setattr(pipeline, "STAGES", three)
    monkeypatch.setattr(pipeline, "plan_tasks", lambda plan, year, only=None: plan_tasks(plan, year, three, only))
    monkeypatch.setattr(pipeline, "execute_notebook", _fake_notebook)
    lines: list[str] = []
    assert len(run_pipeline(plan, 2020, processed_root=processed, echo=lines.append)) == 4
    (processed / "zhanjiang" / "2016" / "a_first.json").unlink()
    lines.clear()
    assert _ids(run_pipeline(plan, 2020, processed_root=processed, echo=lines.append)) == ["a_first[2016]"]
    assert [ln.split("skip", 1)[1].split()[0] for ln in lines if " skip " in ln] == ["b_second", "c_third"]
    _notebook(nbdir / "b_second.ipynb", "# changed")  # b reruns, writes the same: c is skipped
    assert _ids(run_pipeline(plan, 2020, processed_root=processed, echo=lines.append)) == ["b_second[2020]"]


def test_plan_keys_read_by_some_stages_only_are_read_by_no_other_stage():
    """A module reading a plan key listed in PLAN_KEYS_READ_ONLY_BY is imported only by the listed stages."""
    import re

    from analysis.imports import ImportGraph
    from analysis.task_inputs import PLAN_KEYS_READ_ONLY_BY

    graph = ImportGraph(pipeline.CODE_DIR)
    closures = {s.name: graph.closure_of_source(pipeline.NOTEBOOKS / f"{s.name}.ipynb") for s in pipeline.STAGES}
    checked = 0
    for key, readers in PLAN_KEYS_READ_ONLY_BY.items():
        pattern = re.compile(r"""(plan\.get\(\s*f?["']|plan\.data\[["'])""" + re.escape(key) + r"""[."'\]]""")
        modules = {m for m, path in graph.files.items() if pattern.search(path.read_text(encoding="utf-8"))}
        checked += len(modules)
        for stage, closure in closures.items():
            if stage not in readers:
                assert not modules & closure, f"{stage} imports {sorted(modules & closure)}, which read plan key {key}"
    assert checked >= 5  # the check found the readers it guards


def test_only_runs_the_named_stages_with_the_same_keys_as_a_full_run(toy, monkeypatch):
    plan, nbdir, _, processed = toy
    monkeypatch.setattr(pipeline, "execute_notebook", _fake_notebook)
    assert len(run_pipeline(plan, 2020, processed_root=processed, echo=print)) == 3
    assert run_pipeline(plan, 2020, processed_root=processed, only={"b_second"}, echo=print) == []
    _notebook(nbdir / "a_first.ipynb", "# changed")
    assert _ids(run_pipeline(plan, 2020, processed_root=processed, only={"a_first"}, echo=print)) == [
        "a_first[2016]", "a_first[2020]"]
    assert pipeline.RunPlan(plan, 2020, processed).pending == []  # b_second reads outputs that came out the same
