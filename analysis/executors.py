"""Where notebook tasks run. The runner only needs `submit(fn, *args) -> Future` and `shutdown()`.

LocalExecutor runs tasks in a local process pool; SerialExecutor runs them in
this process (debugging, tests). A distributed engine plugs in by offering the
same two methods with concurrent.futures-compatible futures (dask.distributed's
Client does: `Client.submit` returns futures that `concurrent.futures.wait`
cannot wait on directly, so wrap them in a small adapter when adding one).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Protocol


class Executor(Protocol):
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future: ...

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...


class SerialExecutor:
    """Runs each task at once in the calling process."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            fut.set_exception(exc)
        return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None


def LocalExecutor(max_workers: int = 2) -> ProcessPoolExecutor:  # noqa: N802 - reads as a class
    """A local process pool; each worker starts its own kernels. Keep it small: kernels clash on ports."""
    return ProcessPoolExecutor(max_workers=max_workers)


EXECUTORS: dict[str, Callable[..., Executor]] = {"local": LocalExecutor, "serial": SerialExecutor}


def make_executor(name: str, workers: int = 2) -> Executor:
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")
    return EXECUTORS[name](workers) if name == "local" else EXECUTORS[name]()
