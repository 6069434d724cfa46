"""Render the Quarto report to PDF: by Quarto when present, else offline (papermill, pandoc, typst)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from .config import PROCESSED, REPORTS, ROOT, Plan, processed_dir
from .provenance import uses_synthetic_inputs
from .qmd import notebook_to_markdown, parse_qmd, to_notebook, typst_crossrefs

log = logging.getLogger(__name__)

REPORT_QMD = REPORTS / "evaluation.qmd"
TEMPLATE = REPORTS / "template" / "cityreport.typ"
IMAGE_REF = re.compile(r"(!\[[^\]]*\]\()(/[^)\s]+)(\))")
FONT_DIR = ROOT / "build" / "fonts"


class RenderError(RuntimeError):
    """The report could not be rendered; the message says at which step."""


def typst_font_dir() -> Path:
    """A folder holding exactly the report's fonts (links into the font wheels)."""
    import manimgx_fonts_cjk
    import matplotlib
    import mplfonts

    sources = {
        "NotoSansCJK-VF.otf.ttc": Path(manimgx_fonts_cjk.__file__).parent / "NotoSansCJK-VF.otf.ttc",
        "NotoSerifCJKsc-Regular.otf": Path(mplfonts.__file__).parent / "fonts" / "NotoSerifCJKsc-Regular.otf",
        # the English report's sans-serif (Latin punctuation must not come from a CJK font); its serif,
        # Libertinus Serif, is embedded in Typst
        **{f"DejaVuSans{w}.ttf": Path(matplotlib.get_data_path()) / "fonts" / "ttf" / f"DejaVuSans{w}.ttf"
           for w in ("", "-Bold")},
    }
    FONT_DIR.mkdir(parents=True, exist_ok=True)
    for name, src in sources.items():
        if not src.exists():
            raise RenderError(f"font file missing: {src} (reinstall the font wheels)")
        link = FONT_DIR / name
        if link.is_symlink() and link.resolve() != src.resolve():
            link.unlink()
        if not link.exists():
            link.symlink_to(src)
    return FONT_DIR


def source_date(plan: Plan, year: int, processed_root: Path) -> datetime:
    """The report's fixed date (cover page, PDF and workbook timestamps), so reruns give identical files.

    SOURCE_DATE_EPOCH when set (the reproducible-builds convention), else the last interview date
    of the latest survey year up to the report year, else 31 December of the report year.
    """
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            return datetime.fromtimestamp(int(epoch), UTC)
        except ValueError as exc:
            raise RenderError(f"SOURCE_DATE_EPOCH must be whole seconds since 1970, not {epoch!r}") from exc
    for survey_year in sorted((y for y in plan.survey_years if y <= year), reverse=True):
        clean = processed_dir(plan.city, survey_year, processed_root) / "survey_clean.parquet"
        if clean.exists():
            import pandas as pd

            last = pd.read_parquet(clean, columns=["interview_date"])["interview_date"].max()
            if not pd.isna(last):
                return datetime(last.year, last.month, last.day, tzinfo=UTC)
    return datetime(int(year), 12, 31, tzinfo=UTC)


def report_metadata(plan: Plan, year: int, lang: str, processed_root: Path) -> dict[str, Any]:
    """Title block for the template, from the plan; the synthetic-data notice when demo data are used."""
    city = plan.settings.city.given()
    start, end = plan.period
    city_dir = processed_root / plan.city
    if not any(city_dir.rglob("manifest-*.json")):
        raise RenderError(f"no stage outputs under {city_dir}: run the notebooks first (python -m analysis run)")
    synthetic = uses_synthetic_inputs(city_dir)
    final = year >= end
    when = source_date(plan, year, processed_root)
    if lang == "zh":
        title = city["report_title_zh"] if final else f"{city['name_zh']}全民科学素质行动监测报告（{year}年）"
        subtitle = f"{city['plan_document']} 实施情况{'总结评估' if final else '年度监测'}"
        issuer = city.get("lead_agency_zh")
        notice = ("本报告使用合成数据（synthetic data）演示评估方法，所有调查数字均由确定性合成数据生成器产生，"
                  f"不是{city['name_zh']}的真实调查结果，不得作为政策依据引用。") if synthetic else None
        shown = f"{when.year}年{when.month}月"
        short = f"{city['name_zh']}全民科学素质行动{'实施情况评估报告' if final else f'监测报告（{year}年）'}"
    else:
        title = city["report_title_en"] if final else f"{city['name_en']} Civic Scientific Literacy Monitoring Report {year}"
        subtitle = f"Plan period {start}-{end}, {'final evaluation' if final else 'annual monitoring'}"
        issuer = city.get("lead_agency_en", city["name_en"])
        notice = ("This report uses SYNTHETIC demo data to demonstrate the evaluation methods. No figure in it is a real "
                  "survey result of the city; do not cite it.") if synthetic else None
        shown = when.date().isoformat()
        short = f"{city['name_en']} science literacy plan {start}–{end}: {'evaluation' if final else f'monitoring {year}'}"
    # the running header carries the short title, so it stays on one line beside the demo-data mark
    return {"title": title, "short_title": short, "subtitle": subtitle, "issuer": issuer, "date": shown, "notice": notice,
            "lang": lang, "synthetic": synthetic, "timestamp": when}


