"""The workers registry: who is alive, and declaring the dead.

A worker's heartbeat renews every claim it holds at once (`storage.leasing`). A worker is
dead when its heartbeat is older than the TTL, or, on the same host, when its process no
longer exists (so a crashed `batch run` resumes at once instead of waiting for the TTL);
what it held is then released by `leasing.release_dead_workers`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from sqlalchemy import select, update

from datamill.storage.database import Database
from datamill.storage.records import WorkerRecord, from_row
from datamill.storage.schema import workers


async def register_worker(database: Database, record: WorkerRecord) -> None:
    async with database.write() as conn:
        await conn.execute(
            workers.insert().values(
                {name: getattr(record, name) for name in WorkerRecord.__dataclass_fields__}
            )
        )


async def heartbeat(
    database: Database,
    worker_id: str,
    *,
    now: float,
    in_flight: int,
    completed: int,
    failed: int,
    current_batch_id: str | None,
) -> bool:
    """Renew the worker's claims. False when it had been declared dead (claims lost)."""
    async with database.write() as conn:
        result = await conn.execute(
            update(workers)
            .where(workers.c.id == worker_id, workers.c.status == "running")
            .values(
                heartbeat_at=now,
                in_flight=in_flight,
                completed=completed,
                failed=failed,
                current_batch_id=current_batch_id,
            )
        )
        if not result.rowcount:
            # Declared dead by a peer: come back to life with no claims held.
            await conn.execute(
                update(workers)
                .where(workers.c.id == worker_id)
                .values(status="running", heartbeat_at=now, stopped_at=None)
            )
    return bool(result.rowcount)


async def mark_stopped(database: Database, worker_id: str, *, now: float) -> None:
    async with database.write() as conn:
        await conn.execute(
            update(workers)
            .where(workers.c.id == worker_id)
            .values(status="stopped", stopped_at=now, in_flight=0, current_batch_id=None)
        )


async def list_workers(database: Database, *, include_stopped: bool = True) -> list[WorkerRecord]:
    query = select(workers).order_by(workers.c.started_at.desc())
    if not include_stopped:
        query = query.where(workers.c.status == "running")
    async with database.read() as conn:
        rows = (await conn.execute(query)).all()
    return [from_row(WorkerRecord, row) for row in rows]


async def get_workers(database: Database, worker_ids: Sequence[str]) -> list[WorkerRecord]:
    async with database.read() as conn:
        rows = (await conn.execute(select(workers).where(workers.c.id.in_(list(worker_ids))))).all()
    return [from_row(WorkerRecord, row) for row in rows]


async def declare_dead_workers(
    database: Database, *, now: float, ttl: float, host: str, caller: str | None = None
) -> list[str]:
    """Mark running workers whose heartbeat is too old (or whose local process is gone) dead.

    The ``caller`` is alive by definition, whatever its last heartbeat says (its event loop
    may have been blocked, or the machine asleep): it is never declared dead."""
    async with database.read() as conn:
        rows = (
            await conn.execute(
                select(workers.c.id, workers.c.host, workers.c.pid, workers.c.heartbeat_at).where(
                    workers.c.status == "running"
                )
            )
        ).all()
    dead = [
        row.id
        for row in rows
        if row.id != caller
        and (row.heartbeat_at < now - ttl or (row.host == host and not _process_alive(row.pid)))
    ]
    if dead:
        await _mark_dead(database, dead, now=now)
    return dead


async def _mark_dead(database: Database, worker_ids: Sequence[str], *, now: float) -> None:
    async with database.write() as conn:
        await conn.execute(
            update(workers)
            .where(workers.c.id.in_(list(worker_ids)), workers.c.status == "running")
            .values(status="dead", stopped_at=now, in_flight=0)
        )


async def live_worker_count(database: Database, *, now: float, ttl: float) -> int:
    async with database.read() as conn:
        rows = (
            await conn.execute(
                select(workers.c.id).where(
                    workers.c.status == "running", workers.c.heartbeat_at >= now - ttl
                )
            )
        ).all()
    return len(rows)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
