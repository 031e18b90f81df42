"""Native jobs: the upstream batches a native-mode batch is delegated to.

A job is one upstream batch of some requests of one datamill batch, on one deployment. Its
life: `create_job` commits the job row (``submitting``) and moves its requests from
``pending`` to ``native`` in one transaction, before anything is sent; `record_upstream`
stores the upstream id right after the submit (``running``); `finish_job` ends it in one
transaction (``done``): the requests that got no final result go back to ``pending`` (to a
new job) or are closed (the batch was cancelled or expired).

One worker acts on a job at a time: `claim_jobs` claims due jobs atomically (through
`leasing.claim_rows`), a step releases its claim when it ends, a worker stopping releases
its own (`release_claims`), and the claims of a dead worker are released with all it held
(`leasing.release_dead_workers`). Results are recorded through `storage.results`
(idempotent), so a job collected twice after a crash records each result once.

Request ids travel as JSON arrays on SQLite (``json_each``) and as arrays on PostgreSQL: a
job may hold 50,000 requests, more than either driver takes as separate parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import and_, delete, or_, select, text, update

from datamill.storage.database import Database, Dialect
from datamill.storage.leasing import claim_rows, claim_sql
from datamill.storage.records import (
    NativeJobRecord,
    NativeMember,
    NativeRequestRow,
    from_row,
)
from datamill.storage.requests import CLOSING_MESSAGES
from datamill.storage.schema import batches, native_jobs


def _claim_requests_sql(dialect: Dialect) -> str:
    job, ids, batch = ("?", "?", "?") if dialect == "sqlite" else ("$1", "$2", "$3")
    listed = (
        f"id IN (SELECT value FROM json_each({ids}))"
        if dialect == "sqlite"
        else f"id = ANY({ids}::bigint[])"
    )
    return claim_sql(
        dialect,
        table="requests",
        values=f"state = 'native', native_job_id = {job}, attempts = attempts + 1",
        candidates=f"SELECT id FROM requests WHERE {listed} AND state = 'pending'",
        where=f"EXISTS (SELECT 1 FROM batches WHERE id = {batch} AND status = 'in_progress' "
        "AND mode = 'native')",
        returning="id",
    )


# The few statements that differ: how a list of ids is passed, and the claim's lock
# (`leasing.claim_sql`).
_CLAIM_REQUESTS: dict[Dialect, str] = {
    dialect: _claim_requests_sql(dialect) for dialect in ("sqlite", "postgresql")
}
# Failures that count toward max_retries keep their attempt; the others give it back.
_REQUEUE_COUNTED = {
    "sqlite": """
        UPDATE requests SET state = 'pending', native_job_id = NULL, not_before = ?
        WHERE native_job_id = ? AND state = 'native'
        AND id IN (SELECT value FROM json_each(?))
    """,
    "postgresql": """
        UPDATE requests SET state = 'pending', native_job_id = NULL, not_before = $1
        WHERE native_job_id = $2 AND state = 'native' AND id = ANY($3::bigint[])
    """,
}
_REQUEUE_REST = text(
    """
    UPDATE requests SET state = 'pending', native_job_id = NULL, not_before = :not_before,
        attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END
    WHERE native_job_id = :job AND state = 'native'
    """
)
_CLOSE_REST = text(
    """
    INSERT INTO results (request_id, batch_id, line, custom_id, ok, error_code,
                         error_message, deployment, attempts, finished_at)
    SELECT id, batch_id, line, custom_id, false, :code, :message, :deployment, attempts, :now
    FROM requests WHERE native_job_id = :job AND state = 'native'
    ON CONFLICT (request_id) DO NOTHING
    """
)
_DONE_REST = text(
    "UPDATE requests SET state = 'done' WHERE native_job_id = :job AND state = 'native'"
)
_PENDING_SQL = """
    SELECT id, batch_id, line, custom_id, body, attempts FROM requests
    WHERE batch_id = {batch} AND state = 'pending' AND not_before <= {now} AND id > {after}
    ORDER BY id LIMIT {limit}
