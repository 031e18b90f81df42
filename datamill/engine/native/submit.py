"""Submitting a native batch's pending requests as upstream jobs.

Pending requests are read in id order, routed, and translated one by one; a request that
cannot go upstream (no deployment, no native API there, a field its provider cannot express,
too large) ends at once with its own final error line. The others are grouped by deployment
into jobs within the API's ``max_requests`` and ``max_bytes``.

For each job, the job row and its requests are committed (`native_jobs.create_job`) before
the upstream submit, and the upstream id right after it. A submit that fails:

- refused before anything was sent (a request the provider cannot express): the group is
  split in halves until that request stands alone, and it alone ends with the error;
- refused by the upstream with a final error (a wrong key, say): every request of the job
  ends with it, as each would online;
- failed in a way worth retrying (a timeout, a 5xx): the upstream is asked whether the
  batch exists after all (when the API can be asked, `NativeBatchLookup`); if not, the
  requests go back to pending, the failure counting toward their ``max_retries``.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

import orjson

from datamill.engine.context import EngineContext
from datamill.engine.native import outcomes
from datamill.engine.native.support import native_api, native_route
from datamill.errors import ErrorCategory, ProviderError
from datamill.ids import new_native_job_id
from datamill.providers.base import Endpoint, NativeBatchAPI, NativeBatchLookup, NativeRequest
from datamill.providers.fields import Support, is_neutral, unsupported
from datamill.scheduler.dispatch import call_upstream
from datamill.scheduler.retry import backoff_delay
from datamill.scheduler.router import DeploymentHandle
from datamill.storage import native_jobs as job_repo
from datamill.storage.records import BatchRecord, NativeMember, NativeRequestRow, RequestResult
from datamill.storage.results import record_results

log = logging.getLogger("datamill.engine")

PAGE = 2000  # pending requests read at once


@dataclass(slots=True)
class _Item:
    row: NativeRequestRow
    request: NativeRequest
    size: int

    @property
    def member(self) -> NativeMember:
        # The attempt this submission spends is counted when its job is created.
        row = self.row
        return NativeMember(row.id, row.line, row.custom_id, row.attempts + 1)


@dataclass(slots=True)
class _Group:
    handle: DeploymentHandle
    api: NativeBatchAPI
    items: list[_Item] = field(default_factory=list)
    size: int = 0


class Submitter:
    """Turns the pending requests of running native batches into submitted upstream jobs."""

    def __init__(
        self,
        context: EngineContext,
        *,
        worker_id: str,
        max_retries: int,
        rng: random.Random | None = None,
    ) -> None:
        self._ctx = context
        self._worker_id = worker_id
        self._max_retries = max_retries
        self._rng = rng or random.Random()
        # Jobs this worker created and is submitting: it holds their claims.
        self.active: set[str] = set()

    def max_retries(self, batch: BatchRecord) -> int:
        return int((batch.options or {}).get("max_retries", self._max_retries))

    async def submit_batch(self, batch: BatchRecord) -> int:
        """Submit every due pending request of ``batch``; returns how many went upstream."""
        ctx = self._ctx
        endpoint = Endpoint(batch.endpoint)
        groups: dict[str, _Group] = {}
        submitted = 0
        after = 0
        while True:
            rows = await job_repo.pending_requests(
                ctx.database, batch.id, now=ctx.clock.now(), after=after, limit=PAGE
            )
            finals: list[RequestResult] = []
            for row in rows:
                after = row.id
                prepared = self._prepare(batch, row, endpoint)
                if isinstance(prepared, RequestResult):
                    finals.append(prepared)
                    continue
                handle, api, item = prepared
                group = groups.setdefault(handle.name, _Group(handle, api))
                full = len(group.items) >= api.max_requests
                if group.items and (full or group.size + item.size > api.max_bytes):
                    submitted += await self.submit_group(batch, group.handle, api, group.items)
                    groups[handle.name] = group = _Group(handle, api)
                group.items.append(item)
                group.size += item.size
            if finals:
                await record_results(ctx.database, finals, now=ctx.clock.now())
                ctx.events.batch_moved(batch.id)
            if len(rows) < PAGE:
                break
        for group in groups.values():
            submitted += await self.submit_group(batch, group.handle, group.api, group.items)
        return submitted

    def _prepare(
        self, batch: BatchRecord, row: NativeRequestRow, endpoint: Endpoint
    ) -> RequestResult | tuple[DeploymentHandle, NativeBatchAPI, _Item]:
        """The request as its deployment's batch API takes it, or its final error."""
        member = NativeMember(row.id, row.line, row.custom_id, row.attempts)
        now = self._ctx.clock.now()
        try:
            body = orjson.loads(row.body)
            model = body["model"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return outcomes.failure(
                member, batch.id, outcomes.bad_body(), deployment=None, now=now, native=False
            )
        plan = self._ctx.router.plan(str(model), endpoint)
        if plan is None:
            error = ProviderError(
                ErrorCategory.not_found,
                f"No deployment serves model {model!r} on {endpoint.value}; "
                "add one to datamill.toml or fix the model name",
            )
            return outcomes.failure(member, batch.id, error, deployment=None, now=now, native=False)
        found = native_route(plan)
        route = found or plan.routes[0]
        handle = route.handle
        api = native_api(handle)
        problem: ProviderError | None = None
        if api is None:
            problem = ProviderError(
                ErrorCategory.bad_request,
                f"no deployment serving {model!r} has a native batch API (the configuration "
                "changed after the batch was validated); run the batch in online mode",
            )
        else:
            problem = _unexpressible(body, handle, endpoint)
        if problem is not None:
            return outcomes.failure(
                member, batch.id, problem, deployment=handle.name, now=now, native=False
            )
        assert api is not None
        size = len(row.body)
        if route.upstream_model != model:
            body = {**body, "model": route.upstream_model}
            size = len(orjson.dumps(body))
        if size > api.max_bytes:
            error = ProviderError(
                ErrorCategory.bad_request,
                f"the request is {size} bytes; one batch of {handle.name!r} holds at most "
                f"{api.max_bytes}",
            )
            return outcomes.failure(
                member, batch.id, error, deployment=handle.name, now=now, native=False
            )
        request = NativeRequest(key=outcomes.request_key(row.id), endpoint=endpoint, body=body)
        return handle, api, _Item(row, request, size)

    async def submit_group(
        self,
        batch: BatchRecord,
        handle: DeploymentHandle,
        api: NativeBatchAPI,
        items: list[_Item],
    ) -> int:
        """Create one job of ``items`` and submit it; returns how many went upstream."""
        if not items:
            return 0
        job_id = new_native_job_id()
        self.active.add(job_id)
        try:
            return await self._create_and_submit(batch, handle, api, items, job_id)
        finally:
            self.active.discard(job_id)

    async def _create_and_submit(
        self,
        batch: BatchRecord,
        handle: DeploymentHandle,
        api: NativeBatchAPI,
        items: list[_Item],
        job_id: str,
    ) -> int:
        ctx = self._ctx
        claimed = set(
            await job_repo.create_job(
                ctx.database,
                job_id=job_id,
                batch_id=batch.id,
                deployment=handle.name,
                request_ids=[item.row.id for item in items],
                worker_id=self._worker_id,
                now=ctx.clock.now(),
            )
        )
        items = [item for item in items if item.row.id in claimed]
        if not items:
            return 0
        endpoint = Endpoint(batch.endpoint)
        requests = [item.request for item in items]
        what = f"submitting a batch of {len(requests)} to {handle.name}"
        try:
            if isinstance(api, NativeBatchLookup):
                call = api.submit(requests, endpoint=endpoint, label=job_id)
            else:
                call = api.submit(requests, endpoint=endpoint)
            upstream_id = await call_upstream(call, timeout=handle.config.timeout, what=what)
        except ProviderError as error:
            return await self._submit_failed(batch, handle, api, job_id, items, error)
        await self._record_upstream(handle, api, job_id, upstream_id)
        log.info(
            "batch %s: job %s of %d requests is %s on %s",
            batch.id,
            job_id,
            len(items),
            upstream_id,
            handle.name,
        )
        return len(items)

    async def _record_upstream(
        self, handle: DeploymentHandle, api: NativeBatchAPI, job_id: str, upstream_id: str
    ) -> None:
        ctx = self._ctx
        now = ctx.clock.now()
        recorded = await job_repo.record_upstream(
            ctx.database,
            job_id,
            worker_id=self._worker_id,
            upstream_id=upstream_id,
            now=now,
            next_poll_at=now + ctx.settings.native_poll_interval,
        )
        if not recorded:
            # This worker was declared dead while submitting, and another one gave the
            # requests back: nobody will collect this upstream batch, so stop it.
            log.warning(
                "job %s lost its claim while submitting; cancelling %s", job_id, upstream_id
            )
            try:
                await call_upstream(
                    api.cancel(upstream_id), timeout=handle.config.timeout, what="cancel"
                )
            except ProviderError as error:
                log.warning("could not cancel %s on %s: %s", upstream_id, handle.name, error)

    async def _submit_failed(
        self,
        batch: BatchRecord,
        handle: DeploymentHandle,
        api: NativeBatchAPI,
        job_id: str,
        items: list[_Item],
        error: ProviderError,
    ) -> int:
        ctx = self._ctx
        now = ctx.clock.now()
        if error.category.retryable:
            found = await self._find(handle, api, job_id)
            if found is not None:
                await self._record_upstream(handle, api, job_id, found)
                return len(items)
            log.warning("batch %s: submitting job %s failed: %s", batch.id, job_id, error)
            # Each request spent a try; the ones out of retries end with the error.
            limit = self.max_retries(batch)
            finals = [
                outcomes.failure(
                    item.member, batch.id, error, deployment=handle.name, now=now, native=False
                )
                for item in items
                if item.member.attempts > limit
            ]
            if finals:
                await record_results(ctx.database, finals, now=now)
                ctx.events.batch_moved(batch.id)
            retry = max((item.member.attempts for item in items), default=1)
            delay = backoff_delay(retry, retry_after=error.retry_after, rng=self._rng)
            await job_repo.finish_job(
                ctx.database,
                job_id,
                worker_id=self._worker_id,
                now=now,
                upstream_state=None,
                count_all=True,
                not_before=now + delay,
                last_error=str(error),
            )
            return 0
        if error.status_code is None and len(items) > 1:
            # Refused before anything was sent: one of them cannot be expressed. Split the
            # group until it stands alone; the others go upstream.
            await job_repo.finish_job(
                ctx.database,
                job_id,
                worker_id=self._worker_id,
                now=now,
                upstream_state=None,
                last_error=f"split: {error}",
            )
            middle = len(items) // 2
            first = await self.submit_group(batch, handle, api, items[:middle])
            return first + await self.submit_group(batch, handle, api, items[middle:])
        # A final refusal: each request ends with it, as each would have online.
        native = error.status_code is not None
        finals = [
            outcomes.failure(
                item.member, batch.id, error, deployment=handle.name, now=now, native=native
            )
            for item in items
        ]
        await record_results(ctx.database, finals, now=now)
        ctx.events.batch_moved(batch.id)
        await job_repo.finish_job(
            ctx.database,
            job_id,
            worker_id=self._worker_id,
            now=now,
            upstream_state=None,
            last_error=str(error),
        )
        log.warning("batch %s: job %s refused: %s", batch.id, job_id, error)
        return 0

    async def _find(self, handle: DeploymentHandle, api: NativeBatchAPI, job_id: str) -> str | None:
        """The upstream batch labelled ``job_id``, when the API can look it up and has it."""
        if not isinstance(api, NativeBatchLookup):
            return None
        try:
            return await call_upstream(
                api.find(job_id), timeout=handle.config.timeout, what="looking up a batch"
            )
        except ProviderError as error:
            log.warning("could not look up job %s on %s: %s", job_id, handle.name, error)
            return None


def _unexpressible(
    body: dict[str, object], handle: DeploymentHandle, endpoint: Endpoint
) -> ProviderError | None:
    """A field the deployment's provider declares it cannot express (`providers.fields`),
    set to something but its neutral value. Fields it does not list are the adapter's to
    judge when it translates (a refusal then splits the group)."""
    provider = handle.provider
    table = provider.embedding_fields if endpoint is Endpoint.embeddings else provider.chat_fields
    for name, value in body.items():
        support = table.get(name)
        if support is not None and support.support is Support.no and not is_neutral(name, value):
            return unsupported(name, handle.config.provider, "cannot be expressed")
    return None
