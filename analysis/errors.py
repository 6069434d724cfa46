"""Errors a user can act on: the CLI prints them as one message and exits 1 (no traceback).

`UserError` is the base for every error caused by input, configuration or the state of the
data folders; `InputError` adds the position in a file. Never put personal data in a message:
describe a rejected free-text value by its kind and length, not by its content.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
