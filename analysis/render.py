"""Render the Quarto report to PDF: by Quarto when present, else offline (papermill, pandoc, typst)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import time
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from .config import PROCESSED, REPORTS, ROOT, Plan
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


def report_metadata(plan: Plan, year: int, lang: str, processed_root: Path) -> dict[str, Any]:
    """Title block for the template, from the plan; the synthetic-data notice when demo data are used."""
    city = plan.data["city"]
    start, end = plan.period
    city_dir = processed_root / plan.city
    if not any(city_dir.rglob("manifest-*.json")):
        raise RenderError(f"no stage outputs under {city_dir}: run the notebooks first (python -m analysis run)")
    synthetic = uses_synthetic_inputs(city_dir)
    final = year >= end
    if lang == "zh":
        title = city["report_title_zh"] if final else f"{city['name_zh']}全民科学素质行动监测报告（{year}年）"
        subtitle = f"{city['plan_document']} 实施情况{'总结评估' if final else '年度监测'}"
        issuer = city.get("lead_agency_zh")
        notice = ("本报告使用合成数据（synthetic data）演示评估方法，所有调查数字均由确定性合成数据生成器产生，"
                  f"不是{city['name_zh']}的真实调查结果，不得作为政策依据引用。") if synthetic else None
        when = f"{date.today().year}年{date.today().month}月"
    else:
        title = city["report_title_en"] if final else f"{city['name_en']} Civic Scientific Literacy Monitoring Report {year}"
        subtitle = f"Plan period {start}-{end}, {'final evaluation' if final else 'annual monitoring'}"
        issuer = city.get("lead_agency_en", city["name_en"])
        notice = ("This report uses SYNTHETIC demo data to demonstrate the evaluation methods. No figure in it is a real "
                  "survey result of the city; do not cite it.") if synthetic else None
        when = date.today().isoformat()
    return {"title": title, "subtitle": subtitle, "issuer": issuer, "date": when, "notice": notice,
            "lang": lang, "synthetic": synthetic}


def _typst_string(value: Any) -> str:
    if value is None:
        return "none"
    return "[" + str(value).replace("\\", "\\\\").replace("]", "\\]").replace("[", "\\[").replace("#", "\\#") + "]"


def typst_preamble(meta: dict[str, Any]) -> str:
    args = ", ".join(f"{k}: {_typst_string(meta[k])}" for k in ("title", "subtitle", "issuer", "date", "notice"))
    return (f'#import "{TEMPLATE.resolve()}": *\n'
            f'#show: cityreport.with({args}, lang: "{meta["lang"]}")\n\n')


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

    Intermediate files go under work_dir (default build/, executed copies in reports/executed/).
    With check, the results must come from one consistent run (ReportData.stale_reasons).
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
    out_dir.mkdir(parents=True, exist_ok=True)
    params = {"city": plan.city, "year": int(year), "lang": lang, "processed_root": str(processed_root),
              "raw_dir": str(plan.raw_dir), "workbook": str(out_dir / f"{stem}-tables.xlsx")}
    Path(params["workbook"]).unlink(missing_ok=True)  # never hand back an earlier run's workbook
    work = Path(work_dir) if work_dir else ROOT / "build"
    executed = Path(work_dir) / "executed" if work_dir else REPORTS / "executed"
    t0 = time.perf_counter()
    if use_quarto:
        files = _render_quarto(Path(qmd), params, meta, out_dir, stem, work)
    else:
        files = _render_offline(Path(qmd), params, meta, out_dir, stem, work, executed)
    log.info("rendered %s in %.1f s", ", ".join(str(p) for p in files.values()), time.perf_counter() - t0)
    return files


def _render_quarto(qmd: Path, params: dict[str, Any], meta: dict[str, Any], out_dir: Path, stem: str,
                   work: Path) -> dict[str, Path]:
    build = work / "quarto"
    build.mkdir(parents=True, exist_ok=True)
    meta_file = build / f"{stem}-meta.yml"
    meta_file.write_text(yaml.safe_dump({k: v for k, v in meta.items() if k != "synthetic"},
                                        allow_unicode=True), encoding="utf-8")
    files: dict[str, Path] = {}
    for fmt, ext in (("typst", "pdf"), ("html", "html")):
        cmd = ["quarto", "render", str(qmd), "--to", fmt, "--output", f"{stem}.{ext}",
               "--metadata-file", str(meta_file), "-M", f"font-paths:{typst_font_dir()}"]
        if ext == "html":
            cmd += ["-M", "embed-resources:true"]
        for k, v in params.items():
            cmd += ["-P", f"{k}:{v}"]
        log.info("quarto: %s", " ".join(cmd))
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if res.returncode != 0:
            raise RenderError(f"quarto render --to {fmt} failed:\n{res.stderr[-4000:]}")
        # the project's output-dir (_quarto.yml) or, for a file outside the project, beside the .qmd
        produced = next((p for p in (ROOT / "reports" / "output" / f"{stem}.{ext}", qmd.parent / f"{stem}.{ext}")
                         if p.exists()), None)
        if produced is None:
            raise RenderError(f"quarto reported success but wrote no {stem}.{ext}")
        target = out_dir / f"{stem}.{ext}"
        if produced.resolve() != target.resolve():
            shutil.move(str(produced), target)
        files[ext] = target
    if Path(params["workbook"]).exists():
        files["xlsx"] = Path(params["workbook"])
    return files


def _render_offline(qmd_path: Path, params: dict[str, Any], meta: dict[str, Any], out_dir: Path, stem: str,
                    work: Path, executed: Path) -> dict[str, Path]:
    import papermill as pm
    import pypandoc
    import typst
    from papermill.exceptions import PapermillExecutionError

    qmd = parse_qmd(qmd_path)
    executed_dir = executed / params["city"] / str(params["year"])
    executed_dir.mkdir(parents=True, exist_ok=True)
    source_nb = executed_dir / f"{stem}-source.ipynb"
    executed_nb = executed_dir / f"{stem}.ipynb"
    import nbformat

    nbformat.write(to_notebook(qmd), source_nb)
    log.info("executing %s", qmd_path)
    try:
        nb = pm.execute_notebook(str(source_nb), str(executed_nb), parameters=params, kernel_name="python3",
                                 cwd=str(qmd_path.parent), progress_bar=False, log_output=False,
                                 request_save_on_cell_execute=False)
    except PapermillExecutionError as exc:
        raise RenderError(f"report cell {exc.cell_index} failed: {exc.ename}: {exc.evalue} "
                          f"(executed copy: {executed_nb})") from exc
    build = work / "offline" / stem
    if build.exists():
        shutil.rmtree(build)
    build.mkdir(parents=True)
    md = notebook_to_markdown(nb, qmd.front_matter, build / "assets", str((build / "assets").resolve()))
    (build / f"{stem}.md").write_text(md, encoding="utf-8")
    md = absolute_image_paths(md)
    body = pypandoc.convert_text(typst_crossrefs(md), "typst", format="markdown-citations+raw_attribute")
    typ = build / f"{stem}.typ"
    typ.write_text(typst_preamble(meta) + body, encoding="utf-8")
    pdf = out_dir / f"{stem}.pdf"
    tmp = pdf.with_suffix(".pdf.tmp")
    try:
        typst.compile(str(typ), output=str(tmp), root="/", font_paths=[str(typst_font_dir())])
    except Exception as exc:  # typst raises its own error type carrying the diagnostics
        raise RenderError(f"typst failed on {typ}: {exc}") from exc
    os.replace(tmp, pdf)
    files = {"pdf": pdf}
    html = out_dir / f"{stem}.html"
    files["html"] = _html(md, meta, html)
    workbook = Path(params["workbook"])
    if workbook.exists():
        files["xlsx"] = workbook
    return files


HTML_CSS = """
body { font-family: 'Noto Serif CJK SC', 'Noto Sans CJK SC', serif; max-width: 60em; margin: 2em auto;
       line-height: 1.7; padding: 0 1em; color: #222; }
h1, h2, h3, header .title { font-family: 'Noto Sans CJK SC', sans-serif; }
header .title { color: #9b1c1c; text-align: center; font-size: 1.8em; }
.notice { border: 1px solid #9b1c1c; background: #fdf2f2; color: #9b1c1c; padding: .8em; margin: 1em 0; }
table { border-collapse: collapse; font-size: .85em; margin: 1em auto; }
th { border-top: 2px solid #333; border-bottom: 1px solid #333; padding: .2em .6em; }
td { padding: .15em .6em; } caption { font-weight: bold; padding: .4em; }
figure { text-align: center; } img { max-width: 100%; } figcaption { font-size: .9em; }
"""


def _html(md: str, meta: dict[str, Any], path: Path) -> Path:
    """A self-contained HTML version of the same Markdown (images embedded)."""
    import pypandoc

    from .report_format import number_crossrefs

    notice = f'<div class="notice">{meta["notice"]}</div>\n\n' if meta.get("notice") else ""
    header = f"{notice}"
    css = path.parent / ".report.css"
    css.write_text(HTML_CSS, encoding="utf-8")
    body = number_crossrefs(absolute_image_paths(md), meta["lang"])
    html = pypandoc.convert_text(
        header + body, "html5", format="markdown-citations",
        extra_args=["--standalone", "--embed-resources", f"--css={css}",
                    f"--metadata=title:{meta['title']}", f"--metadata=subtitle:{meta['subtitle']}",
                    f"--metadata=lang:{'zh-CN' if meta['lang'] == 'zh' else 'en'}",
                    "--toc", "--toc-depth=2", "--number-sections", "--quiet"],
        outputfile=str(path.with_suffix(".tmp.html")))
    del html
    css.unlink()
    os.replace(path.with_suffix(".tmp.html"), path)
    return path
