"""The worker's side task for native-mode batches.

Every worker runs one. Each tick (a second at most, sooner when woken) it looks at the
native batches that are running or closing; when there are any, it submits their pending
requests as upstream jobs (`submit`), closes the pending requests of expired ones, and claims
the jobs that need a step (`jobs`): a poll that is due, a cancel to pass on. Steps run as
tasks, so a long download never holds up the others; claims make each job one worker's at a
time, and a worker's claims are freed when it stops or is declared dead.

The online lease loop never touches a native batch: its requests are leased only while the
batch's ``mode`` is ``online`` (`storage.leasing`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from datamill.engine.context import EngineContext
from datamill.engine.native.jobs import JobSteps, closing_code
from datamill.engine.native.submit import Submitter
from datamill.logs import request_id
from datamill.protocol.batches import BatchStatus
from datamill.storage import batches as batch_repo
from datamill.storage import native_jobs as job_repo
from datamill.storage import requests as request_repo
from datamill.storage.records import BatchRecord, NativeJobRecord

log = logging.getLogger("datamill.engine")

MAX_STEPS = 8  # job steps one worker runs at once
HEAL_EVERY = 30  # ticks between two looks for claims no step of this worker holds
BatchesReady = Callable[[list[str]], Awaitable[None]]


class NativeRunner:
    def __init__(
        self,
        context: EngineContext,
        *,
        worker_id: str,
        batch_ids: frozenset[str] | None,
        max_retries: int,
        on_results: BatchesReady | None = None,
    ) -> None:
        self._ctx = context
        self._worker_id = worker_id
        self._batch_ids = batch_ids
        self._on_results = on_results
        self.submitter = Submitter(context, worker_id=worker_id, max_retries=max_retries)
        self.steps = JobSteps(context, self.submitter, worker_id=worker_id)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._ticks = 0

    @property
    def tick_interval(self) -> float:
        return min(1.0, self._ctx.settings.native_poll_interval)

    async def run(self) -> None:
        """Tick until cancelled."""
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("native batch tick of worker %s failed", self._worker_id)
            await self._ctx.signal.wait(self.tick_interval)

    async def tick(self) -> None:
        ctx = self._ctx
        ids = sorted(self._batch_ids) if self._batch_ids is not None else None
        batches = await batch_repo.native_batches(ctx.database, ids=ids)
        if not batches:
            return
        self._ticks += 1
        if self._ticks % HEAL_EVERY == 0:
            await self._release_orphan_claims()
        for batch in batches:
            code = closing_code(batch)
            if code is None:
                with request_id(batch.request_id):  # its lines carry the batch's request id
                    self._spawn(f"submit:{batch.id}", self._submit(batch))
            elif batch.status == BatchStatus.finalizing:
                # Expired: requests given back to pending after the expiry are closed here.
                await self._close_pending(batch, code)
        room = MAX_STEPS - sum(1 for key in self._tasks if key.startswith("job:"))
        if room <= 0:
            return
        jobs = await job_repo.claim_jobs(
            ctx.database,
            worker_id=self._worker_id,
            now=ctx.clock.now(),
            limit=room,
            batch_ids=ids,
        )
        for job in jobs:
            self._spawn(f"job:{job.id}", self._step(job.id, job))

    async def _submit(self, batch: BatchRecord) -> None:
        submitted = await self.submitter.submit_batch(batch)
        if submitted:
            log.info("batch %s: %d requests went to native jobs", batch.id, submitted)
        # Requests that ended without going upstream may have been the batch's last ones.
        await self._ready([batch.id])

    async def _step(self, job_id: str, job: NativeJobRecord) -> None:
        try:
            batch_id = await self.steps.step(job)
        except Exception as exc:
            # The step is redone: a later poll, or another worker.
            log.warning("step on native job %s failed: %s", job_id, exc)
            now = self._ctx.clock.now()
            await job_repo.release_job(
                self._ctx.database,
                job_id,
                worker_id=self._worker_id,
                next_poll_at=now + self._ctx.settings.native_poll_interval,
                last_error=str(exc)[:2000],
            )
            return
        if batch_id is not None:
            await self._ready([batch_id])

    async def _release_orphan_claims(self) -> None:
        """A step that failed and could not release its job (the store was down) left the
        claim behind; while this worker lives nobody else would take that job."""
        held = [key.removeprefix("job:") for key in self._tasks if key.startswith("job:")]
        held += self.submitter.active
        released = await job_repo.release_claims(self._ctx.database, self._worker_id, keep=held)
        if released:
            log.warning("worker %s released %d native jobs left claimed", self._worker_id, released)

    async def _close_pending(self, batch: BatchRecord, code: str) -> None:
        ctx = self._ctx
        # Due or not: a request waiting out a backoff closes too.
        someday = ctx.clock.now() + 1e9
        if await job_repo.pending_requests(ctx.database, batch.id, now=someday, limit=1):
            await request_repo.close_pending_requests(
                ctx.database, batch.id, code=code, now=ctx.clock.now()
            )
            await self._ready([batch.id])

    async def _ready(self, batch_ids: list[str]) -> None:
        if self._on_results is not None:
            await self._on_results(batch_ids)

    def _spawn(self, key: str, work: Coroutine[Any, Any, None]) -> None:
        if key in self._tasks:
            work.close()
            return

        async def guarded() -> None:
            try:
                await work
            except Exception:
                log.exception("native %s of worker %s failed", key, self._worker_id)
            finally:
                self._tasks.pop(key, None)

        self._tasks[key] = asyncio.create_task(guarded(), name=f"native-{key}")

    async def stop(self) -> None:
        """Cancel the steps under way and free every job this worker holds: another worker
        picks them up (a job cut off while submitting is looked up or given back)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await job_repo.release_claims(self._ctx.database, self._worker_id)
