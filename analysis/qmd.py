"""Read a Quarto .qmd and turn it into a Jupyter notebook, and an executed notebook into Markdown.

This is the offline half of rendering: where the `quarto` command is missing,
the same .qmd is executed with papermill and converted here, then pandoc and
typst (both from PyPI wheels) make the PDF. Only the Quarto features the
report uses are supported: YAML front matter, ```{python} cells with `#|`
options (echo, output, tags, label), `{{< include >}}` shortcodes, and
markdown cross-references (@fig-, @tbl-, @sec-).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import yaml

CELL_OPEN = re.compile(r"^```\{python\}\s*$")
CELL_CLOSE = re.compile(r"^```\s*$")
OPTION = re.compile(r"^#\|\s*([\w-]+)\s*:\s*(.*)$")
INCLUDE = re.compile(r"^\{\{<\s*include\s+(\S+)\s*>\}\}\s*$")
CROSSREF = re.compile(r"(?<![\w`])@((?:fig|tbl|sec)-[\w-]+)")


class QmdError(ValueError):
    """The .qmd uses something the offline renderer does not support, or is malformed."""


@dataclass
class Qmd:
    front_matter: dict[str, Any]
    cells: list[nbformat.NotebookNode] = field(default_factory=list)


def _expand_includes(text: str, base: Path, seen: tuple[Path, ...] = ()) -> str:
    out = []
    for line in text.splitlines():
        m = INCLUDE.match(line.strip())
        if m:
            path = (base / m.group(1)).resolve()
            if path in seen:
                raise QmdError(f"include cycle at {path}")
            if not path.exists():
                raise QmdError(f"{base}: included file {m.group(1)} not found")
            out.append(_expand_includes(path.read_text(encoding="utf-8"), path.parent, (*seen, path)))
        else:
            out.append(line)
    return "\n".join(out)


def parse_qmd(path: Path) -> Qmd:
    """Split a .qmd into front matter and notebook cells (markdown and code)."""
    path = Path(path)
    text = _expand_includes(path.read_text(encoding="utf-8"), path.parent)
    front: dict[str, Any] = {}
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end < 0:
            raise QmdError(f"{path}: front matter is not closed with ---")
        front = yaml.safe_load(text[3:end]) or {}
        text = text[end + 4 :].lstrip("\n")
    cells: list[nbformat.NotebookNode] = []
    md: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if CELL_OPEN.match(lines[i]):
            if any(s.strip() for s in md):
                cells.append(nbformat.v4.new_markdown_cell("\n".join(md).strip("\n")))
            md = []
            j = i + 1
            while j < len(lines) and not CELL_CLOSE.match(lines[j]):
                j += 1
            if j == len(lines):
                raise QmdError(f"{path}: code cell opened at line {i + 1} is not closed")
            cells.append(_code_cell(lines[i + 1 : j]))
            i = j + 1
        else:
            md.append(lines[i])
            i += 1
    if any(s.strip() for s in md):
        cells.append(nbformat.v4.new_markdown_cell("\n".join(md).strip("\n")))
    return Qmd(front_matter=front, cells=cells)


def _code_cell(lines: list[str]) -> nbformat.NotebookNode:
    options: dict[str, Any] = {}
    body = []
    for line in lines:
        m = OPTION.match(line)
        if m and not body:
            options[m.group(1)] = yaml.safe_load(m.group(2))
        else:
            body.append(line)
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    tags = options.get("tags") or []
    cell.metadata["tags"] = list(tags)
    cell.metadata["qmd_options"] = options
    return cell


def to_notebook(qmd: Qmd) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = qmd.cells
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def _option(cell, name: str, default: Any, front: dict[str, Any]) -> Any:
    opts = cell.metadata.get("qmd_options", {})
    if name in opts:
        return opts[name]
    return (front.get("execute") or {}).get(name, default)


def notebook_to_markdown(nb: nbformat.NotebookNode, front: dict[str, Any], asset_dir: Path,
                         asset_prefix: str) -> str:
    """Markdown of an executed notebook: markdown cells as they are, code cells by their outputs.

    Outputs in text/markdown, or stdout of an `output: asis` cell, go in raw;
    images are written to asset_dir and linked as asset_prefix/<name>.
    """
    parts: list[str] = []
    asset_dir.mkdir(parents=True, exist_ok=True)
    for idx, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            parts.append(cell.source)
            continue
        if cell.cell_type != "code" or "parameters" in cell.metadata.get("tags", []):
            continue
        if "injected-parameters" in cell.metadata.get("tags", []):
            continue
        output = _option(cell, "output", True, front)
        if _option(cell, "echo", False, front):
            parts.append("```python\n" + cell.source + "\n```")
        if output is False:
            continue
        for k, out in enumerate(cell.get("outputs", [])):
            kind = out.get("output_type")
            if kind == "error":
                raise QmdError(f"cell {idx} raised {out.get('ename')}: {out.get('evalue')}")
            if kind == "stream":
                if out.get("name") == "stdout":
                    text = out.get("text", "")
                    parts.append(text if output == "asis" else "```\n" + text.rstrip() + "\n```")
                continue
            data = out.get("data", {})
            if "text/markdown" in data:
                parts.append(data["text/markdown"])
            elif "image/png" in data:
                name = f"cell{idx:03d}-{k}.png"
                (asset_dir / name).write_bytes(base64.b64decode(data["image/png"]))
                parts.append(f"![]({asset_prefix}/{name})")
            elif "text/plain" in data and output != "asis":
                parts.append("```\n" + data["text/plain"] + "\n```")
    return "\n\n".join(p.strip("\n") for p in parts if p.strip()) + "\n"


def typst_crossrefs(markdown: str) -> str:
    """Quarto-style @fig-x/@tbl-x/@sec-x references as raw Typst references (pandoc would cite them)."""
    return CROSSREF.sub(lambda m: f"`@{m.group(1)}`{{=typst}}", markdown)