def _typst_string(value: Any) -> str:
    if value is None:
        return "none"
    return "[" + str(value).replace("\\", "\\\\").replace("]", "\\]").replace("[", "\\[").replace("#", "\\#") + "]"


def _typst_date(when: datetime) -> str:
    return f"datetime(year: {when.year}, month: {when.month}, day: {when.day})"


def typst_preamble(meta: dict[str, Any]) -> str:
    args = ", ".join(f"{k.replace('_', '-')}: {_typst_string(meta.get(k))}"
                     for k in ("title", "short_title", "subtitle", "issuer", "date", "notice"))
    return (f'#import "{TEMPLATE.resolve()}": *\n'
            f'#show: cityreport.with({args}, pdf-date: {_typst_date(meta["timestamp"])}, lang: "{meta["lang"]}")\n\n')


def absolute_image_paths(markdown: str) -> str:
    """Project-root-relative image paths ('/data/...', Quarto's reading) as filesystem paths."""
    def fix(m: re.Match) -> str:
        path = m.group(2)
        if not Path(path).exists() and (ROOT / path.lstrip("/")).exists():
            path = str(ROOT / path.lstrip("/"))
        return m.group(1) + path + m.group(3)
    return IMAGE_REF.sub(fix, markdown)


def render(plan: Plan, year: int, lang: str = "zh", processed_root: Path | None = None,
           out_dir: Path | None = None, engine: str = "auto", qmd: Path = REPORT_QMD,
           work_dir: Path | None = None, check: bool = True) -> dict[str, Path]:
    """Render the report (reports/evaluation.qmd) for (city, year, lang); returns the files by format.

    Everything is rendered in a work folder (work_dir, default build/) and the PDF, HTML and
    workbook are moved into out_dir together only when all of them were made, so a failed
    render leaves the previous outputs as they were. With check, the results must come from
    one consistent run (ReportData.stale_reasons).
    """
    processed_root = Path(processed_root or PROCESSED)
    out_dir = Path(out_dir or REPORTS / "output")
    if engine not in {"auto", "quarto", "offline"}:
        raise RenderError(f"unknown engine {engine!r}; use auto, quarto or offline")
    use_quarto = engine == "quarto" or (engine == "auto" and shutil.which("quarto"))
    if engine == "quarto" and not shutil.which("quarto"):
        raise RenderError("engine 'quarto' asked for, but the quarto command is not on PATH")
    meta = report_metadata(plan, year, lang, processed_root)
    from .report_data import ReportData, ReportDataError

    try:
        stale = ReportData(plan, int(year), lang, processed_root).stale_reasons() if check else []
    except ReportDataError as exc:
        raise RenderError(str(exc)) from exc
    if stale:
        raise RenderError("the results in data/processed are not from one consistent run: " + "; ".join(stale)
                          + f". Rerun the notebooks: python -m analysis run --year {year}")
    stem = f"{plan.city}-{year}-evaluation{'' if lang == 'zh' else '-' + lang}"
    work = Path(work_dir) if work_dir else ROOT / "build"
    staging = work / ("quarto" if use_quarto else "offline") / stem
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    params = {"city": plan.city, "year": int(year), "lang": lang, "processed_root": str(processed_root),
              "raw_dir": str(plan.raw_dir), "workbook": str(staging / f"{stem}-tables.xlsx")}
    executed = Path(work_dir) / "executed" if work_dir else REPORTS / "executed"
    t0 = time.perf_counter()
    with report_environment(meta["timestamp"]):
        if use_quarto:
            made = _render_quarto(Path(qmd), params, meta, staging, stem)
        else:
            made = _render_offline(Path(qmd), params, meta, staging, stem, executed)
    workbook = Path(params["workbook"])
    if workbook.exists():
        made["xlsx"] = workbook
    files = publish(made, out_dir, stale=[out_dir / workbook.name])
    log.info("rendered %s in %.1f s", ", ".join(str(p) for p in files.values()), time.perf_counter() - t0)
    return files


