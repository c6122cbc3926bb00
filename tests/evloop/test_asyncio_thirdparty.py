"""Unmodified third-party asyncio libraries over the virtual network.

aiohttp (an HTTP server and client) and websockets (a WebSocket server and
client) run on SimEventLoop with no real socket and no real waiting. A
bounded fuzz over delivery timing (the ``delay``, ``partition``,
``short-write`` and ``short-read`` faults, each a decision of a seeded random
chooser) finds nothing wrong in their correct exchanges, and an exhaustive
walk over every schedule of a small exchange shows that the bytes of one
direction always arrive in the order written.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import pytest

from evloop import ChoiceKind, RandomChooser, Simulation
from evloop.asyncio import SimEventLoop, run

aiohttp = pytest.importorskip("aiohttp")
web = pytest.importorskip("aiohttp.web")
ws_server = pytest.importorskip("websockets.asyncio.server")
ws_client = pytest.importorskip("websockets.asyncio.client")

#: The data faults that change delivery timing (never the bytes or their order).
TIMING = ["delay", "partition", "short-write", "short-read"]


def run_on(
    main: Callable[[SimEventLoop], Coroutine[Any, Any, Any]], **sim: Any
) -> tuple[Any, int]:
    """Run ``main(loop)`` on a fresh simulation; its result and the faults injected
    (not counting the arrivals of delayed bytes)."""
    with Simulation(log=True, **sim) as simulation:

        async def entry() -> Any:
            loop = asyncio.get_running_loop()
            assert isinstance(loop, SimEventLoop)
            return await main(loop)

        result = run(entry(), sim=simulation)
        assert simulation.log is not None
        faults = sum(
            1 for event in simulation.log
            if event.kind == "fault" and not event.name.endswith("arrive")
        )
        return result, faults


# -- aiohttp ------------------------------------------------------------------------------


async def http_exchange(loop: SimEventLoop) -> list[Any]:
    """An aiohttp app and three concurrent clients: JSON, an uploaded body, a stream."""

    async def echo_json(request: Any) -> Any:
        await asyncio.sleep(0.01)
        return web.json_response({"path": request.path, "q": request.query.get("q")})

    async def upload(request: Any) -> Any:
        body = await request.read()
        return web.json_response({"size": len(body), "sum": sum(body) % 65521})

    async def stream(request: Any) -> Any:
        response = web.StreamResponse()
        await response.prepare(request)
        for i in range(20):
            await response.write(b"%03d," % i)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/json", echo_json)
    app.router.add_post("/upload", upload)
    app.router.add_get("/stream", stream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 8080)
    await site.start()
    body = bytes(range(256)) * 1000
    connector = aiohttp.TCPConnector(socket_factory=loop.net.socket_factory)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:

            async def get_json() -> Any:
                async with session.get("http://localhost:8080/json?q=1") as resp:
                    return resp.status, await resp.json()

            async def post() -> Any:
                async with session.post("http://localhost:8080/upload", data=body) as resp:
                    return resp.status, await resp.json()

            async def get_stream() -> Any:
                async with session.get("http://localhost:8080/stream") as resp:
                    return resp.status, await resp.read()

            return list(await asyncio.gather(get_json(), post(), get_stream()))
    finally:
        await runner.cleanup()


HTTP_RESULT = [
    (200, {"path": "/json", "q": "1"}),
    (200, {"size": 256_000, "sum": sum(range(256)) * 1000 % 65521}),
    (200, b"".join(b"%03d," % i for i in range(20))),
]


def test_aiohttp_server_and_client_over_the_virtual_network() -> None:
    result, faults = run_on(http_exchange)
    assert result == HTTP_RESULT
    assert faults == 0


@pytest.mark.parametrize("seed", range(16))
def test_fuzzing_delivery_timing_finds_nothing_wrong_with_aiohttp(seed: int) -> None:
    result, faults = run_on(http_exchange, seed=seed, chooser=RandomChooser(seed), faults=TIMING)
    assert result == HTTP_RESULT
    assert faults > 0


# -- websockets ----------------------------------------------------------------------------


async def websocket_exchange(loop: SimEventLoop) -> list[Any]:
    async def handler(ws: Any) -> None:
        async for message in ws:
            if message == "close":
                await ws.close(code=4000, reason="asked to")
                return
            await ws.send(json.dumps({"len": len(message), "head": message[:8]}))

    out: list[Any] = []
    async with (
        ws_server.serve(handler, "127.0.0.1", 8765),
        ws_client.connect("ws://localhost:8765") as ws,
    ):
        for message in ("hello", "é" * 1000, "x" * 200_000):
            await ws.send(message)
            out.append(json.loads(await ws.recv()))
        await ws.send("close")
        await ws.wait_closed()
        out.append((ws.close_code, ws.close_reason))
    return out


WS_RESULT = [
    {"len": 5, "head": "hello"},
    {"len": 1000, "head": "é" * 8},
    {"len": 200_000, "head": "x" * 8},
    (4000, "asked to"),
]


def test_websockets_server_and_client_over_the_virtual_network() -> None:
    result, faults = run_on(websocket_exchange, sanitize=True)
    assert result == WS_RESULT
    assert faults == 0


@pytest.mark.parametrize("seed", range(16))
def test_fuzzing_delivery_timing_finds_nothing_wrong_with_websockets(seed: int) -> None:
    result, faults = run_on(
        websocket_exchange, seed=seed, chooser=RandomChooser(seed), faults=TIMING, sanitize=True
    )
    assert result == WS_RESULT
    assert faults > 0


def test_the_same_seed_gives_the_same_run() -> None:
    runs = []
    for _ in range(2):
        with Simulation(3, chooser=RandomChooser(3), faults=TIMING, sanitize=True) as sim:
            run(_with_loop(websocket_exchange), sim=sim)
            runs.append((sim.steps, sim.digest))
    assert runs[0] == runs[1]


def _with_loop(main: Callable[[SimEventLoop], Coroutine[Any, Any, Any]]) -> Any:
    async def entry() -> Any:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, SimEventLoop)
        return await main(loop)

    return entry()


# -- byte order per direction, under every schedule --------------------------------------


class Explorer:
    """A chooser that walks every answer sequence of a deterministic run, depth first."""

    def __init__(self) -> None:
        self.prefix: list[int] = []
        self.widths: list[int] = []
        self.kinds: set[ChoiceKind] = set()
        self._pos = 0

    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        self.kinds.add(kind)
        i = self._pos
        self._pos += 1
        if i < len(self.prefix):
            assert self.widths[i] == len(options), "the run is not deterministic"
            return self.prefix[i]
        self.prefix.append(0)
        self.widths.append(len(options))
        return 0

    def advance(self) -> bool:
        """Move to the next unexplored sequence; False when every one was run."""
        self._pos = 0
        while self.prefix:
            if self.prefix[-1] + 1 < self.widths[-1]:
                self.prefix[-1] += 1
                return True
            self.prefix.pop()
            self.widths.pop()
        return False


CHUNKS = {"client": [b"c1-", b"c22-"], "server": [b"s1-"]}


async def ordered_exchange(loop: SimEventLoop) -> tuple[bytes, bytes]:
    """Each side writes its chunks as separate socket writes and reads the other's to EOF."""

    async def talk(side: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        async def send() -> None:
            for chunk in CHUNKS[side]:
                writer.write(chunk)
                await writer.drain()
                await asyncio.sleep(0)  # one write per chunk
            writer.write_eof()

        sending = asyncio.ensure_future(send())
        received = await reader.read()
        await sending
        writer.close()
        return received

    server_got: asyncio.Future[bytes] = loop.create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_got.set_result(await talk("server", reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 9000)
    reader, writer = await asyncio.open_connection("127.0.0.1", 9000)
    client_got = await talk("client", reader, writer)
    got = await server_got
    server.close()
    await server.wait_closed()
    return got, client_got


def test_byte_order_per_direction_holds_under_every_schedule() -> None:
    explorer = Explorer()
    runs = 0
    outcomes = set()
    while True:
        runs += 1
        assert runs <= 1000, "the schedule space is larger than this test means to walk"
        (server_got, client_got), faults = run_on(ordered_exchange, chooser=explorer,
                                                  faults=["delay"])
        assert server_got == b"".join(CHUNKS["client"])
        assert client_got == b"".join(CHUNKS["server"])
        outcomes.add(faults)
        if not explorer.advance():
            break
    # Every schedule: each write delayed 0, 1 or 10 ms, every tie between
    # arrivals and between ready fds ordered every way.
    assert runs == 178
    assert explorer.kinds == {ChoiceKind.FAULT, ChoiceKind.EXTERNAL, ChoiceKind.READY_FD}
    assert outcomes == {0, 1, 2, 3}  # runs with no delay, and with every write delayed
