"""Leasing requests to workers, and taking leases back.

A lease is one atomic statement: pending rows of an in-progress online batch become
``leased`` by one worker, in line order. PostgreSQL skips rows another worker is leasing at
that moment (``FOR UPDATE SKIP LOCKED``); SQLite has one writer, so its plain subquery is
already atomic. A native batch's requests go to the provider's batch API instead
(`storage.native_jobs`): they are never leased, and their state ``native`` is never taken
back by the recoveries here.
Leases are renewed by the worker's heartbeat (``workers.heartbeat_at``), not row by row: when a
worker dies, every row it held goes back to pending in one UPDATE.

State names are literals in the SQL, never parameters, so both databases can use the
partial indexes ``ix_requests_pending`` and ``ix_requests_leased``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, text

from datamill.storage.database import Database
from datamill.storage.records import LeasedRequest

_LEASE_SQL = """
    UPDATE requests
    SET state = 'leased', lease_owner = {worker}, leased_at = {now}, attempts = attempts + 1
    WHERE id IN (
        SELECT id FROM requests
        WHERE batch_id = {batch} AND state = 'pending' AND not_before <= {now}
        ORDER BY line LIMIT {limit}
        {lock}
    )
    AND EXISTS (
        SELECT 1 FROM batches
        WHERE id = {batch} AND status = 'in_progress' AND mode = 'online'
    )
    RETURNING id, batch_id, line, custom_id, body, attempts
"""

# Sent to the drivers as they are (`exec_driver_sql`), in each driver's parameter style.
# The one real difference: PostgreSQL skips rows another worker is leasing right now;
# SQLite's single writer makes the plain subquery atomic already.
_LEASE = {
    "sqlite": _LEASE_SQL.format(
        worker=":worker", now=":now", batch=":batch", limit=":limit", lock=""
    ),
    "postgresql": _LEASE_SQL.format(
        worker="$1", now="$2", batch="$3", limit="$4", lock="FOR UPDATE SKIP LOCKED"
    ),
}

_RELEASE_ALL = text(
    """
    UPDATE requests SET state = 'pending', lease_owner = NULL, leased_at = NULL
    WHERE state = 'leased' AND lease_owner IN :workers
    """
).bindparams(bindparam("workers", expanding=True))

_RELEASE_SOME = text(
    """
    UPDATE requests SET state = 'pending', lease_owner = NULL, leased_at = NULL
    WHERE state = 'leased' AND lease_owner = :worker AND id IN :ids
    """
).bindparams(bindparam("ids", expanding=True))

_RELEASE_STALE = text(
    """
    UPDATE requests SET state = 'pending', lease_owner = NULL, leased_at = NULL
    WHERE state = 'leased' AND batch_id = :batch AND leased_at < :before
    """
)


async def lease_requests(
    database: Database, *, batch_id: str, worker_id: str, limit: int, now: float
) -> list[LeasedRequest]:
    """Lease up to ``limit`` due requests of one in-progress batch to ``worker_id``."""
    rows: Sequence[Any]
    if database.dialect == "postgresql":
        params = (worker_id, now, batch_id, limit)
        async with database.write(relaxed=True) as conn:
            rows = list((await conn.exec_driver_sql(_LEASE["postgresql"], params)).all())
    else:
        named = {"worker": worker_id, "now": now, "batch": batch_id, "limit": limit}
        rows = await database.write_sqlite(
            lambda conn: conn.execute(_LEASE["sqlite"], named).fetchall()
        )
    leased = [LeasedRequest(row[0], row[1], row[2], row[3], bytes(row[4]), row[5]) for row in rows]
    leased.sort(key=lambda request: request.line)
    return leased


async def release_leases(
    database: Database, *, worker_id: str, request_ids: Sequence[int] | None = None
) -> int:
    """Give leases back (a worker stopping); only rows still leased by ``worker_id``."""
    async with database.write() as conn:
        if request_ids is None:
            result = await conn.execute(_RELEASE_ALL, {"workers": [worker_id]})
        elif request_ids:
            result = await conn.execute(
                _RELEASE_SOME, {"worker": worker_id, "ids": list(request_ids)}
            )
        else:
            return 0
    return int(result.rowcount or 0)


async def recover_leases(database: Database, *, worker_ids: Sequence[str]) -> int:
    """Put back every request held by workers that died."""
    if not worker_ids:
        return 0
    async with database.write() as conn:
        result = await conn.execute(_RELEASE_ALL, {"workers": list(worker_ids)})
    return int(result.rowcount or 0)


async def recover_stale_leases(database: Database, *, batch_id: str, leased_before: float) -> int:
    """Put back requests of a stuck batch leased before ``leased_before`` (their worker lives
    but never answered). A late answer is still accepted once: recording is idempotent."""
    async with database.write() as conn:
        result = await conn.execute(_RELEASE_STALE, {"batch": batch_id, "before": leased_before})
    return int(result.rowcount or 0)
