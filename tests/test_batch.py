"""Batch runs: a 3-city batch on a 2-worker Dask LocalCluster gives the serial executor's outputs byte for
byte; a worker killed mid-task does not stop the batch; a failing city stops only its own downstream tasks;
the provincial report renders with the synthetic notice."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from pypdf import PdfReader

from analysis.batch import find_plans, plan_batch, run_batch
from analysis.config import RAW
from analysis.synth_province import build_province_demo

pytest.importorskip("distributed")

CODES = ["440400", "441500", "445100"]        # 珠海, 汕尾, 潮州: 3-4 divisions each, the smallest maps
YEARS = [2020, 2025]
# files whose bytes may differ between two runs: run times, staging and lock files, caches
VOLATILE_JSON_KEYS = {"created", "finished", "seconds", "code_version"}


def _raw(tmp: Path, n: int = 300) -> Path:
    raw = tmp / "raw"
    for sub in ("plan", "benchmarks", "census"):
        shutil.copytree(RAW / sub, raw / sub)
    build_province_demo("440000", raw, n_per_year=n, years=YEARS, only=CODES, echo=lambda msg: None)
    return raw


def _plans(raw: Path):
    return find_plans([str(raw / "province" / "440000" / "*" / "plan" / "*.yml")], None, raw)


def _run(raw: Path, root: Path, executor: str, **kw):
    lines: list[str] = []
    summary = run_batch(_plans(raw), 2025, executor=executor, processed_root=root / "processed", raw_dir=raw,
                        langs=(), executed_root=root / "executed", report_out_dir=root / "out",
                        echo=lines.append, **kw)
    return summary, lines


def _comparable(path: Path) -> bytes:
    """A file's bytes, run times taken out of manifests and stamps (they carry when the run happened)."""
    data = path.read_bytes()
    if path.suffix == ".json" and (path.name.startswith(("manifest-", ".done-"))):
        obj = json.loads(data)
        for k in VOLATILE_JSON_KEYS:
            obj.pop(k, None)
        # a stamp lists its manifest's hash, and the manifest holds the run time: compared on its own above
        obj["outputs"] = {k: v for k, v in obj.get("outputs", {}).items() if "manifest-" not in k}
        return json.dumps(obj, sort_keys=True).encode()
    return data


def _outputs(root: Path) -> dict[str, bytes]:
    files = {}
    for p in sorted((root / "processed").rglob("*")):
        rel = p.relative_to(root / "processed")
        if p.is_file() and not rel.parts[0].startswith(".") and not p.name.endswith(".lock"):
            files[str(rel)] = _comparable(p)
    return files


@pytest.fixture(scope="module")
def serial_and_dask(tmp_path_factory):
    """The same 3-city province run serially and on Dask, at the same paths (outputs record paths)."""
    tmp = tmp_path_factory.mktemp("batch")
    raw = _raw(tmp)
    work = tmp / "work"
    serial, serial_lines = _run(raw, work, "serial", province_code="440000")
    serial_files = _outputs(work)
    shutil.move(work, tmp / "serial")
    dask, dask_lines = _run(raw, work, "dask", workers=2, province_code="440000")
    return raw, tmp / "serial", work, serial, dask, serial_files, _outputs(work), dask_lines


@pytest.mark.slow
def test_dask_outputs_are_byte_identical_to_serial(serial_and_dask):
    _, _, _, serial, dask, serial_files, dask_files, lines = serial_and_dask
    assert not serial.failures and not dask.failures, serial.lines() + dask.lines()
    # 3 cities x (2 x 01, 2 x 02, 03, 04, 05) and the provincial stage
    assert dask.count("ran") == serial.count("ran") == 3 * 7 + 1
    assert set(serial_files) == set(dask_files)
    assert sum(f.endswith(".parquet") for f in serial_files) >= 3 * 10
    different = [f for f in serial_files if serial_files[f] != dask_files[f]]
    assert different == []
    assert any("started a local Dask cluster: 2 worker processes" in ln for ln in lines)
    assert any("all 2 workers see the processed folder" in ln for ln in lines)
    assert sum(ln.startswith("[") for ln in lines) == 22               # one progress line per task


