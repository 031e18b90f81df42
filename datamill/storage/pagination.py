"""Cursor pagination as OpenAI does it: ``after`` is the id of the last object seen."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, Table, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from datamill.errors import InvalidRequest


async def _fetch_page(
    conn: AsyncConnection,
    table: Table,
    *,
    where: list[ColumnElement[bool]],
    after: str | None,
    limit: int,
    order: Literal["asc", "desc"],
) -> tuple[list[Row[Any]], bool]:
    """One page of ``table`` rows (ordered by ``seq``) and whether more follow."""
    query: Select[Any] = select(table).where(*where)
    if after is not None:
        cursor = await conn.scalar(select(table.c.seq).where(table.c.id == after, *where))
        if cursor is None:
            raise InvalidRequest(f"No object with id {after!r} to page after", param="after")
        query = query.where(table.c.seq < cursor if order == "desc" else table.c.seq > cursor)
    query = query.order_by(table.c.seq.desc() if order == "desc" else table.c.seq.asc())
    rows = list((await conn.execute(query.limit(limit + 1))).all())
    return rows[:limit], len(rows) > limit
