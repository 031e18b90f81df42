"""Recording results durably, many per transaction (group commit).

`record()` returns once its result is committed. Results arriving while a flush runs wait for
the next one, so transactions grow with the load: one result each when the engine is quiet,
hundreds when it is busy. A flush starts when `flush_size` results wait, or `max_delay`
seconds after the first of them arrived.

Callers hold a request's "unrecorded" slot until `record()` returns (not its call slot: the
next call goes out while the answer waits for its commit), so the answers the store does
not hold yet, plus the calls out, never exceed the worker's `max_unrecorded`: that bounds
what a crash can make the provider see twice.

A flush that fails records its results one by one: a result the store refuses (a value out
of its range, say) is recorded as a failed result saying so, and the others go on; when the
store refuses even that (it is briefly unavailable), the flush keeps its results and tries
again. Recording is idempotent, so trying again is safe, and no result is ever dropped.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import fields, replace

from datamill.clock import Clock, wait_event
from datamill.providers.base import clamp_tokens
from datamill.storage.database import Database
from datamill.storage.records import RequestResult
from datamill.storage.results import BatchTally, RecordOutcome, record_results

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
                await wait_event(self._clock, self._full, self._max_delay)
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
                log.exception("recording %d results failed; recording them one by one", len(batch))
            apart = await self._record_apart(batch)
            if apart is not None:
                outcome = apart
                break
            log.warning("the store refuses results; retrying in %.2f s", delay)
            await self._clock.sleep(delay)
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

    async def _record_apart(self, batch: list[RequestResult]) -> RecordOutcome | None:
        """Record ``batch`` one result at a time, a refused one as a failure saying why; None
        when the store refuses even that (it is down: the whole flush is tried again)."""
        total = RecordOutcome()
        for result in batch:
            try:
                outcome = await record_results(self._db, [result], now=self._clock.now())
            except Exception as exc:
                try:
                    outcome = await record_results(
                        self._db, [unwritable(result, exc)], now=self._clock.now()
                    )
                except Exception:
                    return None
                log.error(
                    "request %s of batch %s: its result could not be stored (%s); "
                    "recorded as failed",
                    result.custom_id,
                    result.batch_id,
                    type(exc).__name__,
                )
            _merge(total, outcome)
        return total

    def close(self) -> None:
        """Flush what is waiting, then stop."""
        self._closing = True
        self._arrived.set()
        self._full.set()


def unwritable(result: RequestResult, exc: Exception) -> RequestResult:
    """A failed result in place of ``result``, which the store refused: it keeps only what
    the store surely takes (no body, usage clamped, cost only when it is a sane number)."""
    cost = result.cost if math.isfinite(result.cost) and result.cost >= 0 else 0.0
    return replace(
        result,
        ok=False,
        status_code=None,
        body=None,
        provider_request_id=None,
        error_code="internal_error",
        error_message=f"the answer could not be stored ({type(exc).__name__}); "
        "it is recorded as failed instead",
        input_tokens=clamp_tokens(result.input_tokens),
        cached_tokens=clamp_tokens(result.cached_tokens),
        output_tokens=clamp_tokens(result.output_tokens),
        reasoning_tokens=clamp_tokens(result.reasoning_tokens),
        cost=cost,
    )


def _merge(total: RecordOutcome, outcome: RecordOutcome) -> None:
    total.accepted += outcome.accepted
    total.duplicates += outcome.duplicates
    for batch_id, tally in outcome.by_batch.items():
        into = total.by_batch.setdefault(batch_id, BatchTally())
        for name in (f.name for f in fields(BatchTally)):
            setattr(into, name, getattr(into, name) + getattr(tally, name))
