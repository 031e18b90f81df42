"""Staging a batch's requests (one row per input line), closing the unfinished ones, and
deleting a finished batch's rows after DATAMILL_RETENTION_BATCH_REQUESTS_DAYS.

Closing (cancel, expiry) writes a final error result for each request that has none, in the
same transaction as the counters, using the same first-result-wins rule as `record_results`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, and_, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from datamill.protocol.batches import BatchStatus
from datamill.storage.database import Database
from datamill.storage.pruning import CHUNK_ROWS, Pruned
from datamill.storage.schema import batches, generation_requests, requests, results


@dataclass(frozen=True, slots=True)
class DuplicateCustomId:
    custom_id: str
    first_line: int
    line: int


# Straight to the drivers: a million-line batch stages a million rows.
_STAGE_SQLITE = "INSERT INTO requests (batch_id, line, custom_id, body) VALUES (?, ?, ?, ?)"
_STAGE_PG = (
    "INSERT INTO requests (batch_id, line, custom_id, body) "
    "SELECT $1, * FROM unnest($2::integer[], $3::text[], $4::bytea[])"
)


async def stage_requests(
    database: Database, batch_id: str, rows: Sequence[tuple[int, str, bytes]]
) -> None:
    """Insert (line, custom_id, body) rows as pending requests of a validating batch."""
    if not rows:
        return
    # Staging is redone from scratch if validation dies, and the batch's start commits
    # durably after it (flushing these too): no need to wait for the disk here.
    async with database.write(relaxed=True) as conn:
        if database.dialect == "postgresql":
            lines, custom_ids, bodies = (list(column) for column in zip(*rows, strict=True))
            await conn.exec_driver_sql(_STAGE_PG, (batch_id, lines, custom_ids, bodies))
        else:
            await conn.exec_driver_sql(
                _STAGE_SQLITE, [(batch_id, line, custom_id, body) for line, custom_id, body in rows]
            )


async def clear_requests(database: Database, batch_id: str) -> None:
    """Remove a batch's staged rows (a validation that failed, or restarts)."""
    async with database.write(relaxed=True) as conn:
        await conn.execute(delete(results).where(results.c.batch_id == batch_id))
        await conn.execute(delete(requests).where(requests.c.batch_id == batch_id))


async def duplicate_custom_ids(
    database: Database, batch_id: str, *, limit: int
) -> list[DuplicateCustomId]:
    query = (
        select(
            requests.c.custom_id,
            func.min(requests.c.line).label("first_line"),
            func.max(requests.c.line).label("last_line"),
        )
        .where(requests.c.batch_id == batch_id)
        .group_by(requests.c.custom_id)
        .having(func.count() > 1)
        .order_by(func.max(requests.c.line))
        .limit(limit)
    )
    async with database.read() as conn:
        rows = (await conn.execute(query)).all()
    return [DuplicateCustomId(row.custom_id, row.first_line, row.last_line) for row in rows]


def _close_statement(states: str) -> str:
    # The SELECT keeps its WHERE clause: SQLite needs one before ON CONFLICT.
    return f"""
        INSERT INTO results (request_id, batch_id, line, custom_id, ok, error_code,
                             error_message, attempts, finished_at)
        SELECT id, batch_id, line, custom_id, false, :code, :message, attempts, :now
        FROM requests WHERE batch_id = :batch AND state IN ({states})
        ON CONFLICT (request_id) DO NOTHING
    """


_CLOSE_PENDING = text(_close_statement("'pending'"))
_CLOSE_UNFINISHED = text(_close_statement("'pending', 'leased'"))
_DONE_PENDING = text(
    "UPDATE requests SET state = 'done', lease_owner = NULL "
    "WHERE batch_id = :batch AND state = 'pending'"
)
_DONE_UNFINISHED = text(
    "UPDATE requests SET state = 'done', lease_owner = NULL "
    "WHERE batch_id = :batch AND state IN ('pending', 'leased')"
)


# Why a request was closed without being sent, by the code of its error line.
CLOSING_MESSAGES = {
    "batch_cancelled": "The batch was cancelled before this request was sent.",
    "batch_expired": "The batch's completion window ended before this request finished.",
    "budget_exhausted": "The batch's budget was spent before this request was sent.",
}


async def cancel_pending_requests(database: Database, batch_id: str, *, now: float) -> int:
    """Give every not-yet-leased request of a cancelling batch a ``batch_cancelled`` result.

    Leased requests are in flight and finish normally."""
    return await close_pending_requests(database, batch_id, code="batch_cancelled", now=now)


async def close_pending_requests(
    database: Database, batch_id: str, *, code: str, now: float
) -> int:
    """Give every pending request of a closing batch a final ``code`` result (a key of
    `CLOSING_MESSAGES`); returns how many."""
    async with database.write() as conn:
        return await _close_pending(conn, batch_id, code=code, now=now)


async def _close_pending(conn: AsyncConnection, batch_id: str, *, code: str, now: float) -> int:
    inserted = await conn.execute(
        _CLOSE_PENDING,
        {"batch": batch_id, "code": code, "message": CLOSING_MESSAGES[code], "now": now},
    )
    await conn.execute(_DONE_PENDING, {"batch": batch_id})
    count = int(inserted.rowcount or 0)
    if count:
        await _add_failed(conn, batch_id, count, now)
    return count


