"""The webhooks side task: turns new events into deliveries, then delivers what is due.

Each round (every ``DATAMILL_WEBHOOKS_POLL_INTERVAL`` seconds of the clock, or at once when
woken by a replay or a ping of this process) it

1. tails the events table from the stored cursor (`storage.webhooks.produce`): one
   transaction inserts the round's messages for the matching endpoints and advances the
   cursor, so every process running it may race and none enqueues a message twice;
2. claims the due deliveries (`storage.webhooks.claim_deliveries`) and POSTs each, signed
   (`signing.py`), through the process's HTTP pool: no redirect is followed; a 2xx is
   delivered; a 410 disables the endpoint; anything else is tried again after the next
   delay of ``DATAMILL_WEBHOOKS_RETRY_SCHEDULE`` (jittered by up to 10%), and after the
   last one the delivery has failed. The receiver's address is checked again before each
   attempt.

Events pruned (``DATAMILL_EVENTS_RETENTION``) before any process tailed them make no
message: that needs no process with a worker to run for longer than the retention. The
gap is logged as a warning.
"""

from __future__ import annotations

import asyncio
import logging
import random

from datamill.clock import Clock, wait_event
from datamill.errors import ProviderError
from datamill.providers.http import HttpPool
from datamill.settings import Settings
from datamill.storage import webhooks as repo
from datamill.storage.database import Database
from datamill.storage.webhooks import ClaimedDelivery
from datamill.webhooks.addresses import AddressRefused, check_url
from datamill.webhooks.messages import plan_deliveries
from datamill.webhooks.signing import signed_headers

log = logging.getLogger("datamill.webhooks")

_PRODUCE_LIMIT = 500  # events per transaction
_CLAIM_LIMIT = 16  # deliveries in flight per round
_MAX_ERROR = 500  # characters of a receiver's answer kept in the log


class WebhookDispatcher:
    """One per process that runs workers: `run` until `stop`."""

    def __init__(
        self, database: Database, http: HttpPool, clock: Clock, settings: Settings
    ) -> None:
        self.database = database
        self.http = http
        self.clock = clock
        self.settings = settings
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Look for due work now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            await self.run_once()
            if not self._stopping:
                await wait_event(self.clock, self._wake, self.settings.webhooks_poll_interval)

    async def run_once(self) -> int:
        """One round: produce every new message, then deliver the due ones; return how
        many attempts were made. With no enabled endpoint anywhere it only reads: no write
        transaction a second beside the engine's (the cursor waits; endpoints only get
        events written after they were made)."""
        if not await repo.any_enabled_endpoint(self.database):
            return 0
        await self.produce()
        attempts = 0
        while not self._stopping:
            claimed = await repo.claim_deliveries(
                self.database,
                now=self.clock.now(),
                lease=self.settings.webhooks_timeout + 60.0,
                limit=_CLAIM_LIMIT,
            )
            if not claimed:
                break
            await asyncio.gather(*(self.deliver(c) for c in claimed))
            attempts += len(claimed)
        return attempts

    async def produce(self) -> None:
        while True:
            produced = await repo.produce(
                self.database, plan_deliveries, now=self.clock.now(), limit=_PRODUCE_LIMIT
            )
            if produced is None:
                continue  # another process moved the cursor: read from where it is now
            if (
                produced.events
                and produced.cursor > 0
                and produced.lowest_kept is not None
                and produced.lowest_kept > produced.cursor + 1
            ):
                log.warning(
                    "events %d to %d were pruned before webhooks read them: they sent nothing",
                    produced.cursor + 1,
                    produced.lowest_kept - 1,
                )
            if produced.events < _PRODUCE_LIMIT:
                return

    async def deliver(self, claimed: ClaimedDelivery) -> None:
        """One attempt of one delivery, and its outcome recorded."""
        delivery, endpoint = claimed.delivery, claimed.endpoint
        status_code: int | None = None
        error: str | None = None
        try:
            await check_url(endpoint.url, allow_private=self.settings.webhooks_allow_private)
            payload = delivery.payload.encode()
            headers = signed_headers(
                endpoint.secret,
                message_id=delivery.id,
                timestamp=int(self.clock.now()),
                body=payload,
            )
            async with asyncio.timeout(self.settings.webhooks_timeout):
                answer = await self.http.post(endpoint.url, data=payload, headers=headers)
            status_code = answer.status
            if not 200 <= status_code < 300:
                text = answer.body[:_MAX_ERROR].decode("utf-8", "replace")
                error = f"HTTP {status_code}" + (f": {text}" if text else "")
        except AddressRefused as exc:
            await self._record(claimed, "failed", None, str(exc))
            return
        except TimeoutError:
            error = f"no answer within {self.settings.webhooks_timeout:g} s"
        except ProviderError as exc:
            error = exc.message
        except Exception as exc:
            # A bug must not stop the side task (nor, failing again and again, the process):
            # the attempt counts as failed and is retried on the schedule.
            log.exception("webhook %s: the attempt failed unexpectedly", delivery.id)
            error = f"internal error: {type(exc).__name__}"
        if error is None:
            await self._record(claimed, "delivered", status_code, None)
        elif status_code == 410:
            await self._record(
                claimed, "failed", status_code, error, disable="the receiver answered 410 Gone"
            )
        else:
            await self._record(claimed, "pending", status_code, error)

    async def _record(
        self,
        claimed: ClaimedDelivery,
        status: str,
        status_code: int | None,
        error: str | None,
        *,
        disable: str | None = None,
    ) -> None:
        delivery = claimed.delivery
        now = self.clock.now()
        next_at: float | None = None
        if status == "pending":
            schedule = self.settings.webhooks_retry_schedule
            if delivery.attempts > len(schedule):
                status = "failed"
            else:
                delay = schedule[delivery.attempts - 1]
                next_at = now + delay * random.uniform(0.9, 1.1)
        recorded = await repo.record_attempt(
            self.database,
            delivery,
            status=status,
            status_code=status_code,
            error=error,
            next_attempt_at=next_at,
            now=now,
            disable_endpoint=disable,
        )
        log.info(
            "webhook %s to %s: attempt %d %s%s",
            delivery.id,
            claimed.endpoint.id,
            delivery.attempts,
            status,
            "" if recorded else " (changed meanwhile: not recorded)",
        )
