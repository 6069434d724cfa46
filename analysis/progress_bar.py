"""One progress bar over a run's tasks, naming the tasks running now (tqdm, on a terminal)."""

from __future__ import annotations

import shutil
from typing import IO, Any

from .pipeline import Progress, Task


class TaskBar(Progress):
    """tqdm bar: done/total tasks, elapsed time, and the tasks running now."""

    def __init__(self, stream: IO[str]):
        super().__init__(lambda msg: None)
        self.stream = stream
        self.bar: Any = None
        self.running: list[str] = []

    @classmethod
    def for_terminal(cls, stream: IO[str]) -> Progress | None:
        """A bar on a terminal; None elsewhere (CI logs get one plain line per task instead)."""
        return cls(stream) if hasattr(stream, "isatty") and stream.isatty() else None

    def begin(self, total: int, up_to_date: int) -> None:
        if up_to_date == total:
            return
        from tqdm import tqdm

        sized = shutil.get_terminal_size((0, 0)).columns > 0
        self.bar = tqdm(total=total, initial=up_to_date, unit="task", file=self.stream, dynamic_ncols=sized,
                        ncols=None if sized else 100, nrows=None if sized else 40, bar_format="{n_fmt}/{total_fmt} tasks |{bar:20}| {elapsed} {desc}")
        if up_to_date:
            self.bar.set_description_str(f"({up_to_date} up to date)")

    def _show(self) -> None:
        if self.bar is not None:
            self.bar.set_description_str(("running " + ", ".join(self.running)) if self.running else "")

    def start(self, position: int, total: int, task: Task) -> None:
        self.running.append(f"{task.stage} {task.year}")
        self._show()

    def finish(self, position: int, total: int, task: Task, seconds: float) -> None:
        name = f"{task.stage} {task.year}"
        if name in self.running:
            self.running.remove(name)
        if self.bar is not None:
            self.bar.update(1)
        self._show()

    def skip(self, position: int, total: int, task: Task) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
