"""The batches repository: the batch row, its status machine and its live counters.

Status changes are single conditional UPDATEs, so two workers racing for the same transition
cannot both win; callers read ``rowcount`` to know whether they did.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, case, delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError

from datamill.protocol.batches import BatchStatus
from datamill.storage.database import Database
from datamill.storage.files import file_values
from datamill.storage.leasing import claim_row
from datamill.storage.pagination import _fetch_page
from datamill.storage.records import BatchRecord, FileRecord, from_row
from datamill.storage.schema import batches, files, results

S = BatchStatus
_finished = batches.c.completed_count + batches.c.failed_count


class BatchKeyTaken(Exception):
    """Another batch of the project was created with this idempotency key."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


async def insert_batch(database: Database, **values: Any) -> BatchRecord:
    """Insert a batch; `BatchKeyTaken` when its ``idempotency_key`` is taken (the unique
    index decides between two racing creates)."""
    try:
        async with database.write() as conn:
            await conn.execute(batches.insert().values(**values))
            row = (await conn.execute(select(batches).where(batches.c.id == values["id"]))).one()
    except IntegrityError:
        key = values.get("idempotency_key")
        if key is None:
            raise
        raise BatchKeyTaken(key) from None
    return from_row(BatchRecord, row)


async def get_batch(
    database: Database, batch_id: str, *, project_id: str | None = None
) -> BatchRecord | None:
    query = select(batches).where(batches.c.id == batch_id)
    if project_id is not None:
        query = query.where(batches.c.project_id == project_id)
    async with database.read() as conn:
        row = (await conn.execute(query)).first()
    return from_row(BatchRecord, row) if row else None


async def find_batch_by_key(database: Database, key: str, *, project_id: str) -> BatchRecord | None:
    async with database.read() as conn:
        row = (
            await conn.execute(
                select(batches).where(
                    batches.c.project_id == project_id, batches.c.idempotency_key == key
                )
            )
        ).first()
    return from_row(BatchRecord, row) if row else None


async def forget_batch_key(database: Database, key: str, *, project_id: str) -> None:
    """Detach a key from its batch, so the next create with it starts afresh."""
    async with database.write() as conn:
        await conn.execute(
            update(batches)
            .where(batches.c.project_id == project_id, batches.c.idempotency_key == key)
            .values(idempotency_key=None)
        )


async def count_batches_by_status(
    database: Database, *, project_id: str | None = None
) -> dict[str, int]:
    """Batches per status, of one project or all (statuses without a batch are absent)."""
    query = select(batches.c.status, func.count()).group_by(batches.c.status)
    if project_id is not None:
        query = query.where(batches.c.project_id == project_id)
    async with database.read() as conn:
        rows = await conn.execute(query)
        return {status: int(count) for status, count in rows}


async def batches_of_project(
    database: Database, batch_ids: set[str], *, project_id: str
) -> set[str]:
    """Which of these batches belong to the project."""
    if not batch_ids:
        return set()
    query = select(batches.c.id).where(
        batches.c.id.in_(sorted(batch_ids)), batches.c.project_id == project_id
    )
    async with database.read() as conn:
        return {row.id for row in await conn.execute(query)}


async def list_batches(
    database: Database, *, project_id: str, after: str | None, limit: int
) -> tuple[list[BatchRecord], bool]:
    async with database.read() as conn:
        rows, has_more = await _fetch_page(
            conn,
            batches,
            where=[batches.c.project_id == project_id],
            after=after,
            limit=limit,
            order="desc",
        )
    return [from_row(BatchRecord, row) for row in rows], has_more


async def batches_with_status(
    database: Database, statuses: Sequence[BatchStatus], *, ids: Sequence[str] | None = None
) -> list[BatchRecord]:
    query = select(batches).where(batches.c.status.in_([s.value for s in statuses]))
    if ids is not None:
        query = query.where(batches.c.id.in_(list(ids)))
    async with database.read() as conn:
        rows = (await conn.execute(query.order_by(batches.c.seq))).all()
    return [from_row(BatchRecord, row) for row in rows]


