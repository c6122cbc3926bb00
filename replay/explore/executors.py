"""Where a campaign's batches run: this process, a process pool, or a Dask cluster.

Every executor here is a :class:`concurrent.futures.Executor`; Dask's
(``distributed.Client.get_executor()``) is one too, so the campaign loop does
not know which it has.

* ``process``: a :class:`ProcessPoolExecutor` whose start method is pinned:
  ``fork`` where the platform has it (a forked worker starts in about a
  millisecond with the scenario already imported; Python 3.14 makes
  ``forkserver`` the default on POSIX, which halves a campaign's throughput
  here), ``spawn`` elsewhere. Workers ignore SIGINT: Ctrl-C at a terminal
  reaches the whole process group, and only the client decides what an
  interrupt means (it keeps what finished).
* ``dask-local``: a :class:`distributed.LocalCluster` on this machine, one
  single-threaded worker process per worker, bound to 127.0.0.1 with no
  dashboard (no address discovery, nothing listening beyond loopback).
* ``tcp://HOST:PORT``: the scheduler of a running Dask cluster. Its workers
  must be able to import the scenario's module and evreplay.

Dask is an optional extra (``pip install evreplay[dask]``); asking for it
without it installed is a :class:`~replay.errors.ReplayError` that says so.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

from ..errors import ReplayError

__all__ = ["START_METHOD", "campaign_executor", "dask_executor", "process_executor"]

#: The process pool's start method, pinned (never the interpreter's default).
START_METHOD = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def process_executor(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes, started with :data:`START_METHOD`."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context(START_METHOD),
        initializer=_ignore_sigint,
    )


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ReplayError(
            "the Dask executors need Dask's distributed scheduler: pip install 'evreplay[dask]'"
        ) from None
    return distributed


def quiet_dask() -> None:
    """No log lines from Dask on stderr, no address discovery beyond loopback."""
    import logging

    import dask

    dask.config.set({
        "distributed.logging.distributed": "error",
        "distributed.admin.system-monitor.gil.enabled": False,
    })  # fmt: skip
    for name in ("distributed", "distributed.nanny", "distributed.scheduler",
                 "distributed.worker", "distributed.core", "distributed.http.proxy"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextmanager
def dask_executor(
    address: str | None, workers: int, *, processes: bool = True
) -> Iterator[tuple[Executor, int]]:
    """A Dask client's executor and its worker count: a local cluster, or the one at ``address``.

    ``processes=False`` runs the local cluster's workers as threads of this
    process (the tests' mode: starts in well under a second).
    """
    distributed = _distributed()
    quiet_dask()
    if address is None:
        # Bound to loopback by address, so Dask never looks for its own
        # address on the way out (its default reaches for a public host). The
        # scheduler's HTTP server (health and metrics routes) is always there:
        # on loopback too, at a free port; no dashboard.
        cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=processes, host="127.0.0.1",
            protocol="tcp", scheduler_port=0, silence_logs=50,
            scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
        )  # fmt: skip
        try:
            with distributed.Client(cluster) as client:
                yield client.get_executor(), workers
        finally:
            cluster.close()
        return
    try:
        client = distributed.Client(address, timeout="10s")
    except OSError as exc:
        raise ReplayError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        threads = sum(client.nthreads().values()) or 1
        yield client.get_executor(), threads
    finally:
        client.close()


@contextmanager
def campaign_executor(name: str, workers: int) -> Iterator[tuple[Executor | None, int]]:
    """The executor ``--executor NAME`` means, and how many batches it runs at once.

    ``process`` with one worker is no pool at all: the campaign runs in this process.
    """
    if name == "process":
        if workers == 1:
            yield None, 1
            return
        pool = process_executor(workers)
        try:
            yield pool, workers
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    elif name == "dask-local":
        with dask_executor(None, workers) as pair:
            yield pair
    elif name.startswith("tcp://"):
        with dask_executor(name, workers) as pair:
            yield pair
    else:
        raise ValueError(f"unknown executor {name!r}: process, dask-local or tcp://HOST:PORT")
