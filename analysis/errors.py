"""Errors a user can act on: the CLI prints them as one message and exits 1 (no traceback).

`UserError` is the base for every error caused by input, configuration or the state of the
data folders; `InputError` adds the position in a file. Never put personal data in a message:
describe a rejected free-text value by its kind and length, not by its content.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class UserError(Exception):
    """An error the user can fix; shown without a traceback (``--debug`` shows it)."""


@dataclass
class InputError(UserError, ValueError):
    """A defect at a position in an input file.

    ``row`` is the data row (1-based, header excluded), ``line`` the physical line of the file
    (1-based, as an editor shows it), ``value`` a description safe to print (never personal data).
    """

    file: Path | str
    problem: str
    row: int | None = None
    line: int | None = None
    column: str | None = None
    value: str | None = None
    expected: str | None = None

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        where = [str(self.file)]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        msg = f"{', '.join(where)}: {self.problem}"
        if self.value is not None:
            msg += f" (found {self.value})"
        if self.expected is not None:
            msg += f"; expected {self.expected}"
        return msg


class Shown(str):
    """A value description that prints as is (no quotes), e.g. 'Chinese text of 12 characters'."""

    def __repr__(self) -> str:
        return str(self)


_SAFE_NUMBER = re.compile(r"[-+]?\d{1,6}(?:\.\d{1,4})?")
_SAFE_CODE = re.compile(r"[A-Za-z]{1,2}|[-–—/.?*#]{1,3}")


def _kind(text: str) -> str:
    if any("\u3400" <= ch <= "\u9fff" for ch in text):
        return "Chinese text"
    if text.isalnum():
        return "letters and digits"
    return "text"


def safe_value(value: Any) -> Any:
    """The value itself when it cannot be personal data, else a description of it.

    Short numbers (up to 6 digits: an age, a weight, a code) and one- or two-letter codes
    are echoed; anything else (a name, a phone or ID-card number, an address) is described
    by kind and length only, e.g. ``Chinese text of 12 characters``.
    """
    if value is None:
        return Shown("an empty cell")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = unicodedata.normalize("NFKC", str(value)).strip()
    if not text:
        return Shown("an empty cell")
    if _SAFE_NUMBER.fullmatch(text) or _SAFE_CODE.fullmatch(text):
        return value if isinstance(value, (int, float)) else text
    n = len(text)
    if text.isdigit():
        return Shown(f"a number of {n} digits, not shown")
    if text.isascii() and text.isalpha():
        return Shown(f"{n} letters, not shown")
    return Shown(f"{_kind(text)} of {n} character{'s' if n != 1 else ''}, not shown")