@pytest.mark.slow
def test_provincial_stage_results(serial_and_dask):
    raw, _, work, *_ = serial_and_dask
    out = work / "processed" / "province-440000" / "2025"
    league = pd.read_parquet(out / "league.parquet")
    assert sorted(league["code"]) == CODES and league["rank"].tolist() == [1, 2, 3]
    assert league["latest_estimate"].is_monotonic_decreasing
    assert ((league["rank_low"] <= league["rank"]) & (league["rank"] <= league["rank_high"])).all()
    prov = pd.read_parquet(out / "province_estimates.parquet").dropna(subset=["estimate"]).set_index("year")
    cities = pd.read_parquet(out / "city_estimates.parquet")
    w = league.set_index("city")["population"]
    for year, g in cities.groupby("year"):
        expected = (g.set_index("city")["estimate"] * w).sum() / w.sum()
        assert prov.loc[year, "estimate"] == pytest.approx(expected, rel=1e-12)
    summary = json.loads((out / "province.json").read_text(encoding="utf-8"))
    assert summary["n_cities"] == 3 and summary["n_synthetic"] == 3 and summary["benchmark_scope"] == "guangdong"


@pytest.mark.slow
def test_second_batch_submits_no_city_task_and_skips_the_province(serial_and_dask):
    raw, _, work, *_ = serial_and_dask
    summary, lines = _run(raw, work, "serial", province_code="440000")
    assert summary.up_to_date == 3 * 7
    assert [r["status"] for r in summary.results.values()] == ["skipped"]   # the provincial stage, unchanged


@pytest.mark.slow
def test_provincial_pdf_has_notice_league_table_estimate_and_map(serial_and_dask):
    from analysis.province_report import render_province

    _, _, work, *_ = serial_and_dask
    files = render_province("province-440000", 2025, processed_root=work / "processed", out_dir=work / "out",
                            engine="offline", work_dir=work / "render")
    reader = PdfReader(str(files["pdf"]))
    first = reader.pages[0].extract_text()
    assert "合成数据" in first and "各市比较" in first
    text = "".join(p.extract_text() for p in reader.pages)
    for words in ("各市排行", "全省估计与公布值", "排名的不确定性", "珠海市", "汕尾市", "潮州市"):
        assert words in text
    assert sum(len(p.images) for p in reader.pages) == 3                 # map, estimate vs published, ranks


CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
ENGLISH_ALLOWED_CHINESE: list[str] = []   # the English provincial report names nothing in Chinese on purpose


@pytest.mark.slow
def test_english_provincial_pdf_has_no_chinese_and_the_synthetic_notice_first(serial_and_dask):
    from analysis.province_report import render_province

    _, _, work, *_ = serial_and_dask
    files = render_province("province-440000", 2025, lang="en", processed_root=work / "processed",
                            out_dir=work / "out-en", engine="offline", work_dir=work / "render-en")
    assert files["pdf"].name == "province-440000-2025-comparison-en.pdf"
    reader = PdfReader(str(files["pdf"]))
    first = " ".join(reader.pages[0].extract_text().split())
    assert "SYNTHETIC" in first and "do not cite them" in first
    text = re.sub(r"\s+", "", "".join(p.extract_text() for p in reader.pages))
    for allowed in ENGLISH_ALLOWED_CHINESE:
        text = text.replace(allowed, "")
    stray = sorted({m.group(0) for m in re.finditer(r".{0,12}" + CJK.pattern + r"+.{0,12}", text)})
    assert not stray, f"Chinese text in the English provincial report: {stray[:10]}"
    for city in ("Zhuhai", "Shanwei", "Chaozhou"):
        assert city in text
    # its figures are the English ones (every text a figure draws is kept in its PNG metadata)
    from PIL import Image

    assert sum(len(p.images) for p in reader.pages) == 3
    for name in ("province_map.png", "province_vs_published.png", "rank_intervals.png"):
        drawn = Image.open(work / "processed" / "province-440000" / "2025" / "figures" / "en" / name).info["Description"]
        assert re.search(r"[A-Za-z]{4}", drawn) and not CJK.search(drawn), (name, drawn[:200])


# --- a lost worker and a failing city ------------------------------------------------------------

def _kill_a_busy_worker(address: str, avoid: str, done: threading.Event, killed: list[str]) -> None:
    """Wait until a worker is running a task (not of the city `avoid`), then SIGKILL its process."""
    from distributed import Client

    with Client(address, timeout="30s") as client:
        pids = client.run(os.getpid)
        while not done.is_set():
            busy = {w: keys for w, keys in client.processing().items() if keys}
            for worker, keys in busy.items():
                if any(avoid not in str(k) for k in keys):
                    time.sleep(2.0)  # mid-task: the notebook is running
                    os.kill(pids[worker], signal.SIGKILL)
                    killed.append(worker)
                    return
            time.sleep(0.2)


