"""What operators ask the engine: workers, stuck batches, readiness checks, totals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datamill.engine.context import EngineContext
from datamill.errors import InvalidRequest
from datamill.protocol.batches import BatchStatus
from datamill.readiness import NotReady
from datamill.storage import batches as batch_repo
from datamill.storage import files as file_repo
from datamill.storage import migrate
from datamill.storage import requests as request_repo
from datamill.storage import workers as worker_repo
from datamill.storage.records import BatchRecord, WorkerRecord
from datamill.storage.schema import DEFAULT_PROJECT_ID
from datamill.storage.usage import UsageGroup, UsageRow, usage_totals


@dataclass(frozen=True, slots=True)
class StuckBatch:
    batch: BatchRecord
    requests_by_state: dict[str, int]
    stuck_for: float


class OperationsService:
    def __init__(self, context: EngineContext) -> None:
        self._ctx = context

    def is_alive(self, worker: WorkerRecord) -> bool:
        now = self._ctx.clock.now()
        return (
            worker.status == "running"
            and worker.heartbeat_at >= now - self._ctx.settings.worker_ttl
        )

    async def workers(self, *, include_stopped: bool = True) -> list[WorkerRecord]:
        return await worker_repo.list_workers(self._ctx.database, include_stopped=include_stopped)

    async def own_batches(self, batch_ids: set[str], *, project_id: str) -> set[str]:
        """Which of these batches are the project's."""
        return await batch_repo.batches_of_project(
            self._ctx.database, batch_ids, project_id=project_id
        )

    async def stuck_batches(self, *, project_id: str | None = None) -> list[StuckBatch]:
        """Running batches (of one project, if given) with work left and no result recorded
        for ``stuck_after`` seconds. The maintenance sweep puts their stale leases back."""
        ctx = self._ctx
        now = ctx.clock.now()
        found = await batch_repo.stuck_batches(
            ctx.database, now=now, stuck_after=ctx.settings.stuck_after, project_id=project_id
        )
        return [
            StuckBatch(
                batch=batch,
                requests_by_state=await request_repo.count_unfinished(ctx.database, batch.id),
                stuck_for=now - (batch.progress_at or batch.created_at),
            )
            for batch in found
        ]

    async def check_database(self) -> str:
        """Readiness: the store answers."""
        try:
            await self._ctx.database.ping()
        except Exception as exc:
            raise NotReady(f"unreachable: {exc}") from exc
        return "ok"

    async def check_migrations(self) -> str:
        """Readiness: the store's schema is at this version's head."""
        current = await migrate.current_revision(self._ctx.database)
        head = migrate.SCHEMA_HEAD
        if current != head:
            raise NotReady(f"at {current}, expected {head}: run `datamill migrate`")
        return f"at {head}"

    async def check_workers(self, local_workers_alive: bool | None) -> str:
        """Readiness: this process's workers run (``local_workers_alive``), or, when it runs
        none (None), some live worker exists elsewhere."""
        if local_workers_alive is not None:
            if not local_workers_alive:
                raise NotReady("an in-process worker has stopped")
            return "in-process workers running"
        ctx = self._ctx
        live = await worker_repo.live_worker_count(
            ctx.database, now=ctx.clock.now(), ttl=ctx.settings.worker_ttl
        )
        if not live:
            raise NotReady("no live worker; start `datamill worker`")
        return f"{live} live worker{'s' if live != 1 else ''}"

    async def counts(self, *, project_id: str | None = None) -> dict[str, Any]:
        """Files and batches (of one project, if given) and the live workers (of all)."""
        by_status = await batch_repo.count_batches_by_status(
            self._ctx.database, project_id=project_id
        )
        file_count = await file_repo.count_files(self._ctx.database, project_id=project_id)
        workers = await self.workers(include_stopped=False)
        return {
            "files": file_count,
            "batches": {status.value: by_status.get(status.value, 0) for status in BatchStatus},
            "live_workers": sum(1 for w in workers if self.is_alive(w)),
        }

    async def usage(
        self,
        *,
        group_by: UsageGroup,
        since: float | None = None,
        until: float | None = None,
        project_id: str = DEFAULT_PROJECT_ID,
    ) -> dict[str, Any]:
        """Requests, tokens and cost of batches and gateway calls in a time window (all time
        by default), per group and source, with their total."""
        now = self._ctx.clock.now()
        start = since if since is not None else 0.0
        end = until if until is not None else now + 1
        if end <= start:
            raise InvalidRequest("until must be after since", param="until", code="invalid_value")
        rows = await usage_totals(
            self._ctx.database, project_id=project_id, group_by=group_by, since=start, until=end
        )
        data = [_usage_entry(row.key, row.source, [row]) for row in rows]
        return {
            "object": "usage",
            "group_by": group_by.value,
            "since": start,
            "until": end,
            "data": data,
            "total": _usage_entry(None, "all", rows),
        }


def _usage_entry(key: str | None, source: str, rows: list[UsageRow]) -> dict[str, Any]:
    return {
        "key": key,
        "source": source,
        "requests": sum(row.requests for row in rows),
        "failed": sum(row.failed for row in rows),
        "input_tokens": sum(row.input_tokens for row in rows),
        "cached_tokens": sum(row.cached_tokens for row in rows),
        "output_tokens": sum(row.output_tokens for row in rows),
        "reasoning_tokens": sum(row.reasoning_tokens for row in rows),
        "cost_usd": round(sum(row.cost for row in rows), 8),
    }