"""
_PENDING = {
    "sqlite": _PENDING_SQL.format(batch="?", now="?", after="?", limit="?"),
    "postgresql": _PENDING_SQL.format(batch="$1", now="$2", after="$3", limit="$4"),
}
_MEMBERS = text(
    "SELECT id, line, custom_id, attempts FROM requests "
    "WHERE native_job_id = :job AND state = 'native' ORDER BY id"
)


def _ids(database: Database, ids: Sequence[int]) -> Any:
    return orjson.dumps(list(ids)).decode() if database.dialect == "sqlite" else list(ids)


async def pending_requests(
    database: Database, batch_id: str, *, now: float, after: int = 0, limit: int = 2000
) -> list[NativeRequestRow]:
    """A page of a batch's pending requests that are due, in id order, after id ``after``."""
    async with database.read() as conn:
        result = await conn.exec_driver_sql(
            _PENDING[database.dialect], (batch_id, now, after, limit)
        )
        rows: Sequence[Any] = result.all()
    return [NativeRequestRow(row[0], row[1], row[2], row[3], bytes(row[4]), row[5]) for row in rows]


async def create_job(
    database: Database,
    *,
    job_id: str,
    batch_id: str,
    deployment: str,
    request_ids: Sequence[int],
    worker_id: str,
    now: float,
) -> list[int]:
    """Commit a ``submitting`` job holding those of ``request_ids`` still pending (in a
    running native batch), claimed by ``worker_id``; returns their ids. No job is created
    when none was left (another worker took them, or the batch closed)."""
    async with database.write() as conn:
        await conn.execute(
            native_jobs.insert().values(
                id=job_id,
                batch_id=batch_id,
                deployment=deployment,
                state="submitting",
                created_at=now,
                next_poll_at=now,
                claimed_by=worker_id,
                claimed_at=now,
                # A submitting job may have reached the upstream: whoever finds it later
                # looks for it there before giving its requests back.
                attempts=1,
            )
        )
        params = (job_id, _ids(database, request_ids), batch_id)
        claimed = sorted(
            (await conn.exec_driver_sql(_CLAIM_REQUESTS[database.dialect], params)).scalars()
        )
        if claimed:
            await conn.execute(
                update(native_jobs)
                .where(native_jobs.c.id == job_id)
                .values(request_count=len(claimed))
            )
        else:
            await conn.execute(delete(native_jobs).where(native_jobs.c.id == job_id))
    return claimed


async def job_requests(database: Database, job_id: str) -> list[NativeRequestRow]:
    """The requests a job holds that have no result yet, with their bodies."""
    query = text(
        "SELECT id, batch_id, line, custom_id, body, attempts FROM requests "
        "WHERE native_job_id = :job AND state = 'native' ORDER BY id"
    )
    async with database.read() as conn:
        rows = (await conn.execute(query, {"job": job_id})).all()
    return [NativeRequestRow(row[0], row[1], row[2], row[3], bytes(row[4]), row[5]) for row in rows]


async def job_members(database: Database, job_id: str) -> dict[int, NativeMember]:
    """The requests a job holds that have no result yet, by id (without their bodies)."""
    async with database.read() as conn:
        rows = (await conn.execute(_MEMBERS, {"job": job_id})).all()
    return {row[0]: NativeMember(row[0], row[1], row[2], row[3]) for row in rows}


async def record_upstream(
    database: Database,
    job_id: str,
    *,
    worker_id: str,
    upstream_id: str,
    now: float,
    next_poll_at: float,
) -> bool:
    """submitting -> running with its upstream id; False when the claim was lost."""
    async with database.write() as conn:
        result = await conn.execute(
            update(native_jobs)
            .where(
                native_jobs.c.id == job_id,
                native_jobs.c.state == "submitting",
                native_jobs.c.claimed_by == worker_id,
            )
            .values(
                state="running",
                upstream_id=upstream_id,
                upstream_state="running",
                submitted_at=now,
                next_poll_at=next_poll_at,
                claimed_by=None,
                claimed_at=None,
                last_error=None,
            )
        )
    return bool(result.rowcount)


async def claim_jobs(
    database: Database,
    *,
    worker_id: str,
    now: float,
    limit: int,
    batch_ids: Sequence[str] | None = None,
) -> list[NativeJobRecord]:
    """Claim unclaimed jobs that need a step: due for a poll, or of a batch that is closing
    and whose upstream was not asked to cancel yet."""
    closing = select(batches.c.id).where(
        batches.c.status.in_(["cancelling", "finalizing", "completed", "expired", "cancelled"])
    )
    free = [native_jobs.c.claimed_by.is_(None)]
    due = (
        select(native_jobs.c.id)
        .where(
            native_jobs.c.state.in_(["submitting", "running"]),
            *free,
            or_(
                native_jobs.c.next_poll_at <= now,
                and_(
                    native_jobs.c.cancel_requested_at.is_(None),
                    native_jobs.c.batch_id.in_(closing),
                ),
            ),
        )
        .order_by(native_jobs.c.next_poll_at)
        .limit(limit)
    )
    if batch_ids is not None:
        due = due.where(native_jobs.c.batch_id.in_(list(batch_ids)))
    statement = claim_rows(
        database.dialect,
        native_jobs,
        candidates=due,
        still=free,
        values={"claimed_by": worker_id, "claimed_at": now},
    )
    async with database.write() as conn:
        rows = (await conn.execute(statement)).all()
    return sorted((from_row(NativeJobRecord, row) for row in rows), key=lambda job: job.id)


