"""Deleting old rows a bounded chunk at a time, for the retention settings.

Each chunk is its own short write transaction, so a sweep freeing a million rows never holds
SQLite's one write lock (or PostgreSQL row locks) for long: the engine's writes interleave
between chunks. A pass stops after ``max_rows`` and says whether rows were left, so one sweep
is never a long one either; the next pass goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Table, delete, select

from datamill.storage.database import Database

CHUNK_ROWS = 500  # rows per transaction


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one pass deleted, and whether it stopped at its bound with rows left."""

    rows: int
    more: bool


async def prune_before(
    database: Database,
    table: Table,
    *,
    key: Column[Any],
    stamp: Column[Any],
    before: float,
    max_rows: int,
    chunk: int = CHUNK_ROWS,
) -> Pruned:
    """Delete the rows of ``table`` whose ``stamp`` (an indexed column) is before ``before``,
    oldest first, ``chunk`` rows per transaction and at most about ``max_rows`` in all."""
    deleted = 0
    while deleted < max_rows:
        doomed = select(key).where(stamp < before).order_by(stamp).limit(chunk).scalar_subquery()
        async with database.write() as conn:
            result = await conn.execute(delete(table).where(key.in_(doomed)))
        count = int(result.rowcount or 0)
        deleted += count
        if count < chunk:
            return Pruned(deleted, more=False)
    return Pruned(deleted, more=True)
