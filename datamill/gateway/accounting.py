"""Writing the gateway's calls to the store, off the request path.

`CallLog.record` only queues; a background task writes what piled up in one transaction every
quarter second (or at 500 calls). A store that is briefly down delays the writes, and beyond
``max_pending`` queued calls the oldest are dropped with a warning: accounting must never
slow down or fail the calls it accounts for.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from datamill.gateway.service import CallRecord
from datamill.scheduler.pricing import call_cost
from datamill.scheduler.router import Router
from datamill.storage.database import Database
from datamill.storage.schema import DEFAULT_PROJECT_ID
from datamill.storage.usage import GatewayCallRow, record_gateway_calls

log = logging.getLogger("datamill.gateway")


class CallLog:
    def __init__(
        self,
        database: Database,
        router: Router,
        *,
        interval: float = 0.25,
        flush_size: int = 500,
        max_pending: int = 100_000,
    ) -> None:
        self._database = database
        self._router = router
        self._interval = interval
        self._flush_size = flush_size
        self._pending: deque[GatewayCallRow] = deque(maxlen=max_pending)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def record(self, call: CallRecord) -> None:
        """Queue a call (its cost at its deployment's prices); never blocks."""
        handle = self._router.get(call.deployment) if call.deployment else None
        cost = call_cost(handle.config, call.usage) if handle is not None else 0.0
        if len(self._pending) == self._pending.maxlen:
            log.warning("gateway accounting is behind: dropping the oldest unwritten call")
        self._pending.append(
            GatewayCallRow(
                project_id=DEFAULT_PROJECT_ID,
                model=call.model,
                deployment=call.deployment,
                endpoint=call.endpoint.value,
                stream=call.stream,
                ok=call.ok,
                error_code=call.error_code,
                input_tokens=call.usage.input_tokens,
                cached_tokens=call.usage.cached_tokens,
                output_tokens=call.usage.output_tokens,
                reasoning_tokens=call.usage.reasoning_tokens,
                cost=cost,
                latency_ms=call.latency * 1000,
                first_token_ms=call.first_token * 1000 if call.first_token is not None else None,
                created_at=call.started_at,
            )
        )
        if len(self._pending) >= self._flush_size:
            self._wake.set()
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="gateway-call-log")

    async def flush(self) -> None:
        """Write everything queued now."""
        while self._pending:
            rows = [self._pending.popleft() for _ in range(min(len(self._pending), 5000))]
            try:
                await record_gateway_calls(self._database, rows)
            except Exception:
                self._pending.extendleft(reversed(rows))
                raise

    async def _run(self) -> None:
        while not self._closed:
            try:
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("could not record gateway calls; retrying")
                await asyncio.sleep(1.0)

    async def aclose(self) -> None:
        """Stop the background writer and write what is left."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self.flush()
        except Exception:
            log.exception("could not record the last %d gateway calls", len(self._pending))
