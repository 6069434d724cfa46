"""Which modules of the package a notebook or a module uses: static import analysis with `ast`.

A task's content key covers the package modules its notebook imports, directly or through
other package modules (imports inside functions count too), plus the package data files
(*.yml, *.json) those modules name. Editing any other module does not rerun the task.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path

QMD_CODE = re.compile(r"^```\{python[^}]*\}\s*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_sources_of(path: Path) -> str:
    """The Python code of a .py file, of a notebook's code cells or of a .qmd's python chunks."""
    text = Path(path).read_text(encoding="utf-8")
    if path.suffix == ".ipynb":
        cells = json.loads(text).get("cells", [])
        code = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                for c in cells if c.get("cell_type") == "code"]
    elif path.suffix == ".qmd":
        code = QMD_CODE.findall(text)
    else:
        return text
    # IPython magics and shell escapes are not Python
    return "\n".join(ln for block in code for ln in block.splitlines() if not ln.lstrip().startswith(("%", "!")))


def imported_names(source: str, package: str, current: str | None = None) -> set[str]:
    """Dotted names below `package` that source imports (`current`: the importing module, for relative imports)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name == package or a.name.startswith(package + ".")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if current is None:
                    continue
                base = current.split(".")[: -node.level]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == package or module.startswith(package + "."):
                found.add(module)
                found |= {f"{module}.{a.name}" for a in node.names}  # `from pkg import module`
    return found


class ImportGraph:
    """The package's modules and what each imports, parsed once per file content (cached on disk)."""

    def __init__(self, code_dir: Path, cache: Path | None = None):
        self.code_dir = Path(code_dir)
        self.package = self.code_dir.name
        self.cache_path = cache
        self._cache: dict[str, list[str]] = {}
        if cache is not None and cache.is_file():
            try:
                self._cache = json.loads(cache.read_text(encoding="utf-8"))
            except ValueError:
                self._cache = {}
        self._dirty = False
        self.files: dict[str, Path] = {}
        self.digests: dict[str, str] = {}
        for path in sorted(self.code_dir.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            rel = path.relative_to(self.code_dir).with_suffix("")
            parts = [self.package, *rel.parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join(parts)
            self.files[name] = path
            self.digests[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        self.data_files = sorted(p for p in self.code_dir.rglob("*") if p.is_file() and p.suffix in {".yml", ".yaml", ".json"}
                                 and "__pycache__" not in p.parts)

    def _imports_of_module(self, name: str) -> set[str]:
        key = self.digests[name] + ":" + name
        if key not in self._cache:
            path = self.files[name]
            current = name if path.name != "__init__.py" else name + ".__init__"
            self._cache[key] = sorted(imported_names(path.read_text(encoding="utf-8"), self.package, current))
            self._dirty = True
        return {n for n in self._cache[key] if n in self.files}

    def closure(self, roots: Iterable[str]) -> set[str]:
        """Modules reached from roots (dotted names), each package's __init__ included."""
        seen: set[str] = set()
        todo = [r for r in roots if r in self.files]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
            todo += [p for p in parents if p in self.files and p not in seen]
            todo += [m for m in self._imports_of_module(name) if m not in seen]
        return seen

    def closure_of_source(self, path: Path) -> set[str]:
        """Modules reached from the imports in a notebook, .qmd or script."""
        return self.closure(n for n in imported_names(python_sources_of(path), self.package) if n in self.files)

    def used_files(self, modules: set[str]) -> dict[str, str]:
        """The modules' files and the data files they name, as relative path -> SHA-256."""
        out = {str(self.files[m].relative_to(self.code_dir.parent)): self.digests[m] for m in sorted(modules)}
        sources = {m: self.files[m].read_text(encoding="utf-8") for m in modules}
        for data in self.data_files:
            if any(data.name in text for text in sources.values()):
                out[str(data.relative_to(self.code_dir.parent))] = hashlib.sha256(data.read_bytes()).hexdigest()
        return out

    def save(self) -> None:
        if self._dirty and self.cache_path is not None:
            live = {f"{d}:{n}" for n, d in self.digests.items()}
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({k: v for k, v in self._cache.items() if k in live}), encoding="utf-8")
            tmp.replace(self.cache_path)
            self._dirty = False
