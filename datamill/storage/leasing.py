"""Claiming work, and releasing what dead workers held: the one place for both.

Four kinds of work are claimed by a worker, each row naming its owner by the worker's id:

==================  =======================  ==========================================
work                column naming the owner  claimed by
==================  =======================  ==========================================
requests            ``lease_owner``          `lease_requests` (here), ``native`` jobs'
                                             requests (`native_jobs.create_job`)
batches             ``claimed_by``           `batches.claim_batch`, `claim_finalization`
native jobs         ``claimed_by``           `native_jobs.claim_jobs`
generation jobs     ``runner``               `generation.claim_job`
==================  =======================  ==========================================

(The column names predate this module; renaming them would need a migration of the
hottest table for no change in behaviour, so the code calls the owner ``worker_id``
everywhere instead.)

**One claim statement.** Every claim is one ``UPDATE ... WHERE id IN (candidates) ...
RETURNING`` built here, by `claim_rows` (SQLAlchemy Core; `claim_row` for one named row)
or `claim_sql` (driver SQL, for the hot paths). The one difference between the stores is
decided in `skips_locked`: PostgreSQL's candidate subquery ends with ``FOR UPDATE SKIP
LOCKED``, so claimers never wait on each other and never take the same row; SQLite has
one writer (``BEGIN IMMEDIATE``), so its plain subquery is already atomic. The UPDATE
re-checks the claim's condition, so a candidate taken meanwhile is never taken twice.

**One recovery model: heartbeats.** A worker's heartbeat (``workers.heartbeat_at``) renews
every claim it holds at once; nothing is renewed row by row. A worker whose heartbeat is
older than ``DATAMILL_WORKER_TTL`` (or whose process is gone on the same host) is declared
dead by the maintenance sweep (`workers.declare_dead_workers`), which then calls
`release_dead_workers`: every claim of every kind it held is released in one transaction.
A worker stopping cleanly gives its claims back itself.

A native batch's requests go to the provider's batch API instead: they are never leased,
and their state ``native`` is never taken back by the releases here (their job is).
State names are literals in the SQL, never parameters, so both stores can use the partial
indexes ``ix_requests_pending`` and ``ix_requests_leased``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, Update, bindparam, select, text, update

from datamill.storage.database import Database, Dialect
from datamill.storage.records import LeasedRequest
from datamill.storage.schema import batches, generation_jobs, generation_runs, native_jobs

# -- the claim statement ----------------------------------------------------------------------


def skips_locked(dialect: str) -> bool:
    """Whether a claim's candidates skip rows another transaction holds: the one place
    where the stores differ in claiming. PostgreSQL: yes (``FOR UPDATE SKIP LOCKED``), so
    concurrent claimers split the rows. SQLite: no need, its single writer serialises
    claims."""
    return dialect == "postgresql"


def lock_clause(dialect: str) -> str:
    """What ends a candidate subquery in driver SQL."""
    return "FOR UPDATE SKIP LOCKED" if skips_locked(dialect) else ""


def claim_sql(
    dialect: str, *, table: str, values: str, candidates: str, where: str, returning: str
) -> str:
    """A claim in driver SQL: ``UPDATE table SET values WHERE id IN (candidates [lock])
    AND where RETURNING returning``. Built once, at import, by the hot paths."""
    return (
        f"UPDATE {table} SET {values} "
        f"WHERE id IN ({candidates} {lock_clause(dialect)}) AND {where} "
        f"RETURNING {returning}"
    )


def claim_rows(
    dialect: str,
    table: Table,
    *,
    candidates: Select[Any],
    still: Sequence[ColumnElement[bool]],
    values: Mapping[str, Any],
) -> Update:
    """A claim in SQLAlchemy Core: the rows of ``table`` whose id ``candidates`` selects
    (locked and skipped per `skips_locked`) and that still meet ``still`` get ``values``
    (the owner among them); returns them whole."""
    if skips_locked(dialect):
        candidates = candidates.with_for_update(skip_locked=True)
    # Never correlated to the UPDATE: the subquery reads the table afresh.
    chosen = candidates.correlate(None).scalar_subquery()
    return update(table).where(table.c.id.in_(chosen), *still).values(**values).returning(*table.c)


def claim_row(
    dialect: str,
    table: Table,
    row_id: str,
    *,
    still: Sequence[ColumnElement[bool]],
    values: Mapping[str, Any],
) -> Update:
    """`claim_rows` of one named row (a batch to validate or finalize). On PostgreSQL, while
    another transaction holds that row, the claim takes nothing, at once, rather than
    waiting: every such claim is tried again by the next sweep."""
    candidates = select(table.c.id).where(table.c.id == row_id, *still)
    return claim_rows(dialect, table, candidates=candidates, still=still, values=values)


# -- requests ---------------------------------------------------------------------------------


def _lease_sql(dialect: Dialect) -> str:
    worker, now, batch, limit = (
        (":worker", ":now", ":batch", ":limit") if dialect == "sqlite" else ("$1", "$2", "$3", "$4")
    )
    return claim_sql(
        dialect,
        table="requests",
        values=f"state = 'leased', lease_owner = {worker}, leased_at = {now}, "
        "attempts = attempts + 1",
        candidates=f"SELECT id FROM requests WHERE batch_id = {batch} AND state = 'pending' "
        f"AND not_before <= {now} ORDER BY line LIMIT {limit}",
        where=f"EXISTS (SELECT 1 FROM batches WHERE id = {batch} AND status = 'in_progress' "
        "AND mode = 'online')",
        returning="id, batch_id, line, custom_id, body, attempts",
    )


# Sent to the drivers as they are (`exec_driver_sql`), in each driver's parameter style.
_LEASE: dict[Dialect, str] = {dialect: _lease_sql(dialect) for dialect in ("sqlite", "postgresql")}

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
        # One trip to the SQLite thread: the hot path.
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


async def recover_stale_leases(database: Database, *, batch_id: str, leased_before: float) -> int:
    """Put back requests of a stuck batch leased before ``leased_before`` (their worker lives
    but never answered). A late answer is still accepted once: recording is idempotent."""
    async with database.write() as conn:
        result = await conn.execute(_RELEASE_STALE, {"batch": batch_id, "before": leased_before})
    return int(result.rowcount or 0)


# -- what dead workers held -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Released:
    """What `release_dead_workers` freed, by kind of work."""

    requests: int = 0
    batches: int = 0
    native_jobs: int = 0
    generation_jobs: int = 0

    @property
    def total(self) -> int:
        return self.requests + self.batches + self.native_jobs + self.generation_jobs


async def release_dead_workers(
    database: Database, worker_ids: Sequence[str], *, now: float
) -> Released:
    """Release every claim the given (dead) workers held, in one transaction: their leased
    requests go back to pending, their validations and finalizations, native jobs and
    generation jobs are free for the next claimant. A generation job's open run ends
    ``lost``."""
    if not worker_ids:
        return Released()
    dead = list(worker_ids)
    async with database.write() as conn:
        requests = await conn.execute(_RELEASE_ALL, {"workers": dead})
        claimed = await conn.execute(
            update(batches).where(batches.c.claimed_by.in_(dead)).values(claimed_by=None)
        )
        jobs = await conn.execute(
            update(native_jobs)
            .where(native_jobs.c.claimed_by.in_(dead))
            .values(claimed_by=None, claimed_at=None)
        )
        runs = await conn.execute(
            update(generation_jobs)
            .where(generation_jobs.c.runner.in_(dead))
            .values(runner=None, lease_expires_at=None, run_started_at=None, updated_at=now)
        )
        await conn.execute(
            update(generation_runs)
            .where(generation_runs.c.runner.in_(dead), generation_runs.c.ended_at.is_(None))
            .values(ended_at=now, outcome="lost")
        )
    return Released(
        requests=int(requests.rowcount or 0),
        batches=int(claimed.rowcount or 0),
        native_jobs=int(jobs.rowcount or 0),
        generation_jobs=int(runs.rowcount or 0),
    )