@pytest.mark.slow
def test_killed_worker_is_survived_and_a_failing_city_stops_only_itself(tmp_path):
    from distributed import LocalCluster

    raw = _raw(tmp_path, n=200)
    broken = raw / "province" / "440000" / "shanwei-synthetic" / "survey" / "shanwei-synthetic-2020-synthetic.csv"
    broken.write_text("这不是调查数据\n1,2\n", encoding="utf-8")
    only = {"01_clean", "02_weight_estimate"}
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=50)
    done, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_a_busy_worker,
                              args=(cluster.scheduler_address, "shanwei", done, killed), daemon=True)
    killer.start()
    try:
        summary, _ = _run(raw, tmp_path / "run", "dask", scheduler=cluster.scheduler_address, only=only)
    finally:
        done.set()
        cluster.close()
    assert killed, "no worker was killed: the batch finished before one was busy"
    status = {k: r["status"] for k, r in summary.results.items()}
    assert status.pop("shanwei-synthetic/01_clean[2020]") == "failed"
    assert status.pop("shanwei-synthetic/02_weight_estimate[2020]") == "blocked"
    assert set(status.values()) == {"ran"} and len(status) == 3 * 4 - 2, summary.lines()
    lines = summary.lines()
    assert any(ln.startswith("FAILED shanwei-synthetic/01_clean[2020]") for ln in lines)
    assert any("not run because of it: shanwei-synthetic/02_weight_estimate[2020]" in ln for ln in lines)
    for city in ("zhuhai", "chaozhou"):
        for y in YEARS:
            assert (tmp_path / "run" / "processed" / f"{city}-synthetic" / str(y) / "estimates.parquet").is_file()


# --- the shared-folder check ------------------------------------------------------------------------

class _FakeClient:
    def __init__(self, blind: bool):
        self.blind = blind

    def run(self, fn, path):
        good = fn(path)
        return {"tcp://a:1": good, "tcp://b:2": "<unreadable: FileNotFoundError>" if self.blind else good}


def test_shared_folder_check_names_the_workers_that_cannot_see_it(tmp_path):
    from analysis.dask_executor import ClusterError, check_shared_folder

    assert check_shared_folder(_FakeClient(blind=False), tmp_path) == 2
    with pytest.raises(ClusterError, match=r"1 of 2 Dask workers do not see the processed folder .*tcp://b:2"):
        check_shared_folder(_FakeClient(blind=True), tmp_path)
    assert list((tmp_path / ".cache").iterdir()) == []                  # the token is removed


def test_plan_batch_chains_a_city_and_the_province(tmp_path):
    raw = _raw(tmp_path, n=120)
    bp = plan_batch(_plans(raw)[:2], 2025, tmp_path / "processed", raw, langs=("zh",), province_code="440000")
    ids = {n.id: n for n in bp.nodes}
    city = "chaozhou-synthetic"                     # plans come sorted by path
    assert ids[f"{city}/02_weight_estimate[2025]"].deps == (f"{city}/01_clean[2025]",)
    assert set(ids[f"{city}/03_trajectory[2025]"].deps) == {f"{city}/02_weight_estimate[{y}]" for y in YEARS}
    province_deps = ids["province-440000/06_province[2025]"].deps
    assert f"{city}/report-zh[2025]" not in province_deps and f"{city}/04_county_gaps[2025]" not in province_deps
    assert f"{city}/05_plan_progress[2025]" in province_deps
    assert ids["province-440000/report-zh[2025]"].deps == ("province-440000/06_province[2025]",)
    assert bp.total_tasks == 2 * (7 + 1) + 2 and bp.up_to_date == 0


def test_dask_executor_gives_the_runner_concurrent_futures(tmp_path, monkeypatch):
    """`run --executor dask`: the runner's submit/wait protocol on a local Dask cluster."""
    from concurrent.futures import wait

    from analysis.executors import make_executor

    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    monkeypatch.chdir(tmp_path)
    ex = make_executor("dask", 1)
    try:
        assert ex._max_workers == 1
        ok, bad = ex.submit(pow, 2, 10), ex.submit(int, "not a number")
        wait([ok, bad])
        assert ok.result() == 1024
        with pytest.raises(ValueError):
            bad.result()
    finally:
        ex.shutdown()


