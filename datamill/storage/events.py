"""The events repository: the server's event stream, stored in order, read back by id.

Guarantee: an event becomes visible only after every event with a lower id (or that id is
never used). Readers can then follow the stream with ``id > last seen`` alone and never skip
one. SQLite has one writer, so ids are handed out in commit order; on PostgreSQL concurrent
transactions could commit out of id order, so every write takes one transaction-level
advisory lock first: the next writer's ids are drawn only after the previous writer's are
visible. Writes are a few per second (events are coalesced), so the lock costs nothing.

On PostgreSQL each write also sends ``NOTIFY datamill_events`` (delivered on commit), which
`EventListener` turns into a wakeup in other processes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select, text

from datamill.storage.database import Database
from datamill.storage.records import BatchRecord, from_row
from datamill.storage.schema import batches, events

log = logging.getLogger("datamill.storage")

NOTIFY_CHANNEL = "datamill_events"
# Any constant but migrate's: serialises event writes on PostgreSQL (see the module docstring).
_PG_EVENTS_LOCK = 7_263_511_902
_PRUNE_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to store: its JSON ``payload`` is kept as given."""

    topic: str
    payload: str
    batch_id: str | None = None
    # Whose it is; None with a batch_id: that batch's project; None without: every project's.
    project_id: str | None = None


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    topic: str
    batch_id: str | None
    payload: str
    created_at: float
    project_id: str | None = None


# Renders a batch, read inside the event write, into its event's payload.
BatchRenderer = Callable[[BatchRecord], str]

_BATCHES_BY_ID = select(batches).where(batches.c.id.in_(bindparam("ids", expanding=True)))
_PROJECTS_BY_BATCH = select(batches.c.id, batches.c.project_id).where(
    batches.c.id.in_(bindparam("ids", expanding=True))
)


async def write_events(
    database: Database,
    new: Sequence[NewEvent],
    *,
    batch_ids: Sequence[str] = (),
    render_batch: BatchRenderer | None = None,
    now: float,
) -> int:
    """Append ``new``, then one ``batch`` event per id of ``batch_ids`` rendered from the
    batch row as read inside this write; return how many events were written.

    Reading the batches under the write's lock orders their events as the reads: a later
    event of a batch never shows an older state of it, whichever process writes it."""
    async with database.write(relaxed=True) as conn:
        if database.dialect == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_EVENTS_LOCK})
        unowned = sorted({e.batch_id for e in new if e.batch_id and e.project_id is None})
        owners: dict[str, str] = {}
        if unowned:
            found_owners = await conn.execute(_PROJECTS_BY_BATCH, {"ids": unowned})
            owners = {row.id: row.project_id for row in found_owners}
        rows = [
            {
                "topic": e.topic,
                "batch_id": e.batch_id,
                "project_id": e.project_id or (owners.get(e.batch_id) if e.batch_id else None),
                "payload": e.payload,
                "created_at": now,
            }
            for e in new
        ]
        if batch_ids and render_batch is not None:
            found = (await conn.execute(_BATCHES_BY_ID, {"ids": list(batch_ids)})).all()
            by_id = {row.id: from_row(BatchRecord, row) for row in found}
            rows += [
                {
                    "topic": "batch",
                    "batch_id": batch_id,
                    "project_id": by_id[batch_id].project_id,
                    "payload": render_batch(by_id[batch_id]),
                    "created_at": now,
                }
                for batch_id in batch_ids
                if batch_id in by_id
            ]
        if not rows:
            return 0
        await conn.execute(events.insert(), rows)
        if database.dialect == "postgresql":
            await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
    return len(rows)


async def read_events(
    database: Database,
    *,
    after: int,
    upto: int | None = None,
    topics: Sequence[str] | None = None,
    batch_ids: Sequence[str] | None = None,
    project_id: str | None = None,
    limit: int = 500,
) -> list[EventRow]:
    """Events with ``after < id <= upto`` (no upper bound without ``upto``), in id order,
    of the given topics and batches only (all without them), and with ``project_id`` only
    that project's and the shared ones."""
    query = select(events).where(events.c.id > after)
    if upto is not None:
        query = query.where(events.c.id <= upto)
    if topics:
        query = query.where(events.c.topic.in_(list(topics)))
    if batch_ids:
        query = query.where(events.c.batch_id.in_(list(batch_ids)))
    if project_id is not None:
        query = query.where(or_(events.c.project_id.is_(None), events.c.project_id == project_id))
    async with database.read() as conn:
        rows = (await conn.execute(query.order_by(events.c.id).limit(limit))).all()
    return [from_row(EventRow, row) for row in rows]


async def event_bounds(database: Database) -> tuple[int, int] | None:
    """The lowest and highest ids kept; None when there is no event."""
    async with database.read() as conn:
        row = (await conn.execute(select(func.min(events.c.id), func.max(events.c.id)))).one()
    if row[0] is None:
        return None
    return int(row[0]), int(row[1])


async def last_event_id(database: Database) -> int:
    """The highest id kept (0 when there is none)."""
    async with database.read() as conn:
        value = await conn.scalar(select(func.max(events.c.id)))
    return int(value or 0)


async def recent_events(database: Database, *, topic: str, since: float) -> list[EventRow]:
    """The events of ``topic`` written at or after ``since``, oldest first."""
    query = (
        select(events)
        .where(events.c.created_at >= since, events.c.topic == topic)
        .order_by(events.c.id)
    )
    async with database.read() as conn:
        rows = (await conn.execute(query)).all()
    return [from_row(EventRow, row) for row in rows]


async def prune_events(database: Database, *, before: float) -> int:
    """Delete events written before ``before``, in chunks, always keeping the newest one:
    it tells a resuming client which ids were pruned (see `event_bounds`)."""
    deleted = 0
    while True:
        async with database.write() as conn:
            newest = await conn.scalar(select(func.max(events.c.id)))
            if newest is None:
                return deleted
            doomed = (
                select(events.c.id)
                .where(events.c.created_at < before, events.c.id < newest)
                .order_by(events.c.id)
                .limit(_PRUNE_CHUNK)
                .scalar_subquery()
            )
            result = await conn.execute(delete(events).where(events.c.id.in_(doomed)))
        deleted += result.rowcount
        if result.rowcount < _PRUNE_CHUNK:
            return deleted


class EventListener:
    """A PostgreSQL connection listening on `NOTIFY_CHANNEL`: each notification calls
    ``on_event``; losing the connection calls ``on_lost`` (the caller polls meanwhile and
    opens a new listener)."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    @classmethod
    async def open(
        cls, database: Database, *, on_event: Callable[[], None], on_lost: Callable[[], None]
    ) -> EventListener:
        import asyncpg  # type: ignore[import-untyped]

        url = database.engine.url.set(drivername="postgresql")
        connection = await asyncpg.connect(url.render_as_string(hide_password=False))
        connection.add_termination_listener(lambda _conn: on_lost())
        await connection.add_listener(NOTIFY_CHANNEL, lambda *_args: on_event())
        return cls(connection)

    @property
    def closed(self) -> bool:
        return bool(self._connection.is_closed())

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._connection.close(), timeout=5)
        except Exception:
            self._connection.terminate()
