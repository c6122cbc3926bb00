"""A cache server over the virtual network, and the ordering bug its two clients race into.

The server keeps a cache in front of a slow store (cache-aside): ``GET`` answers
from the cache, or reads the store and caches what it read; ``SET`` writes the
store, then drops the cached copy. Every store call takes a millisecond.

The bug is the classic stale set: a ``GET`` that read the store *before* a
``SET`` wrote it finishes *after* the ``SET`` dropped the cached copy, and
caches the old value for good. In asyncio's own order the reader's request is
handled first and its store read finishes first, so a plain run is clean.
When the writer's request is handled first, or the two store calls that end at
the same instant end the other way round, every later ``GET`` answers a value
the store no longer holds. ``fixed=True`` counts the drops per key: a ``GET``
caches what it read only if no ``SET`` dropped that key while it was reading
(a ``SET`` still under way when the ``GET`` ends drops the copy itself later).

Nothing here knows about evreplay: ``main`` is a plain asyncio program
(``asyncio.run(main())`` runs it on a real loop and real sockets). As a
scenario (``replay.examples.cache_service:main``) it runs on the simulation's loop,
clock and network, where every order asyncio leaves open is a recorded
decision.

PYTEST_DONT_REWRITE (its failure message is the same under pytest as in ``replay``)
"""

from __future__ import annotations

import asyncio

#: Where the cache server listens.
HOST, PORT = "127.0.0.1", 6380
#: How long one store call takes, in seconds.
STORE_LATENCY = 0.001


class Store:
    """The slow store behind the cache: a read returns the value as of its start."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {b"x": b"1"}

    async def read(self, key: bytes) -> bytes:
        value = self.data.get(key, b"")
        await asyncio.sleep(STORE_LATENCY)
        return value

    async def write(self, key: bytes, value: bytes) -> None:
        await asyncio.sleep(STORE_LATENCY)
        self.data[key] = value


class CacheServer:
    """A line protocol: ``GET key`` answers the value, ``SET key value`` answers ``OK``."""

    def __init__(self, store: Store, *, fixed: bool = False) -> None:
        self.store = store
        self.fixed = fixed
        self.cache: dict[bytes, bytes] = {}
        #: How often a SET dropped each key's cached copy (what the fix looks at).
        self.dropped: dict[bytes, int] = {}

    async def get(self, key: bytes) -> bytes:
        if key in self.cache:
            return self.cache[key]
        dropped = self.dropped.get(key, 0)
        value = await self.store.read(key)
        if not self.fixed or self.dropped.get(key, 0) == dropped:
            self.cache[key] = value  # the bug: a SET may have dropped the cache meanwhile
        return value

    async def set(self, key: bytes, value: bytes) -> None:
        await self.store.write(key, value)
        self.cache.pop(key, None)
        self.dropped[key] = self.dropped.get(key, 0) + 1

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            command, key, *rest = line.split()
            if command == b"GET":
                reply = await self.get(key)
            else:
                await self.set(key, rest[0])
                reply = b"OK"
            writer.write(reply + b"\n")
            await writer.drain()
        writer.close()  # the client reads to this end of file: the handler is done by then


async def request(line: bytes) -> bytes:
    """One client: connect, send one command and end of file, read the reply to the end."""
    reader, writer = await asyncio.open_connection(HOST, PORT)
    writer.write(line + b"\n")
    writer.write_eof()
    reply = await reader.read()
    writer.close()
    await writer.wait_closed()
    return reply.strip()


async def main(*, fixed: bool = False) -> None:
    """Two clients race a GET and a SET of one key; a later GET must see the store's value."""
    store = Store()
    server = await asyncio.start_server(CacheServer(store, fixed=fixed).handle, HOST, PORT)
    async with server:
        await asyncio.gather(request(b"GET x"), request(b"SET x 2"))
        cached = await request(b"GET x")
    stored = store.data[b"x"]
    assert cached == stored, f"stale cache: GET x answers {cached!r}, the store holds {stored!r}"


async def main_fixed() -> None:
    """The same race against the fixed server (what a regression rerun runs once it is fixed)."""
    await main(fixed=True)


if __name__ == "__main__":
    asyncio.run(main())