def test_cities_of_one_province_get_the_provincial_stage():
    from types import SimpleNamespace

    from analysis.batch import common_province

    def plans(*codes):
        return [SimpleNamespace(code=c) for c in codes]

    assert common_province(plans("440100", "440800")) == "440000"
    assert common_province(plans("440800")) is None                     # one city: nothing to compare
    assert common_province(plans("440100", "110100")) is None           # two provinces



# --- cities without county-level divisions (不设区的地级市) ---------------------------------------

NO_DIVISIONS = ["441900", "442000"]             # 东莞, 中山: towns and streets directly under the city
NO_DIVISION_YEARS = [2020, 2023, 2025]          # three survey years: the report's trend section needs more than two


@pytest.mark.slow
def test_cities_without_county_divisions_run_end_to_end(tmp_path):
    from analysis.config import load_plan
    from analysis.render import render

    raw = tmp_path / "raw"
    for sub in ("plan", "benchmarks", "census"):
        shutil.copytree(RAW / sub, raw / sub)
    build_province_demo("440000", raw, n_per_year=800, years=NO_DIVISION_YEARS, only=NO_DIVISIONS,
                        echo=lambda msg: None)
    summary, _ = _run(raw, tmp_path / "run", "serial", province_code="440000")
    assert not summary.failures, summary.lines()
    assert summary.count("ran") == 2 * (3 + 3 + 3) + 1                  # 01, 02 per year, 03-05; the province
    processed = tmp_path / "run" / "processed"
    for city in ("dongguan-synthetic", "zhongshan-synthetic"):
        out = processed / city / "2025"
        gaps = json.loads((out / "county_gaps.json").read_text(encoding="utf-8"))
        assert gaps["divisions_status"] == "no_county_divisions" and gaps["model"]["method"] is None
        assert gaps["maps"]["files"] == {} and not list((out / "figures").glob("map_*.png"))
        assert len(pd.read_parquet(out / "sae.parquet")) == 0
        assert gaps["inequality"]["first_year"] == 2020 and "divisions" not in gaps["inequality"]
        traj = json.loads((out / "trajectory.json").read_text(encoding="utf-8"))
        assert traj["latest_year"] == 2025 and 0 < traj["latest_estimate"] < 100
    league = pd.read_parquet(processed / "province-440000" / "2025" / "league.parquet")
    assert sorted(league["code"]) == NO_DIVISIONS and league["latest_estimate"].notna().all()
    # the city report: the division section is one sentence, in either language; no division map
    plan = load_plan("dongguan-synthetic", raw / "province" / "440000" / "dongguan-synthetic")
    for lang, sentence in (("zh", "本市不设县级行政区划"), ("en", "The city has no county-level divisions")):
        files = render(plan, 2025, lang=lang, processed_root=processed, out_dir=tmp_path / "out", engine="offline",
                       work_dir=tmp_path / "render")
        text = " ".join(p.extract_text() for p in PdfReader(str(files["pdf"])).pages)
        flat = "".join(text.split()) if lang == "zh" else " ".join(text.split())
        assert sentence in flat


def test_run_and_batch_take_the_same_executor_options(tmp_path, capsys):
    from distributed import LocalCluster

    from analysis.cli import build_parser, main
    from analysis.executors import make_executor

    parser = build_parser()
    for command in (["run"], ["batch", "--province", "440000"]):
        args = parser.parse_args([*command, "--executor", "dask", "--scheduler", "tcp://head:8786", "--workers", "4"])
        assert (args.executor, args.scheduler, args.workers) == ("dask", "tcp://head:8786", 4)
    assert main(["run", "--scheduler", "tcp://head:8786", "--processed-root", str(tmp_path)]) == 1
    assert "--scheduler is for --executor dask, not local" in capsys.readouterr().err
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                      silence_logs=50) as cluster:
        ex = make_executor("dask", None, scheduler=cluster.scheduler_address, processed_root=tmp_path)
        try:
            assert ex.client.scheduler.address == cluster.scheduler_address and ex._max_workers == 1
            assert ex.submit(pow, 3, 3).result() == 27
        finally:
            ex.shutdown()