async def native_batches(
    database: Database, *, ids: Sequence[str] | None = None
) -> list[BatchRecord]:
    """Native-mode batches that are running or closing (their upstream jobs need care)."""
    live = [S.in_progress.value, S.cancelling.value, S.finalizing.value]
    query = select(batches).where(batches.c.mode == "native", batches.c.status.in_(live))
    if ids is not None:
        query = query.where(batches.c.id.in_(list(ids)))
    async with database.read() as conn:
        rows = (await conn.execute(query.order_by(batches.c.seq))).all()
    return [from_row(BatchRecord, row) for row in rows]


async def claim_batch(
    database: Database, batch_id: str, *, worker_id: str, status: BatchStatus
) -> bool:
    """Make ``worker_id`` the one worker validating or finalizing the batch."""
    free = [batches.c.status == status.value, batches.c.claimed_by.is_(None)]
    statement = claim_row(
        database.dialect, batches, batch_id, still=free, values={"claimed_by": worker_id}
    )
    async with database.write() as conn:
        return (await conn.execute(statement)).first() is not None


async def fail_batch(
    database: Database, batch_id: str, *, errors: list[dict[str, Any]], now: float
) -> bool:
    """validating -> failed, with the file-level errors that caused it."""
    async with database.write() as conn:
        result = await conn.execute(
            update(batches)
            .where(batches.c.id == batch_id, batches.c.status == S.validating.value)
            .values(status=S.failed.value, failed_at=now, errors=errors, claimed_by=None)
        )
    return bool(result.rowcount)


async def start_batch(
    database: Database,
    batch_id: str,
    *,
    total: int,
    model: str | None,
    now: float,
    mode: str = "online",
) -> bool:
    """validating -> in_progress once every request row is staged, in its resolved ``mode``
    (online or native), recorded here once so that every worker and restart agrees."""
    async with database.write() as conn:
        result = await conn.execute(
            update(batches)
            .where(batches.c.id == batch_id, batches.c.status == S.validating.value)
            .values(
                status=S.in_progress.value,
                in_progress_at=now,
                total_count=total,
                model=model,
                progress_at=now,
                claimed_by=None,
                mode=mode,
            )
        )
        if not result.rowcount:
            # Cancelled while validating: keep the staged rows countable for finalization.
            await conn.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.status == S.cancelling.value)
                .values(total_count=total, model=model, claimed_by=None, mode=mode)
            )
    return bool(result.rowcount)


async def request_cancel(database: Database, batch_id: str, *, now: float) -> bool:
    """validating or in_progress -> cancelling. False when the batch was not cancellable."""
    async with database.write() as conn:
        result = await conn.execute(
            update(batches)
            .where(
                batches.c.id == batch_id,
                batches.c.status.in_([S.validating.value, S.in_progress.value]),
            )
            .values(status=S.cancelling.value, cancelling_at=now, target_status="cancelled")
        )
    return bool(result.rowcount)


# A batch some of whose requests a worker closed for its budget was stopped by it, whoever
# got to mark it first: the sweep (`requests.stop_for_budget`), or nobody, when the worker
# closed the last requests before a sweep saw the store's cost reach the budget.
_BUDGET_CLOSED = case(
    (
        exists().where(
            results.c.batch_id == batches.c.id,
            results.c.ok.is_(False),
            results.c.error_code == "budget_exhausted",
        ),
        "budget_exhausted",
    ),
)


