"""What a batch's results say, for the dashboard: throughput over time and errors by code.

Both read ``results`` of one batch through its ``(batch_id, ok, line)`` index.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Integer, case, cast, false, func, select

from datamill.storage.database import Database
from datamill.storage.schema import results


@dataclass(frozen=True, slots=True)
class TimelineSlot:
    slot: int  # finished_at // bucket
    completed: int
    failed: int


@dataclass(frozen=True, slots=True)
class ErrorGroup:
    code: str | None
    count: int


@dataclass(frozen=True, slots=True)
class ErrorExample:
    line: int
    custom_id: str
    message: str | None


async def finished_span(database: Database, batch_id: str) -> tuple[float, float] | None:
    """When the batch's first and last results were recorded; None without results."""
    query = select(func.min(results.c.finished_at), func.max(results.c.finished_at)).where(
        results.c.batch_id == batch_id
    )
    async with database.read() as conn:
        first, last = (await conn.execute(query)).one()
    return None if first is None else (float(first), float(last))


async def result_timeline(
    database: Database, batch_id: str, *, bucket: float
) -> list[TimelineSlot]:
    """Completed and failed results per ``bucket`` seconds of ``finished_at`` (slots with
    none are left out)."""
    ratio = results.c.finished_at / bucket
    # Whole slots: SQLite's CAST truncates (times are positive), PostgreSQL's rounds.
    slot = cast(ratio, Integer) if database.dialect == "sqlite" else func.floor(ratio)
    query = (
        select(
            slot.label("slot"),
            func.sum(case((results.c.ok, 1), else_=0)).label("completed"),
            func.sum(case((results.c.ok, 0), else_=1)).label("failed"),
        )
        .where(results.c.batch_id == batch_id)
        .group_by(slot)
        .order_by(slot)
    )
    async with database.read() as conn:
        rows = (await conn.execute(query)).all()
    return [TimelineSlot(int(row.slot), int(row.completed), int(row.failed)) for row in rows]


async def error_groups(database: Database, batch_id: str) -> list[ErrorGroup]:
    """The batch's failed results counted by error code, the most frequent first."""
    count = func.count().label("n")
    query = (
        select(results.c.error_code, count)
        .where(results.c.batch_id == batch_id, results.c.ok == false())
        .group_by(results.c.error_code)
        .order_by(count.desc(), results.c.error_code)
    )
    async with database.read() as conn:
        rows = (await conn.execute(query)).all()
    return [ErrorGroup(row.error_code, int(row.n)) for row in rows]


async def error_examples(
    database: Database, batch_id: str, code: str | None, *, limit: int
) -> list[ErrorExample]:
    """The first ``limit`` failed results (in line order) with this error code."""
    matches = results.c.error_code.is_(None) if code is None else results.c.error_code == code
    query = (
        select(results.c.line, results.c.custom_id, results.c.error_message)
        .where(results.c.batch_id == batch_id, results.c.ok == false(), matches)
        .order_by(results.c.line)
        .limit(limit)
    )
    async with database.read() as conn:
        rows = (await conn.execute(query)).all()
    return [ErrorExample(row.line, row.custom_id, row.error_message) for row in rows]
