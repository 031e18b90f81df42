"""One step on a claimed native job: settle it, poll it, or collect it.

- A job still ``submitting`` when claimed lost its submitter (a crash, a stop) between the
  commit of its requests and that of its upstream id. It is looked up upstream by its label
  when the API allows (`NativeBatchLookup`) and kept if found; otherwise its requests go back
  to pending, without spending a try. Without a lookup the upstream may run them twice:
  their results are still recorded once.
- A ``running`` job is polled. While its batch runs nothing else happens; once the batch is
  cancelled or expired, the upstream is asked to cancel (once) and the job polled until it
  stops, for at most `JobSteps.close_grace` seconds.
- An upstream batch that ended (or was cancelled) is collected: its results are streamed
  and recorded in chunks (idempotent: a collect redone after a crash records nothing
  twice), with ``native`` set. A request that failed in a retryable way goes back to pending
  while it has retries left; one with no outcome (the upstream expired first) goes back
  without spending one. Once the batch closes, those end with its closing code instead.
- An upstream batch that failed as a whole counts one failed try for each of its requests.

The job ends (`native_jobs.finish_job`) in one transaction with what happens to the
requests that have no result: a crash before it redoes the step.
"""

from __future__ import annotations

import logging

from datamill.engine.context import EngineContext
from datamill.engine.native import outcomes
from datamill.engine.native.submit import Submitter
from datamill.engine.native.support import native_api
from datamill.errors import ErrorCategory, ProviderError
from datamill.protocol.batches import BatchStatus
from datamill.providers.base import (
    NativeBatchAPI,
    NativeBatchLookup,
    NativeBatchState,
    NativeBatchStatus,
)
from datamill.scheduler.dispatch import bounded_upstream, call_upstream
from datamill.scheduler.pricing import call_cost
from datamill.scheduler.router import DeploymentHandle
from datamill.storage import batches as batch_repo
from datamill.storage import native_jobs as job_repo
from datamill.storage.records import BatchRecord, NativeJobRecord, RequestResult
from datamill.storage.results import record_results

log = logging.getLogger("datamill.engine")

S = BatchStatus
FLUSH = 500  # results recorded per transaction while collecting


def closing_code(batch: BatchRecord | None) -> str | None:
    """How the requests of a batch that stopped running end; None while it runs."""
    if batch is None:
        return "batch_cancelled"
    status = BatchStatus(batch.status)
    if status is S.in_progress:
        return None
    if status is S.cancelling or batch.target_status == "cancelled":
        return "batch_cancelled"
    if batch.target_status == "expired":
        return "batch_expired"
    # Finished (or finishing) with every request recorded: nothing is left to close.
    return "batch_cancelled"


