"""Recording results durably, many per transaction (group commit).

`record()` returns once its result is committed. Results arriving while a flush runs wait for
the next one, so transactions grow with the load: one result each when the engine is quiet,
hundreds when it is busy. A flush starts when `flush_size` results wait, or `max_delay`
seconds after the first of them arrived.

Callers hold a request's "unrecorded" slot until `record()` returns (not its call slot: the
next call goes out while the answer waits for its commit), so the answers the store does
not hold yet, plus the calls out, never exceed the worker's `max_unrecorded`: that bounds
what a crash can make the provider see twice.

A flush that fails (the store is briefly unavailable) keeps its results and tries again;
recording is idempotent, so trying again is safe, and no result is ever dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from datamill.clock import Clock
from datamill.storage.database import Database
from datamill.storage.records import RequestResult
from datamill.storage.results import RecordOutcome, record_results

log = logging.getLogger("datamill.engine")

FlushListener = Callable[[RecordOutcome], Awaitable[None]]


class ResultWriter:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        flush_size: int = 256,
        max_delay: float = 0.005,
        on_flush: FlushListener | None = None,
    ) -> None:
        self._db = database
        self._clock = clock
        self._flush_size = max(1, flush_size)
        self._max_delay = max_delay
        self._on_flush = on_flush
        self._buffer: list[RequestResult] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = False
        self.recorded = 0
        self.duplicates = 0

    async def record(self, result: RequestResult) -> None:
        """Return once ``result`` is committed. Cancelling the caller does not withdraw it."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buffer.append(result)
        self._waiters.append(done)
        self._arrived.set()
        if len(self._buffer) >= self._flush_size:
            self._full.set()
        await asyncio.shield(done)

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def run(self) -> None:
        """Flush until `close` is called and nothing is left to record."""
        while True:
            if not self._buffer:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            if len(self._buffer) < self._flush_size and not self._closing:
                try:
                    async with asyncio.timeout(self._max_delay):
                        await self._full.wait()
                except TimeoutError:
                    pass
            await self._flush()

    async def _flush(self) -> None:
        batch, self._buffer = self._buffer, []
        waiters, self._waiters = self._waiters, []
        self._full.clear()
        delay = 0.05
        while True:
            try:
                outcome = await record_results(self._db, batch, now=self._clock.now())
                break
            except Exception:
                log.exception("recording %d results failed; retrying in %.2f s", len(batch), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.recorded += outcome.accepted
        self.duplicates += outcome.duplicates
        if self._on_flush is not None:
            try:
                await self._on_flush(outcome)
            except Exception:
                log.exception("flush listener failed")

    def close(self) -> None:
        """Flush what is waiting, then stop."""
        self._closing = True
        self._arrived.set()
        self._full.set()
