"""Running on Dask (dask.distributed): a local cluster sized to the machine, or an existing scheduler.

``connect(address, workers)`` gives a Client: to ``address`` (``--scheduler tcp://HOST:8786``) or
``DASK_SCHEDULER_ADDRESS`` when set, else to a LocalCluster of one single-threaded worker
process per core (each task starts its own Jupyter kernel, so threads would only contend).
Before anything runs it checks that every worker sees the processed folder: it writes a
token file there and has each worker read it back (a cluster needs a shared filesystem).

``run_graph_dask`` submits the whole batch graph at once, each node with the futures of its
prerequisites as arguments, so Dask runs independent cities and years in parallel. A node
that raises is retried (``retries=``) and a node whose worker dies is rescheduled by the
scheduler; a notebook that fails is reported by the node (not raised), so it is not
retried and its city's downstream nodes return ``blocked`` without running.

``DaskExecutor`` adapts a Client to the runner's executor protocol (``run --executor dask``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .config import PROCESSED
from .errors import UserError

RETRIES = 2
ENV_ADDRESS = "DASK_SCHEDULER_ADDRESS"
TOKEN_DIR = ".cache"


class ClusterError(UserError):
    """The scheduler cannot be reached, or its workers cannot see the processed folder."""


def _read_token(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return f"<unreadable: {type(exc).__name__}>"


def check_shared_folder(client: Any, processed_root: Path) -> int:
    """Write a token under processed_root and have every worker read it; returns the number of workers."""
    folder = Path(processed_root).resolve() / TOKEN_DIR
    folder.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    path = folder / f"worker-check-{token[:8]}.txt"
    path.write_text(token, encoding="utf-8")
    try:
        seen = client.run(_read_token, str(path))
    finally:
        path.unlink(missing_ok=True)
    if not seen:
        raise ClusterError("the Dask cluster has no workers")
    blind = sorted(w for w, value in seen.items() if value != token)
    if blind:
        raise ClusterError(f"{len(blind)} of {len(seen)} Dask workers do not see the processed folder "
                           f"{Path(processed_root).resolve()} (they could not read a token file written there): "
                           f"{', '.join(blind[:5])}. Mount it at the same path on every worker "
                           "(see docs/cluster.md)")
    return len(seen)


def local_cluster_size(workers: int | None = None) -> int:
    return max(1, workers or os.cpu_count() or 1)


@contextmanager
def connect(address: str | None = None, workers: int | None = None, processed_root: Path | None = None,
            echo: Callable[[str], None] = print, check: bool = True) -> Iterator[Any]:
    """A Client on the given scheduler (or DASK_SCHEDULER_ADDRESS), else on a new LocalCluster."""
    from distributed import Client, LocalCluster

    address = address or os.environ.get(ENV_ADDRESS)
    cluster = None
    try:
        if address:
            try:
                client = Client(address, timeout="20s")
            except OSError as exc:
                raise ClusterError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
            echo(f"connected to the Dask scheduler at {address}")
        else:
            n = local_cluster_size(workers)
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=40)
            client = Client(cluster)
            echo(f"started a local Dask cluster: {n} worker processes, one thread each")
        try:
            if check:
                n_seen = check_shared_folder(client, Path(processed_root or PROCESSED))
                echo(f"all {n_seen} workers see the processed folder")
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def run_graph_dask(nodes: list[Any], client: Any, echo: Callable[[str], None],
                   retries: int = RETRIES) -> dict[str, dict[str, Any]]:
    """Submit every node with its prerequisites' futures; report each as it finishes."""
    from distributed import as_completed

    from .batch import _result, _say, order

    futures: dict[str, Any] = {}
    for n in order(nodes):
        futures[n.id] = client.submit(n.fn, *n.args, *[futures[d] for d in n.deps], key=_key(n.id),
                                      retries=retries, pure=False)
    by_future = {f.key: nid for nid, f in futures.items()}
    results: dict[str, dict[str, Any]] = {}
    for fut in as_completed(list(futures.values())):
        nid = by_future[fut.key]
        if fut.status == "error":
            exc = fut.exception()
            results[nid] = _result(nid, "failed", error=f"{type(exc).__name__}: {exc}")
        else:
            results[nid] = fut.result()
        _say(echo, len(results), len(nodes), results[nid])
    # a node whose prerequisite raised (rather than reporting) inherits the error: name it as blocked
    for n in nodes:
        r = results[n.id]
        if r["status"] == "failed" and any(results[d]["status"] in ("failed", "blocked") for d in n.deps):
            first = next(d for d in n.deps if results[d]["status"] in ("failed", "blocked"))
            results[n.id] = _result(n.id, "blocked", by=results[first].get("by", first))
    return results


def _key(node_id: str) -> str:
    """A Dask key that is unique per run (a rerun in the same cluster must not reuse old results)."""
    return f"{node_id}-{secrets.token_hex(4)}"


class DaskExecutor:
    """The runner's executor protocol on a Dask client: submit(fn, *args) -> concurrent Future."""

    def __init__(self, workers: int | None = None, address: str | None = None,
                 processed_root: Path | None = None):
        self._ctx = connect(address, workers, processed_root, echo=lambda msg: None)
        self.client = self._ctx.__enter__()
        self._max_workers = sum(self.client.nthreads().values()) or 1
        self._submitted: list[Any] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        dfut = self.client.submit(fn, *args, retries=RETRIES, pure=False, **kwargs)
        self._submitted.append(dfut)
        fut: Future = Future()

        def done(d: Any) -> None:
            if fut.cancelled():  # the run stopped waiting for it
                return
            if d.status == "error":
                fut.set_exception(d.exception())
            elif d.status == "cancelled":
                fut.cancel()
            else:
                fut.set_result(d.result())

        dfut.add_done_callback(done)
        fut.dask_future = dfut  # type: ignore[attr-defined]
        return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures and self._ctx is not None:
            self.client.cancel([f for f in self._submitted if not f.done()])
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            ctx.__exit__(None, None, None)