class JobSteps:
    # Seconds a closing batch waits for an upstream job to stop after asking it to cancel
    # (OpenAI takes up to 10 minutes); then its requests close without their results.
    close_grace = 600.0

    def __init__(self, context: EngineContext, submitter: Submitter, *, worker_id: str) -> None:
        self._ctx = context
        self._submitter = submitter
        self._worker_id = worker_id

    async def step(self, job: NativeJobRecord) -> str | None:
        """Act on a job this worker claimed; returns its batch id when results were
        recorded or requests closed (its batch may be ready to finalize)."""
        ctx = self._ctx
        batch = await batch_repo.get_batch(ctx.database, job.batch_id)
        code = closing_code(batch)
        handle = ctx.router.get(job.deployment)
        api = native_api(handle) if handle is not None else None
        if handle is None or api is None:
            # The deployment is gone from the configuration: nothing can poll this job.
            await self._finish(job, code=code, last_error="its deployment has no native API now")
            return job.batch_id
        if batch is None or BatchStatus(batch.status).terminal:
            if job.upstream_id is not None and job.cancel_requested_at is None:
                await self._cancel(handle, api, job.upstream_id)
            await self._finish(job, code=code)
            return None
        if job.state == "submitting":
            return await self._settle(job, handle, api, code)
        return await self._poll(job, batch, handle, api, code)

    async def _settle(
        self, job: NativeJobRecord, handle: DeploymentHandle, api: NativeBatchAPI, code: str | None
    ) -> str | None:
        ctx = self._ctx
        found: str | None = None
        if isinstance(api, NativeBatchLookup):
            # An error here leaves the job for a later try: giving its requests back while
            # the upstream may hold them is what the lookup is there to avoid.
            found = await call_upstream(
                api.find(job.id), timeout=handle.config.timeout, what="looking up a batch"
            )
        if found is not None:
            now = ctx.clock.now()
            await job_repo.record_upstream(
                ctx.database,
                job.id,
                worker_id=self._worker_id,
                upstream_id=found,
                now=now,
                next_poll_at=now,
            )
            log.info("job %s was found upstream as %s after its submitter stopped", job.id, found)
            return None
        await self._finish(job, code=code, last_error="its submitter stopped before it was sent")
        return job.batch_id

    async def _poll(
        self,
        job: NativeJobRecord,
        batch: BatchRecord,
        handle: DeploymentHandle,
        api: NativeBatchAPI,
        code: str | None,
    ) -> str | None:
        ctx = self._ctx
        assert job.upstream_id is not None
        now = ctx.clock.now()
        interval = ctx.settings.native_poll_interval
        try:
            status = await call_upstream(
                api.poll(job.upstream_id), timeout=handle.config.timeout, what="polling a batch"
            )
        except ProviderError as error:
            log.warning("polling job %s (%s) failed: %s", job.id, job.upstream_id, error)
            if error.category is ErrorCategory.not_found and code is None:
                # The upstream batch is gone: its requests go to a new job, spending a try.
                await self._finish(job, code=None, count_all=True, last_error=str(error))
                return job.batch_id
            values: dict[str, object] = {"next_poll_at": now + interval, "last_error": str(error)}
            return await self._closing_step(job, handle, api, code, values)
        if status.state is not NativeBatchState.running:
            return await self._collect(job, batch, handle, api, status, code)
        values = {"polled_at": now, "upstream_state": status.state.value}
        values["next_poll_at"] = now + interval
        return await self._closing_step(job, handle, api, code, values)

    async def _closing_step(
        self,
        job: NativeJobRecord,
        handle: DeploymentHandle,
        api: NativeBatchAPI,
        code: str | None,
        values: dict[str, object],
    ) -> str | None:
        """End a step on a job that is still running upstream (or could not be polled): once
        its batch closed, ask the upstream to cancel (once), and give up after the grace."""
        assert job.upstream_id is not None
        now = self._ctx.clock.now()
        if code is not None:
            if job.cancel_requested_at is None:
                await self._cancel(handle, api, job.upstream_id)
                values["cancel_requested_at"] = now
            elif self._grace_over(job, now):
                log.warning("job %s did not stop %g s after its cancel", job.id, self.close_grace)
                await self._finish(job, code=code, last_error="the upstream did not stop in time")
                return job.batch_id
        await self._release(job, **values)
        return None

    async def _collect(
        self,
        job: NativeJobRecord,
        batch: BatchRecord,
        handle: DeploymentHandle,
        api: NativeBatchAPI,
        status: NativeBatchStatus,
        code: str | None,
    ) -> str:
        ctx = self._ctx
        assert job.upstream_id is not None
        members = await job_repo.job_members(ctx.database, job.id)
        limit = self._submitter.max_retries(batch)
        retry: list[int] = []
        buffer: list[RequestResult] = []
        recorded = 0

        async def flush() -> None:
            nonlocal recorded
            if buffer:
                outcome = await record_results(ctx.database, buffer, now=ctx.clock.now())
                recorded += outcome.accepted
                if outcome.accepted:
                    ctx.events.batch_moved(batch.id)
                buffer.clear()

        if status.state is NativeBatchState.failed:
            error = ProviderError(
                ErrorCategory.server_error,
                f"the upstream batch {job.upstream_id} on {handle.name} failed: "
                f"{status.message or 'no reason given'}",
            )
            now = ctx.clock.now()
            if code is None:
                # Each request spent a try; those out of retries end with the failure.
                buffer += [
                    outcomes.failure(
                        m, batch.id, error, deployment=handle.name, now=now, native=True
                    )
                    for m in members.values()
                    if m.attempts > limit
                ]
            await flush()
            log.warning("batch %s: job %s failed upstream: %s", batch.id, job.id, status.message)
            await self._finish(
                job,
                code=code,
                upstream_state=status.state.value,
                count_all=True,
                not_before=now + ctx.settings.native_poll_interval,
                last_error=error.message,
            )
            return batch.id
        seen: set[int] = set()
        results = bounded_upstream(
            api.results(job.upstream_id),
            timeout=handle.config.timeout,
            what="reading a batch's results",
        )
        async for result in results:
            request_id = outcomes.request_id_of(result.key)
            member = members.get(request_id) if request_id is not None else None
            if member is None or member.id in seen:
                continue  # not this job's, already recorded, or a repeated line
            seen.add(member.id)
            now = ctx.clock.now()
            if result.response is not None:
                buffer.append(
                    outcomes.success(
                        member,
                        batch.id,
                        result.response,
                        deployment=handle.name,
                        cost=call_cost(handle.config, result.response.usage, native=True),
                        model=batch.model,
                        now=now,
                    )
                )
            elif result.error is not None:
                error = result.error
                if error.category.retryable and code is None:
                    # A 429 spends no try, as online; the rest while retries are left.
                    if error.category is ErrorCategory.rate_limited:
                        continue
                    if member.attempts <= limit:
                        retry.append(member.id)
                        continue
                elif error.category.retryable:
                    continue  # the batch closed: it ends with the closing code
                buffer.append(
                    outcomes.failure(
                        member, batch.id, error, deployment=handle.name, now=now, native=True
                    )
                )
            if len(buffer) >= FLUSH:
                await flush()
        await flush()
        await self._finish(
            job,
            code=code,
            upstream_state=status.state.value,
            counted=retry,
            not_before=ctx.clock.now(),
        )
        left = len(members) - recorded
        log.info(
            "batch %s: job %s %s upstream: %d results recorded, %d to retry, %d left %s",
            batch.id,
            job.id,
            status.state.value,
            recorded,
            len(retry),
            left,
            code or "for a new job",
        )
        return batch.id

    def _grace_over(self, job: NativeJobRecord, now: float) -> bool:
        asked = job.cancel_requested_at
        return asked is not None and now - asked > self.close_grace

    async def _cancel(
        self, handle: DeploymentHandle, api: NativeBatchAPI, upstream_id: str
    ) -> None:
        """Ask the upstream to stop; its refusal (already finished, say) changes nothing: the
        job is polled until it stops either way."""
        try:
            await call_upstream(
                api.cancel(upstream_id), timeout=handle.config.timeout, what="cancel"
            )
        except ProviderError as error:
            log.warning("cancelling %s on %s: %s", upstream_id, handle.name, error)

    async def _release(self, job: NativeJobRecord, **values: object) -> None:
        await job_repo.release_job(self._ctx.database, job.id, worker_id=self._worker_id, **values)

    async def _finish(
        self,
        job: NativeJobRecord,
        *,
        code: str | None,
        upstream_state: str | None = None,
        counted: list[int] | None = None,
        count_all: bool = False,
        not_before: float = 0.0,
        last_error: str | None = None,
    ) -> None:
        await job_repo.finish_job(
            self._ctx.database,
            job.id,
            worker_id=self._worker_id,
            now=self._ctx.clock.now(),
            upstream_state=upstream_state or job.upstream_state,
            counted=counted or (),
            count_all=count_all,
            close_code=code,
            deployment=job.deployment,
            not_before=not_before,
            last_error=last_error,
        )