async def claim_finalization(
    database: Database, batch_id: str, *, worker_id: str, now: float
) -> bool:
    """Take a batch whose every request has a result, to write its output files.

    in_progress -> finalizing; an expired batch is already finalizing; a cancelling batch
    stays cancelling until its files are written.
    """
    ready = [batches.c.claimed_by.is_(None), _finished >= batches.c.total_count]
    tries: list[tuple[list[ColumnElement[bool]], dict[str, Any]]] = [
        (
            [*ready, batches.c.status == S.in_progress.value],
            {
                "status": S.finalizing.value,
                "finalizing_at": now,
                "target_status": "completed",
                "claimed_by": worker_id,
                "stop_reason": func.coalesce(batches.c.stop_reason, _BUDGET_CLOSED),
            },
        ),
        (
            # A validator holds its claim until every row is staged and counted.
            [*ready, batches.c.status.in_([S.finalizing.value, S.cancelling.value])],
            {"claimed_by": worker_id},
        ),
    ]
    async with database.write() as conn:
        for still, values in tries:
            statement = claim_row(database.dialect, batches, batch_id, still=still, values=values)
            if (await conn.execute(statement)).first() is not None:
                return True
    return False


async def finish_batch(
    database: Database,
    batch_id: str,
    *,
    worker_id: str,
    output_file: FileRecord | None,
    error_file: FileRecord | None,
    now: float,
) -> BatchStatus | None:
    """finalizing/cancelling -> its target status, with the output files attached.

    The file rows are written in the same transaction, so a crash leaves either the batch
    finished with its files or neither."""
    output_file_id = output_file.id if output_file else None
    error_file_id = error_file.id if error_file else None
    async with database.write() as conn:
        row = (
            await conn.execute(
                select(batches.c.status, batches.c.target_status).where(
                    batches.c.id == batch_id, batches.c.claimed_by == worker_id
                )
            )
        ).first()
        if row is None:
            return None
        target = BatchStatus(row.target_status or "completed")
        for file in (output_file, error_file):
            if file is not None:
                await conn.execute(delete(files).where(files.c.id == file.id))
                await conn.execute(files.insert().values(**file_values(file)))
        stamp = {
            S.completed: "completed_at",
            S.expired: "expired_at",
            S.cancelled: "cancelled_at",
        }[target]
        await conn.execute(
            update(batches)
            .where(batches.c.id == batch_id, batches.c.claimed_by == worker_id)
            .values(
                status=target.value,
                output_file_id=output_file_id,
                error_file_id=error_file_id,
                claimed_by=None,
                **{stamp: now},
            )
        )
    return target


async def batches_to_finalize(database: Database) -> list[str]:
    query = select(batches.c.id).where(
        batches.c.claimed_by.is_(None),
        _finished >= batches.c.total_count,
        batches.c.status.in_([S.in_progress.value, S.finalizing.value, S.cancelling.value]),
    )
    async with database.read() as conn:
        return list((await conn.execute(query)).scalars())


async def stuck_batches(
    database: Database, *, now: float, stuck_after: float, project_id: str | None = None
) -> list[BatchRecord]:
    """In-progress online batches (of one project, if given) with work left and no result
    recorded for ``stuck_after`` seconds. Native batches are left out: waiting hours for the
    provider's batch API is their normal course, and they hold no leases to recover."""
    query = select(batches).where(
        batches.c.status == S.in_progress.value,
        batches.c.mode == "online",
        _finished < batches.c.total_count,
        batches.c.progress_at < now - stuck_after,
    )
    if project_id is not None:
        query = query.where(batches.c.project_id == project_id)
    async with database.read() as conn:
        rows = (await conn.execute(query.order_by(batches.c.seq))).all()
    return [from_row(BatchRecord, row) for row in rows]


async def release_claims(database: Database, worker_id: str, *, batch_id: str) -> None:
    """Free a validation or finalization of ``worker_id`` that failed, for another try.
    (What dead workers held is released by `leasing.release_dead_workers`.)"""
    async with database.write() as conn:
        await conn.execute(
            update(batches)
            .where(batches.c.claimed_by == worker_id, batches.c.id == batch_id)
            .values(claimed_by=None)
        )
