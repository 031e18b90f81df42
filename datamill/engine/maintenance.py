"""The worker's periodic sweep: everything that keeps batches moving besides execution.

Each step is an atomic claim or a conditional UPDATE, so any number of workers may sweep at
once: taking over from dead workers, validating new batches, writing the finished part of
running batches' output files, expiring batches whose window ended, cancelling pending
requests, finalizing finished batches, unsticking batches that made no progress for
``stuck_after`` seconds, and (once a minute) deleting what retention lets go.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

from datamill.engine.context import EngineContext
from datamill.engine.finalize import extend_drafts, finalize_batch
from datamill.engine.retention import apply_retention
from datamill.engine.validation import give_up_validation, validate_batch
from datamill.errors import StorageError
from datamill.events.workers import publish_worker
from datamill.logs import request_id
from datamill.protocol.batches import BatchStatus
from datamill.storage import batches as batch_repo
from datamill.storage import leasing
from datamill.storage import requests as request_repo
from datamill.storage import workers as worker_repo
from datamill.storage.records import BatchRecord

log = logging.getLogger("datamill.engine")

S = BatchStatus
_RETENTION_INTERVAL = 60.0  # seconds between two retention passes (engine/retention.py)
# A validation failing inside datamill this many times in a row fails its batch.
MAX_VALIDATION_ATTEMPTS = 3
_WATCHED = (S.validating, S.in_progress, S.cancelling, S.finalizing)


@dataclass(slots=True)
class BatchView:
    """What a worker knows of the live batches after a sweep."""

    running: dict[str, BatchRecord] = field(default_factory=dict)
    # batch id -> the code a still-leased request of it ends with instead of being sent
    closing: dict[str, str] = field(default_factory=dict)


def over_budget(batch: BatchRecord, spent: float = 0.0) -> bool:
    """Whether the batch spent its budget (``spent``: what is known spent since ``batch``
    was read)."""
    budget = (batch.options or {}).get("budget_usd")
    return budget is not None and batch.cost + spent >= float(budget)


class Maintenance:
    def __init__(
        self,
        context: EngineContext,
        *,
        worker_id: str,
        batch_ids: frozenset[str] | None,
        on_closing: Callable[[str, str], None] | None = None,
    ) -> None:
        self._ctx = context
        # Told at once when the sweep closes a running batch (expired, out of budget), so the
        # worker stops sending its requests now rather than when the sweep's view is out.
        self._on_closing = on_closing or (lambda batch_id, code: None)
        self._worker_id = worker_id
        self._batch_ids = batch_ids
        self._host = socket.gethostname()
        self._jobs: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._validation_failures: dict[str, int] = {}
        self._next_retention = 0.0

    async def sweep(self) -> BatchView:
        """One pass; returns the batches this worker may lease from."""
        ctx = self._ctx
        now = ctx.clock.now()
        await self._take_over_dead_workers(now)
        records = await batch_repo.batches_with_status(ctx.database, _WATCHED, ids=self._ids())
        view = BatchView()
        for batch in records:
            status = S(batch.status)
            if status is S.validating and batch.claimed_by is None:
                self._spawn("validate", batch, partial(self._validate, batch))
            elif status is S.in_progress:
                if batch.expires_at is not None and batch.expires_at <= now:
                    if await request_repo.expire_batch(ctx.database, batch.id, now=now):
                        log.warning("batch %s expired", batch.id)
                        view.closing[batch.id] = "batch_expired"
                        self._on_closing(batch.id, "batch_expired")
                        ctx.events.batch_changed(batch.id)
                    continue
                self._spawn("draft", batch, partial(self._extend_drafts, batch))
                reason = batch.stop_reason
                if reason is None and over_budget(batch):
                    if await request_repo.stop_for_budget(ctx.database, batch.id, now=now):
                        log.warning("batch %s spent its budget: stopped", batch.id)
                        ctx.events.batch_changed(batch.id)
                    reason = "budget_exhausted"
                    self._on_closing(batch.id, reason)
                if reason is not None:
                    # Requests put back after a crash are closed too, not sent.
                    view.closing[batch.id] = reason
                    if await request_repo.close_pending_requests(
                        ctx.database, batch.id, code=reason, now=now
                    ):
                        ctx.events.batch_moved(batch.id)
                    continue
                view.running[batch.id] = batch
            elif status is S.cancelling:
                view.closing[batch.id] = "batch_cancelled"
                if batch.claimed_by is None and await request_repo.cancel_pending_requests(
                    ctx.database, batch.id, now=now
                ):
                    ctx.events.batch_moved(batch.id)
            elif status is S.finalizing and batch.target_status == "expired":
                view.closing[batch.id] = "batch_expired"
        await self.finalize_ready()
        await self._unstick(now)
        if ctx.clock.monotonic() >= self._next_retention:
            retained = await apply_retention(ctx, now=now)
            # A pass stopped at its bound goes on at the next sweep, not a minute later.
            wait = 0.0 if retained.more else _RETENTION_INTERVAL
            self._next_retention = ctx.clock.monotonic() + wait
        return view

    async def finalize_ready(self, batch_ids: list[str] | None = None) -> None:
        """Finalize the given (or all watched) batches whose requests all have results."""
        ready = await batch_repo.batches_to_finalize(self._ctx.database)
        wanted = set(batch_ids) if batch_ids is not None else self._batch_ids
        for batch_id in ready:
            if wanted is not None and batch_id not in wanted:
                continue
            batch = await batch_repo.get_batch(self._ctx.database, batch_id)
            if batch is not None:
                self._spawn("finalize", batch, partial(self._finalize, batch))

    def _ids(self) -> list[str] | None:
        return sorted(self._batch_ids) if self._batch_ids is not None else None

    async def _take_over_dead_workers(self, now: float) -> None:
        ctx = self._ctx
        # This worker is sweeping, so it lives: a stale heartbeat of its own (the loop was
        # blocked, the machine slept) must not send its calls in flight a second time.
        dead = await worker_repo.declare_dead_workers(
            ctx.database,
            now=now,
            ttl=ctx.settings.worker_ttl,
            host=self._host,
            caller=self._worker_id,
        )
        if not dead:
            return
        # Everything they held, of every kind, in one call: requests, validations and
        # finalizations, native jobs, generation jobs.
        released = await leasing.release_dead_workers(ctx.database, dead, now=now)
        log.warning(
            "took over from dead workers %s: %d requests, %d batches, %d native jobs and "
            "%d generation jobs back",
            ", ".join(dead),
            released.requests,
            released.batches,
            released.native_jobs,
            released.generation_jobs,
        )
        ctx.signal.notify()
        for record in await worker_repo.get_workers(ctx.database, dead):
            publish_worker(ctx.events, "dead", record)

    async def _unstick(self, now: float) -> None:
        ctx = self._ctx
        stuck_after = ctx.settings.stuck_after
        for batch in await batch_repo.stuck_batches(ctx.database, now=now, stuck_after=stuck_after):
            recovered = await leasing.recover_stale_leases(
                ctx.database, batch_id=batch.id, leased_before=now - stuck_after
            )
            if recovered:
                log.warning("batch %s is stuck: %d stale leases recovered", batch.id, recovered)
                ctx.signal.notify()

    async def _validate(self, batch: BatchRecord) -> None:
        try:
            await validate_batch(self._ctx, batch, worker_id=self._worker_id)
        except StorageError:
            raise  # the store is briefly unusable: retried, however long it takes
        except Exception as exc:
            attempts = self._validation_failures.get(batch.id, 0) + 1
            if attempts < MAX_VALIDATION_ATTEMPTS:
                self._validation_failures[batch.id] = attempts
                raise
            self._validation_failures.pop(batch.id, None)
            log.exception("validation of batch %s failed %d times", batch.id, attempts)
            await give_up_validation(self._ctx, batch, exc, attempts=attempts)
        else:
            self._validation_failures.pop(batch.id, None)
        self._ctx.signal.notify()

    async def _extend_drafts(self, batch: BatchRecord) -> None:
        ctx = self._ctx
        await extend_drafts(
            ctx.database, ctx.blobs, batch, owner=self._worker_id, now=ctx.clock.now()
        )

    async def _finalize(self, batch: BatchRecord) -> None:
        ctx = self._ctx
        await finalize_batch(
            ctx.database,
            ctx.blobs,
            ctx.clock,
            batch,
            worker_id=self._worker_id,
            events=ctx.events,
            hooks=ctx.finish_hooks,
        )
        ctx.signal.notify()  # whoever watches the batch in this process sees it end now

    def _spawn(self, job: str, batch: BatchRecord, run: Callable[[], Awaitable[None]]) -> None:
        key = (job, batch.id)
        if key in self._jobs:
            return

        async def guarded() -> None:
            try:
                await run()
            except Exception:
                log.exception("%s of batch %s failed; it will be retried", job, batch.id)
                # Let another sweep (or worker) try again.
                await self._release(batch.id)
            except asyncio.CancelledError:
                # The worker is stopping: a claim it kept would outlive it (only a dead
                # worker's claims are released for it), so give it back now.
                await self._release(batch.id)
                raise
            finally:
                self._jobs.pop(key, None)

        # The job logs with the batch's request id (the task copies the context).
        with request_id(batch.request_id):
            self._jobs[key] = asyncio.create_task(guarded(), name=f"{job}-{batch.id}")

    async def _release(self, batch_id: str) -> None:
        await batch_repo.release_claims(self._ctx.database, self._worker_id, batch_id=batch_id)

    async def wait_jobs(self) -> None:
        """Wait for running validations and finalizations (a worker stopping)."""
        if self._jobs:
            await asyncio.gather(*self._jobs.values(), return_exceptions=True)

    def cancel_jobs(self) -> None:
        for task in self._jobs.values():
            task.cancel()
