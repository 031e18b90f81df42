"""A raw TCP server on 127.0.0.1 for the test servers that speak HTTP by hand (a hostile
upstream, a forward proxy): started and stopped with ``async with``, every connection
tracked so that stopping hangs up on all of them and waits for their handlers."""

from __future__ import annotations

import asyncio
from typing import Self


class LoopbackServer:
    """Subclasses implement `handle`, one call per connection; `closing` is set when the
    server stops (a handler that waits on purpose waits for it)."""

    def __init__(self) -> None:
        self.port = 0
        self.closing = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        # Hang up on every client: each handler then ends on its own (none is cancelled).
        self.closing.set()
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self.handle(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()