async def stop_for_budget(database: Database, batch_id: str, *, now: float) -> bool:
    """Stop a running batch whose spending reached its budget: it is marked stopped, and its
    requests not sent yet end ``budget_exhausted`` (those in flight finish). False when the
    batch is not running or was stopped already."""
    async with database.write() as conn:
        moved = await conn.execute(
            update(batches)
            .where(
                batches.c.id == batch_id,
                batches.c.status == BatchStatus.in_progress.value,
                batches.c.stop_reason.is_(None),
            )
            .values(stop_reason="budget_exhausted")
        )
        if not moved.rowcount:
            return False
        await _close_pending(conn, batch_id, code="budget_exhausted", now=now)
    return True


class _NotInProgress(Exception):
    """Rolls back an expiry that lost the race to another transition."""


async def expire_batch(database: Database, batch_id: str, *, now: float) -> bool:
    """in_progress -> finalizing(expired): every unfinished request gets ``batch_expired``,
    but those in an upstream job of a native batch: the native runner closes them once what
    the upstream finished is recorded.

    Answers still in flight arrive too late and are dropped by the first-result rule. Results
    are written before the batch row is locked, the order `record_results` takes its locks in:
    an expiry racing a flush cannot deadlock on PostgreSQL."""
    try:
        async with database.write() as conn:
            inserted = await conn.execute(
                _CLOSE_UNFINISHED,
                {
                    "batch": batch_id,
                    "code": "batch_expired",
                    "message": CLOSING_MESSAGES["batch_expired"],
                    "now": now,
                },
            )
            await conn.execute(_DONE_UNFINISHED, {"batch": batch_id})
            moved = await conn.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.status == BatchStatus.in_progress.value)
                .values(
                    status=BatchStatus.finalizing.value,
                    finalizing_at=now,
                    target_status="expired",
                    failed_count=batches.c.failed_count + int(inserted.rowcount or 0),
                    progress_at=now,
                )
            )
            if not moved.rowcount:
                raise _NotInProgress
    except _NotInProgress:
        return False
    return True


async def _add_failed(conn: AsyncConnection, batch_id: str, count: int, now: float) -> None:
    await conn.execute(
        update(batches)
        .where(batches.c.id == batch_id)
        .values(failed_count=batches.c.failed_count + count, progress_at=now)
    )


async def count_unfinished(database: Database, batch_id: str) -> dict[str, int]:
    """Requests by state for one batch (diagnostics and stuck detection)."""
    async with database.read() as conn:
        rows = (
            await conn.execute(
                select(requests.c.state, func.count())
                .where(requests.c.batch_id == batch_id)
                .group_by(requests.c.state)
            )
        ).all()
    return {row[0]: row[1] for row in rows}


# When a finished batch ended: the stamp of its terminal status.
_ended_at = func.coalesce(
    batches.c.completed_at, batches.c.failed_at, batches.c.expired_at, batches.c.cancelled_at
)


def _prunable_batches(finished_before: float, limit: int) -> Select[tuple[str]]:
    """Finished batches, ended before ``finished_before``, that still have request rows
    and whose rows no generation job needs: one with requests of it still open reads their
    answers, and a job's batch it has not recorded yet (a runner died in between) is adopted
    from its rows."""
    has_rows = select(requests.c.id).where(requests.c.batch_id == batches.c.id).exists()
    job_needs = (
        select(generation_requests.c.id)
        .where(
            generation_requests.c.batch_id == batches.c.id,
            generation_requests.c.state != "done",
        )
        .exists()
    )
    job_knows = (
        select(generation_requests.c.id).where(generation_requests.c.batch_id == batches.c.id)
    ).exists()
    # (coalesce: most batches have no key, and NOT (NULL AND ...) would leave them out.)
    unadopted = and_(func.coalesce(batches.c.idempotency_key, "").like("gen:%"), ~job_knows)
    return (
        select(batches.c.id)
        .where(
            batches.c.status.in_([s.value for s in BatchStatus if s.terminal]),
            _ended_at < finished_before,
            has_rows,
            ~job_needs,
            ~unadopted,
        )
        .order_by(batches.c.seq)
        .limit(limit)
    )


async def prune_finished_requests(
    database: Database, *, finished_before: float, max_rows: int, chunk: int = CHUNK_ROWS
) -> Pruned:
    """Delete the request rows (and their results) of batches that finished before
    ``finished_before``, in chunks of ``chunk`` requests per transaction, at most about
    ``max_rows`` in all.

    The batch row stays as it is (status, counts, tokens, cost, its output and error file
    ids), and so do its files; only what was needed to run it and write them goes. An
    unfinished batch is never touched: a batch's status is terminal for good."""
    async with database.read() as conn:
        batch_ids = list((await conn.execute(_prunable_batches(finished_before, 100))).scalars())
    deleted = 0
    for batch_id in batch_ids:
        while True:
            if deleted >= max_rows:
                return Pruned(deleted, more=True)
            async with database.write(relaxed=True) as conn:
                # Any rows of the batch, in no order: sorting the rest of a large batch for
                # each chunk would cost more than deleting it.
                found = await conn.execute(
                    select(requests.c.id).where(requests.c.batch_id == batch_id).limit(chunk)
                )
                ids = list(found.scalars())
                # Results first: no foreign key cascade is relied on.
                await conn.execute(delete(results).where(results.c.request_id.in_(ids)))
                gone = await conn.execute(delete(requests).where(requests.c.id.in_(ids)))
            count = int(gone.rowcount or 0)
            deleted += count
            if count < chunk:
                break
    return Pruned(deleted, more=len(batch_ids) == 100)