async def release_job(database: Database, job_id: str, *, worker_id: str, **values: Any) -> bool:
    """End a step on a job: release the claim, storing ``values`` (next_poll_at,
    polled_at, upstream_state, cancel_requested_at, last_error, attempts)."""
    async with database.write() as conn:
        result = await conn.execute(
            update(native_jobs)
            .where(native_jobs.c.id == job_id, native_jobs.c.claimed_by == worker_id)
            .values(claimed_by=None, claimed_at=None, **values)
        )
    return bool(result.rowcount)


async def release_claims(database: Database, worker_id: str, *, keep: Sequence[str] = ()) -> int:
    """Free the jobs ``worker_id`` holds (it is stopping), or those no step of it holds any
    more, but ``keep``. (What dead workers held is released by
    `leasing.release_dead_workers`.)"""
    query = update(native_jobs).where(native_jobs.c.claimed_by == worker_id)
    if keep:
        query = query.where(native_jobs.c.id.not_in(list(keep)))
    async with database.write() as conn:
        result = await conn.execute(query.values(claimed_by=None, claimed_at=None))
    return int(result.rowcount or 0)


async def finish_job(
    database: Database,
    job_id: str,
    *,
    worker_id: str,
    now: float,
    upstream_state: str | None,
    counted: Sequence[int] = (),
    count_all: bool = False,
    close_code: str | None = None,
    deployment: str | None = None,
    not_before: float = 0.0,
    last_error: str | None = None,
) -> bool:
    """End a job in one transaction. Its requests without a final result yet either close
    with ``close_code`` (``batch_cancelled`` or ``batch_expired``), or go back to pending
    for a new job: those in ``counted`` (or all, with ``count_all``) keep the attempt
    their failure spent; the others (no outcome upstream) give it back. False when the
    claim was lost (nothing changed then)."""
    async with database.write() as conn:
        owned = (
            await conn.execute(
                select(native_jobs.c.batch_id).where(
                    native_jobs.c.id == job_id,
                    native_jobs.c.claimed_by == worker_id,
                    native_jobs.c.state != "done",
                )
            )
        ).first()
        if owned is None:
            return False
        if close_code is not None:
            inserted = await conn.execute(
                _CLOSE_REST,
                {
                    "job": job_id,
                    "code": close_code,
                    "message": CLOSING_MESSAGES[close_code],
                    "deployment": deployment,
                    "now": now,
                },
            )
            await conn.execute(_DONE_REST, {"job": job_id})
            closed = int(inserted.rowcount or 0)
            if closed:
                await conn.execute(
                    update(batches)
                    .where(batches.c.id == owned.batch_id)
                    .values(failed_count=batches.c.failed_count + closed, progress_at=now)
                )
        else:
            if count_all or counted:
                if count_all:
                    await conn.execute(
                        text(
                            "UPDATE requests SET state = 'pending', native_job_id = NULL, "
                            "not_before = :not_before WHERE native_job_id = :job "
                            "AND state = 'native'"
                        ),
                        {"job": job_id, "not_before": not_before},
                    )
                else:
                    params: Any = (not_before, job_id, _ids(database, counted))
                    await conn.exec_driver_sql(_REQUEUE_COUNTED[database.dialect], params)
            await conn.execute(_REQUEUE_REST, {"job": job_id, "not_before": not_before})
        await conn.execute(
            update(native_jobs)
            .where(native_jobs.c.id == job_id)
            .values(
                state="done",
                upstream_state=upstream_state,
                ended_at=now,
                claimed_by=None,
                claimed_at=None,
                last_error=last_error,
            )
        )
    return True


async def jobs_of_batch(database: Database, batch_id: str) -> list[NativeJobRecord]:
    """A batch's jobs, oldest first."""
    query = (
        select(native_jobs)
        .where(native_jobs.c.batch_id == batch_id)
        .order_by(native_jobs.c.created_at, native_jobs.c.id)
    )
    async with database.read() as conn:
        rows = (await conn.execute(query)).all()
    return [from_row(NativeJobRecord, row) for row in rows]
