"""Buffering results and recording them in batched transactions.

SQLite has one writer, so the hot path writes many results per transaction: a flush happens
when `flush_size` results wait or `flush_interval` seconds after the first one arrived. A
flush that fails (the store is briefly unavailable) keeps its results and tries again; a
result is never dropped, and recording is idempotent, so trying again is safe.
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
        flush_size: int = 512,
        flush_interval: float = 0.05,
        on_flush: FlushListener | None = None,
    ) -> None:
        self._db = database
        self._clock = clock
        self._flush_size = flush_size
        self._flush_interval = flush_interval
        self._on_flush = on_flush
        self._buffer: list[RequestResult] = []
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self.recorded = 0
        self.duplicates = 0

    def add(self, result: RequestResult) -> None:
        self._buffer.append(result)
        self._idle.clear()
        self._arrived.set()
        if len(self._buffer) >= self._flush_size:
            self._full.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def run(self) -> None:
        """Flush until `close` is called and the buffer is empty."""
        while True:
            if not self._buffer:
                self._idle.set()
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            if len(self._buffer) < self._flush_size and not self._closing:
                try:
                    await asyncio.wait_for(self._full.wait(), timeout=self._flush_interval)
                except TimeoutError:
                    pass
            await self._flush()

    async def _flush(self) -> None:
        batch, self._buffer = self._buffer, []
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
        self.recorded += outcome.accepted
        self.duplicates += outcome.duplicates
        if self._on_flush is not None:
            try:
                await self._on_flush(outcome)
            except Exception:
                log.exception("flush listener failed")

    async def drained(self) -> None:
        """Wait until every result added so far is recorded."""
        await self._idle.wait()

    def close(self) -> None:
        """Flush what is buffered, then stop."""
        self._closing = True
        self._arrived.set()
        self._full.set()