@contextmanager
def report_environment(when: datetime):
    """Environment for the report's kernel and tools: the running interpreter, its fonts, a fixed date.

    Quarto runs the cells with QUARTO_PYTHON (else whatever python3 is first on PATH), and the
    kernel, papermill's too, inherits SOURCE_DATE_EPOCH, which the workbook writer reads.
    Typst gets the fonts through TYPST_FONT_PATHS (Quarto ignores -M font-paths).
    """
    env = {"QUARTO_PYTHON": sys.executable,
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "TYPST_FONT_PATHS": str(typst_font_dir()),
           "SOURCE_DATE_EPOCH": str(int(when.timestamp()))}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def publish(made: dict[str, Path], out_dir: Path, stale: list[Path] = ()) -> dict[str, Path]:
    """Move finished files into out_dir together: all are copied in under temporary names first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pending: list[tuple[Path, Path]] = []
    try:
        for src in made.values():
            tmp = out_dir / f".{src.name}.partial"
            shutil.copyfile(src, tmp)
            pending.append((tmp, out_dir / src.name))
    except OSError as exc:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        raise RenderError(f"could not write into {out_dir}: {exc}") from exc
    for tmp, final in pending:
        os.replace(tmp, final)
    produced = {final for _, final in pending}
    for old in stale:  # an earlier run's file this run did not make again
        if old not in produced:
            old.unlink(missing_ok=True)
    return {kind: out_dir / src.name for kind, src in made.items()}


def quarto_project(qmd: Path, meta: dict[str, Any], folder: Path, stem: str) -> Path:
    """A Quarto project in folder: the .qmd with the parts it includes, the template, _quarto.yml, metadata.

    Rendering a copy keeps Quarto's side effects (.quarto/, .gitignore entries, the .typ, the
    *_files folder, the executed .quarto_ipynb) out of the repository. Returns the copied .qmd.
    """
    for part in qmd.parent.glob("*.qmd"):  # included parts beside the report
        if part != qmd:
            shutil.copyfile(part, folder / part.name)
    if (qmd.parent / "sections").is_dir():
        shutil.copytree(qmd.parent / "sections", folder / "sections")
    shutil.copytree(TEMPLATE.parent, folder / "template")
    copy = folder / f"{stem}.qmd"
    shutil.copyfile(qmd, copy)
    config = yaml.safe_load((ROOT / "_quarto.yml").read_text(encoding="utf-8"))
    project = config.setdefault("project", {})
    project.pop("output-dir", None)  # outputs stay beside the copy, where Quarto keeps their _files
    project["render"] = [copy.name]
    for options in config.get("format", {}).values():  # paths relative to the copy
        for key in ("template-partials", "css"):
            if key in options:
                options[key] = [f"template/{Path(p).name}" for p in options[key]]
    config["filters"] = ["template/project-paths.lua", *config.get("filters", [])]
    (folder / "_quarto.yml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False),
                                        encoding="utf-8")
    fields = {k.replace("_", "-"): v for k, v in meta.items() if k not in {"synthetic", "timestamp", "date"}}
    when: datetime = meta["timestamp"]
    # 'date' is parsed by Quarto (2026年11月 becomes "Invalid Date"); the template prints report-date as text
    fields |= {"report-date": meta["date"], "pdf-year": when.year, "pdf-month": when.month, "pdf-day": when.day}
    (folder / "_metadata.yml").write_text(yaml.safe_dump(fields, allow_unicode=True), encoding="utf-8")
    return copy


def _render_quarto(qmd: Path, params: dict[str, Any], meta: dict[str, Any], folder: Path,
                   stem: str) -> dict[str, Path]:
    copy = quarto_project(qmd, meta, folder, stem)
    files: dict[str, Path] = {}
    for fmt, ext in (("typst", "pdf"), ("html", "html")):
        cmd = ["quarto", "render", copy.name, "--to", fmt, "--metadata-file", "_metadata.yml"]
        for k, v in params.items():
            cmd += ["-P", f"{k}:{v}"]
        log.info("quarto: %s (in %s)", " ".join(cmd), folder)
        env = os.environ | {"CITYREPORT_PROJECT_ROOT": str(ROOT)}
        res = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, env=env)
        if res.returncode != 0:
            raise RenderError(f"quarto render --to {fmt} failed (work folder {folder}):\n{res.stderr[-4000:]}")
        produced = folder / f"{stem}.{ext}"
        if not produced.exists():
            raise RenderError(f"quarto reported success but wrote no {produced}")
        files[ext] = produced
    return files


def _render_offline(qmd_path: Path, params: dict[str, Any], meta: dict[str, Any], build: Path, stem: str,
                    executed: Path) -> dict[str, Path]:
    import nbformat
    import papermill as pm
    import pypandoc
    from papermill.exceptions import PapermillExecutionError

    qmd = parse_qmd(qmd_path)
    executed_dir = executed / params["city"] / str(params["year"])
    executed_dir.mkdir(parents=True, exist_ok=True)
    source_nb = executed_dir / f"{stem}-source.ipynb"
    executed_nb = executed_dir / f"{stem}.ipynb"
    nbformat.write(to_notebook(qmd), source_nb)
    log.info("executing %s", qmd_path)
    try:
        nb = pm.execute_notebook(str(source_nb), str(executed_nb), parameters=params, kernel_name="python3",
                                 cwd=str(qmd_path.parent), progress_bar=False, log_output=False,
                                 request_save_on_cell_execute=False)
    except PapermillExecutionError as exc:
        raise RenderError(f"report cell {exc.cell_index} failed: {exc.ename}: {exc.evalue} "
                          f"(executed copy: {executed_nb})") from exc
    md = notebook_to_markdown(nb, qmd.front_matter, build / "assets", str((build / "assets").resolve()))
    (build / f"{stem}.md").write_text(md, encoding="utf-8")
    md = absolute_image_paths(md)
    body = pypandoc.convert_text(typst_crossrefs(md), "typst", format="markdown-citations+raw_attribute")
    typ = build / f"{stem}.typ"
    typ.write_text(typst_preamble(meta) + body, encoding="utf-8")
    pdf = build / f"{stem}.pdf"
    compile_typst(typ, pdf)
    return {"pdf": pdf, "html": _html(md, meta, build / f"{stem}.html")}


_COMPILE = ("import sys, typst\n"
            "try:\n"
            "    typst.compile(sys.argv[1], output=sys.argv[2], root='/', font_paths=[sys.argv[3]])\n"
            "except Exception as exc:\n"
            "    sys.exit(str(exc))\n")


def compile_typst(typ: Path, pdf: Path) -> None:
    """typ -> pdf with the typst wheel, in a child process.

    The wheel keeps Typst's memoisation cache for the life of the process and never evicts it, so a
    process that renders many reports (a batch worker: 4 GB after 21 cities) grows by every document it
    compiled; a child process gives the memory back after each report.
    """
    done = subprocess.run([sys.executable, "-c", _COMPILE, str(typ), str(pdf), str(typst_font_dir())],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RenderError(f"typst failed on {typ}: {done.stderr.strip()}")


def cover_html(meta: dict[str, Any]) -> str:
    """Issuer, date and the synthetic-data notice under the HTML title (both render paths)."""
    from html import escape

    lines = [f'<p class="issuer">{escape(meta["issuer"])}</p>' if meta.get("issuer") else "",
             f'<p class="report-date">{escape(meta["date"])}</p>',
             f'<div class="notice">{escape(meta["notice"])}</div>' if meta.get("notice") else ""]
    return '<div class="cover">\n' + "\n".join(x for x in lines if x) + "\n</div>\n"


HTML_CSS = TEMPLATE.parent / "report.css"


def _html(md: str, meta: dict[str, Any], path: Path) -> Path:
    """A self-contained HTML version of the same Markdown (images embedded)."""
    import pypandoc

    from .report_format import number_crossrefs

    css = HTML_CSS
    body = number_crossrefs(absolute_image_paths(md), meta["lang"])
    pypandoc.convert_text(
        cover_html(meta) + "\n" + body, "html5", format="markdown-citations",
        extra_args=["--standalone", "--embed-resources", f"--css={css}",
                    f"--metadata=title:{meta['title']}", f"--metadata=subtitle:{meta['subtitle']}",
                    f"--metadata=lang:{'zh-CN' if meta['lang'] == 'zh' else 'en'}",
                    "--toc", "--toc-depth=2", "--number-sections", "--quiet"],
        outputfile=str(path))
    return path
