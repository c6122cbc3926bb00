"""CPython's own asyncio tests, unchanged, on simulated loops (trio-asyncio's pattern).

Every test case class of the listed ``test.test_asyncio`` modules is
collected here as is, with :class:`evloop.asyncio.EventLoopPolicy` installed
around each test: the tests that get their loop from the policy
(``IsolatedAsyncioTestCase``, ``asyncio.run``, ``asyncio.new_event_loop``)
run on a :class:`~evloop.asyncio.SimEventLoop`. Tests that build their own
loop class (``test_utils.TestLoop``, ``asyncio.SelectorEventLoop()``) keep it.

``KNOWN`` lists the tests that cannot pass on a simulated loop, each with
its reason. They are skipped rather than run as expected failures: each would
open real sockets, start real threads or processes, or look at the file
system on its way to failing, and the run must stay offline and leave
nothing behind. ``SLOW`` marks the tests that take over about a second. The module
is skipped where the interpreter ships without its ``test`` package.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import inspect
import sys
import unittest
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

import evloop.asyncio

pytest.importorskip("test.test_asyncio", reason="this Python ships without its test package")

#: Modules whose tests must all pass (or be listed in ``KNOWN``), and the
#: first Python version that ships each.
MODULES: dict[str, tuple[int, int]] = {
    "test_base_events": (3, 11),
    "test_buffered_proto": (3, 11),
    "test_context": (3, 11),
    "test_eager_task_factory": (3, 12),
    "test_futures": (3, 11),
    "test_futures2": (3, 11),
    "test_locks": (3, 11),
    "test_pep492": (3, 11),
    "test_protocols": (3, 11),
    "test_queues": (3, 11),
    "test_runners": (3, 11),
    "test_server": (3, 11),
    "test_streams": (3, 11),
    "test_taskgroups": (3, 11),
    "test_tasks": (3, 11),
    "test_threads": (3, 11),
    "test_timeouts": (3, 11),
    "test_transports": (3, 11),
    "test_unix_events": (3, 11),
    "test_waitfor": (3, 11),
}

ALL_VERSIONS = frozenset({(3, 11), (3, 12), (3, 13)})


@dataclass(frozen=True)
class Known:
    """Why one test cannot pass here, and how it is kept out of the verdict."""

    reason: str
    #: The Python versions where the test exists and fails.
    versions: frozenset[tuple[int, int]] = ALL_VERSIONS


REAL_SOCKETS = Known(
    "talks to real OS sockets (test_utils' server threads, socket.socket, socketpair): the "
    "virtual network cannot reach them and the loop refuses their fds (fenced)",
)
TLS = Known(
    "TLS (ssl=, start_tls) is fenced: OpenSSL draws randomness the simulation cannot route",
)
SUBPROCESS = Known(
    "runs a child process under the loop (subprocess_exec, connect_read_pipe on its pipe): "
    "subprocesses are fenced",
)
FORK = Known(
    "forks real processes (multiprocessing 'fork') that run asyncio under the inherited "
    "policy; subprocesses and signals are fenced and a forked child leaves the simulation",
    versions=frozenset({(3, 12), (3, 13)}),
)
UNIX_PATH_ON_DISK = Known(
    "checks the file a unix server leaves on disk: the virtual network keeps unix paths in "
    "its own namespace and creates no file",
    versions=frozenset({(3, 13)}),
)


def _each(module: str, cls: str, names: tuple[str, ...], known: Known) -> dict[str, Known]:
    return {f"{module}.{cls}.{name}": known for name in names}


_STREAMS_REAL = (
    "test_async_writer_api",
    "test_async_writer_api_exception_after_close",
    "test_drain_raises",
    "test_eof_feed_when_closing_writer",
    "test_loop_is_closed_resource_warnings",
    "test_open_connection",
    "test_open_connection_error",
    "test_open_unix_connection",
    "test_open_unix_connection_error",
    "test_start_server",
    "test_unclosed_resource_warnings",
    "test_wait_closed_on_close",
    "test_wait_closed_on_close_with_unread_data",
)
_SENDFILE_REAL = (
    "test_sock_sendfile_blocking_error",
    "test_sock_sendfile_cancel1",
    "test_sock_sendfile_cancel2",
    "test_sock_sendfile_exception",
    "test_sock_sendfile_iobuffer",
    "test_sock_sendfile_not_a_file",
    "test_sock_sendfile_not_available",
    "test_sock_sendfile_not_regular_file",
    "test_sock_sendfile_os_error_first_call",
    "test_sock_sendfile_os_error_next_call",
)

#: "module.Class.test" -> why it cannot pass on a simulated loop.
KNOWN: dict[str, Known] = {
    **_each("test_streams", "StreamTests", _STREAMS_REAL, REAL_SOCKETS),
    "test_streams.StreamTests.test_unclosed_server_resource_warnings": Known(
        REAL_SOCKETS.reason, versions=frozenset({(3, 13)})
    ),
    **_each(
        "test_streams",
        "StreamTests",
        ("test_open_connection_no_loop_ssl", "test_open_unix_connection_no_loop_ssl",
         "test_start_tls"),
        TLS,
    ),
    "test_streams.StreamTests.test_read_all_from_pipe_reader": SUBPROCESS,
    **_each("test_unix_events", "SelectorEventLoopUnixSockSendfileTests", _SENDFILE_REAL,
            REAL_SOCKETS),
    "test_unix_events.TestFunctional.test_add_reader_or_writer_transport_fd": REAL_SOCKETS,
    **_each(
        "test_unix_events",
        "TestFork",
        ("test_fork_asyncio_run", "test_fork_asyncio_subprocess", "test_fork_signal_handling"),
        FORK,
    ),
    **_each(
        "test_server",
        "UnixServerCleanupTests",
        ("test_unix_server_sock_cleanup", "test_unix_server_cleanup_gone"),
        Known(REAL_SOCKETS.reason, versions=frozenset({(3, 13)})),
    ),
    **_each(
        "test_server",
        "UnixServerCleanupTests",
        ("test_unix_server_cleanup_prevented", "test_unix_server_cleanup_replaced"),
        UNIX_PATH_ON_DISK,
    ),
}

#: Tests over about a second: they start a fresh Python interpreter.
SLOW = frozenset(
    {
        "test_base_events.BaseEventLoopTests.test_env_var_debug",
        "test_tasks.CoroutineGatherTests.test_env_var_debug",
        "test_tasks.FutureGatherTests.test_env_var_debug",
    }
)

_VERSION = sys.version_info[:2]
_known = {test: k for test, k in KNOWN.items() if _VERSION in k.versions}


def _marked(test: str, method: Callable[..., object]) -> Callable[..., object]:
    known = _known.get(test)
    if known is not None:
        return unittest.skip(known.reason)(method)
    if test in SLOW:
        method = pytest.mark.slow(method)
    return method


def _modules() -> list[str]:
    return [name for name, since in MODULES.items() if since <= _VERSION]


def _test_cases(name: str) -> Iterator[tuple[str, type[unittest.TestCase]]]:
    module = importlib.import_module(f"test.test_asyncio.{name}")
    for attr, value in sorted(vars(module).items()):
        if (
            inspect.isclass(value)
            and issubclass(value, unittest.TestCase)
            and value.__module__ == module.__name__
            and any(m.startswith("test") for m in dir(value))
        ):
            yield attr, value


def _collect() -> dict[str, type[unittest.TestCase]]:
    found: dict[str, type[unittest.TestCase]] = {}
    for name in _modules():
        for attr, value in _test_cases(name):
            marked = {
                m: _marked(f"{name}.{attr}.{m}", getattr(value, m))
                for m in dir(value)
                if f"{name}.{attr}.{m}" in _known or f"{name}.{attr}.{m}" in SLOW
            }
            found[f"{name}__{attr}"] = type(attr, (value,), marked) if marked else value
    return found


globals().update(_collect())


@pytest.fixture(autouse=True)
def _simulated_loops() -> Iterator[evloop.asyncio.EventLoopPolicy]:
    # The heap the test process built before this test is frozen while it
    # runs: several CPython tests call gc.collect() a hundred times, which
    # over pytest's whole heap took minutes instead of milliseconds. Objects
    # the test makes are still collected as usual.
    gc.freeze()
    policy = evloop.asyncio.EventLoopPolicy()
    asyncio.set_event_loop_policy(policy)
    try:
        yield policy
    finally:
        asyncio.set_event_loop_policy(None)
        gc.unfreeze()


def test_the_policy_is_in_force_for_isolated_test_cases(
    _simulated_loops: evloop.asyncio.EventLoopPolicy,
) -> None:
    seen: list[object] = []

    class Probe(unittest.IsolatedAsyncioTestCase):
        async def test_probe(self) -> None:
            seen.append(asyncio.get_running_loop())
            await asyncio.sleep(60)

    result = unittest.TestResult()
    Probe("test_probe").run(result)
    assert result.wasSuccessful(), result.errors
    assert len(seen) == 1
    assert isinstance(seen[0], evloop.asyncio.SimEventLoop)
    assert _simulated_loops.loops == 1


def test_every_known_failure_names_a_test_of_this_python() -> None:
    tests = {
        f"{name}.{attr}.{m}"
        for name in _modules()
        for attr, value in _test_cases(name)
        for m in dir(value)
        if m.startswith("test")
    }
    assert sorted(set(_known) - tests) == []
    assert sorted(SLOW - tests) == []
