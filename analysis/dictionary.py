"""The survey data dictionary: canonical columns, labels, allowed values, header aliases."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import yaml

DICTIONARY_PATH = Path(__file__).with_name("data_dictionary.yml")
ITEM_RE = re.compile(r"^q\d{2}$")
AGE_GROUPS = ("18-29", "30-39", "40-49", "50-59", "60-69")


def header_key(text: Any) -> str:
    """Matching key of a header: NFKC (full-width to half-width), lower case, no spaces/punctuation."""
    s = unicodedata.normalize("NFKC", str(text)).lower()
    return re.sub(r"[\W_]+", "", s)


@dataclass(frozen=True)
class Dictionary:
    columns: list[dict[str, Any]]
    item_pattern: re.Pattern[str]
    item_parents: frozenset[str]

    @property
    def by_name(self) -> dict[str, dict[str, Any]]:
        return {c["name"]: c for c in self.columns}

    def names(self, role: str | None = None, stage: str | None = None) -> list[str]:
        return [
            c["name"] for c in self.columns
            if c["role"] != "item"
            and (role is None or c["role"] == role)
            and (stage is None or stage in c.get("stages", []))
        ]

    @property
    def required(self) -> list[str]:
        return [c["name"] for c in self.columns if c.get("required") and c["role"] != "item"]

    @property
    def pii(self) -> list[str]:
        return self.names(role="pii")

    def allowed(self, name: str) -> list[str] | None:
        col = self.by_name.get(name)
        return None if col is None else col.get("allowed")

    def label_zh(self, name: str) -> str:
        if ITEM_RE.match(name):
            return f"第{int(name[1:])}题"
        return self.by_name[name]["label_zh"]

    @cached_property
    def alias_index(self) -> dict[str, str]:
        """Header key -> canonical name (item columns are matched by pattern instead)."""
        index: dict[str, str] = {}
        for col in self.columns:
            if col["role"] == "item":
                continue
            for alias in [col["name"], col["label_zh"], *col.get("aliases", [])]:
                index.setdefault(header_key(alias), col["name"])
        return index

    def canonical(self, header: Any, parent: Any = None) -> str | None:
        """Canonical name of one raw header (None when unknown).

        `parent` is the text of a merged cell above the header (Excel files with
        two header rows), so that "题目" over "1" becomes q01.
        """
        if header is None or (isinstance(header, float) and header != header):
            return None
        key = header_key(header)
        if not key:
            return None
        if key in self.alias_index:
            return self.alias_index[key]
        m = self.item_pattern.match(key)
        if m:
            bare_number = key.isdigit()
            if not bare_number or (parent is not None and header_key(parent) in self.item_parents):
                return f"q{int(m.group(1)):02d}"
        return None

    def map_headers(self, headers: list[Any], parents: list[Any] | None = None) -> dict[int, str]:
        """Position -> canonical name for every header that maps; unknown headers are left out."""
        parents = parents or [None] * len(headers)
        out: dict[int, str] = {}
        for i, (h, p) in enumerate(zip(headers, parents, strict=True)):
            name = self.canonical(h, p)
            if name is None and p is not None and h is not None:
                name = self.canonical(f"{p}{h}")
            if name is None and p is not None and (h is None or header_key(h) == ""):
                name = self.canonical(p)
            if name is not None:
                out[i] = name
        return out

    def table(self) -> list[dict[str, Any]]:
        """One row per documented column, for display (name, type, role, label, allowed)."""
        return [
            {
                "name": c["name"], "type": c["type"], "role": c["role"],
                "label_zh": c["label_zh"], "required": bool(c.get("required")),
                "allowed": " / ".join(map(str, c.get("allowed", []))),
                "aliases": "、".join(map(str, c.get("aliases", []))),
            }
            for c in self.columns
        ]


@cache
def load_dictionary(path: Path = DICTIONARY_PATH) -> Dictionary:
    with Path(path).open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    return Dictionary(
        columns=data["columns"],
        item_pattern=re.compile(data["item_pattern"]),
        item_parents=frozenset(header_key(p) for p in data["item_parents"]),
    )
