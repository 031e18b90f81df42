"""Writing the gateway's calls to the store, off the request path.

`CallLog.record` only queues; a background task (`background.BackgroundWriter`) writes what
piled up in one transaction every quarter second (or at 500 calls). A store that is briefly
down delays the writes, and beyond ``max_pending`` queued calls the oldest are dropped with a
warning: accounting must never slow down or fail the calls it accounts for.
"""

from __future__ import annotations

import logging

from datamill.background import BackgroundWriter, WriterTiming
from datamill.clock import Clock
from datamill.gateway.service import CallRecord
from datamill.scheduler.pricing import call_cost
from datamill.scheduler.router import Router
from datamill.storage.database import Database
from datamill.storage.usage import GatewayCallRow, record_gateway_calls

log = logging.getLogger("datamill.gateway")

_ROWS_PER_WRITE = 5000


class CallLog(BackgroundWriter[GatewayCallRow]):
    def __init__(
        self,
        database: Database,
        router: Router,
        clock: Clock,
        *,
        interval: float = 0.25,
        flush_size: int = 500,
        max_pending: int = 100_000,
    ) -> None:
        # Written every interval, or at once when flush_size calls wait; a failed write is
        # tried again each second.
        timing = WriterTiming(interval=interval, retry_first=1.0, retry_most=1.0)
        super().__init__(
            clock,
            timing,
            name="gateway-call-log",
            items="gateway calls",
            log=log,
            max_pending=max_pending,
        )
        self._database = database
        self._router = router
        self._flush_size = flush_size

    def record(self, call: CallRecord) -> None:
        """Queue a call (its cost at its deployment's prices); never blocks."""
        handle = self._router.get(call.deployment) if call.deployment else None
        cost = call_cost(handle.config, call.usage) if handle is not None else 0.0
        self._enqueue(
            GatewayCallRow(
                project_id=call.project_id,
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
                key_id=call.key_id,
            )
        )
        if self.pending >= self._flush_size:
            self._wake()
        else:
            self._start()

    async def _write(self) -> None:
        while self.pending:
            rows = self._take(_ROWS_PER_WRITE)
            try:
                await record_gateway_calls(self._database, rows)
            except Exception:
                self._put_back(rows)
                raise
