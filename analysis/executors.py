"""Where notebook tasks run. The runner only needs `submit(fn, *args) -> Future` and `shutdown()`.

LocalExecutor runs tasks in a local process pool; SerialExecutor runs them in
this process (debugging, tests). A distributed engine plugs in by offering the
same two methods with concurrent.futures-compatible futures (dask.distributed's
Client does: `Client.submit` returns futures that `concurrent.futures.wait`
cannot wait on directly, so wrap them in a small adapter when adding one).

Workers die with the run: each worker watches its parent and, when the parent is
gone (the run was killed, even with SIGKILL), ends its own children (the Jupyter
kernels) and exits, so no process keeps writing into data/processed.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Protocol

from .errors import UserError


class UnknownExecutor(UserError, ValueError):
    """--executor names no executor."""


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


def end_children(sig: int = signal.SIGKILL) -> None:
    """Send sig to every process below this one (kernels and their helpers)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with ipykernel
        return
    for child in psutil.Process().children(recursive=True):
        try:
            child.send_signal(sig)
        except psutil.Error:
            pass


def _die_with(parent: int, poll: float = 0.2) -> None:
    while os.getppid() == parent:
        time.sleep(poll)
    end_children()
    os._exit(1)


def _on_term(signum: int, frame: Any) -> None:
    end_children()
    os._exit(128 + signum)


def worker_init(parent: int) -> None:
    """Start-up of a pool worker: end with the parent, and end the kernels when ended."""
    if sys.platform == "linux":  # immediate: the kernel signals the worker when the parent dies
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the run, which stops the pool
    if os.getppid() != parent:  # the parent died before this line
        _on_term(signal.SIGTERM, None)
    threading.Thread(target=_die_with, args=(parent,), daemon=True, name="die-with-parent").start()


def LocalExecutor(max_workers: int = 2) -> ProcessPoolExecutor:  # noqa: N802 - reads as a class
    """A local process pool; each worker starts its own kernels. Keep it small: kernels clash on ports.

    Workers are spawned (not forked) so that each one's parent is this process and
    no lock or thread of the run is copied into them.
    """
    return ProcessPoolExecutor(max_workers=max_workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=worker_init, initargs=(os.getpid(),))


def terminate(executor: Executor) -> None:
    """Stop a local pool's workers now (each ends its kernels first); other executors are left alone."""
    for proc in list((getattr(executor, "_processes", None) or {}).values()):
        if proc.is_alive():
            proc.terminate()


def DaskExecutor(workers: int = 2, scheduler: str | None = None, processed_root: Any = None) -> Executor:  # noqa: N802
    """dask.distributed: the scheduler given, else $DASK_SCHEDULER_ADDRESS, else a local cluster
    (analysis/dask_executor.py), which checks that the workers see processed_root."""
    from .dask_executor import DaskExecutor as _Dask

    return _Dask(workers, scheduler, processed_root)


EXECUTORS: dict[str, Callable[..., Executor]] = {"local": LocalExecutor, "serial": SerialExecutor,
                                                 "dask": DaskExecutor}


def make_executor(name: str, workers: int | None = 2, scheduler: str | None = None,
                  processed_root: Any = None) -> Executor:
    """The executor `name`; scheduler and processed_root matter to dask only (cli --scheduler)."""
    if name not in EXECUTORS:
        raise UnknownExecutor(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")
    if name == "dask":
        return EXECUTORS[name](workers, scheduler, processed_root)
    return EXECUTORS[name](workers or 2) if name == "local" else EXECUTORS[name]()
