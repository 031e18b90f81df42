"""The webhooks repository: endpoints per project, their deliveries, the producer's cursor.

Every function runs in a transaction of its own. `produce_deliveries` reads the events
after the stored cursor, inserts the deliveries a plan makes of them and advances the
cursor, all in one transaction; the cursor moves only from the value read (a conditional
update), and a delivery's ``(endpoint_id, event_key)`` is unique, so two processes tailing
at once never enqueue a message twice. `claim_deliveries` takes due deliveries with one
claim statement (`leasing.claim_rows`); the claim pushes ``next_attempt_at`` a lease ahead,
so a delivery whose sender died is simply due again then (at least once, as webhooks are).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from datamill.storage.database import Database, upsert_insert
from datamill.storage.events import EventRow
from datamill.storage.leasing import claim_rows
from datamill.storage.pruning import Pruned, prune_before
from datamill.storage.records import from_row
from datamill.storage.schema import events, webhook_cursor, webhook_deliveries, webhook_endpoints

_CURSOR = "events"


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    id: str
    project_id: str
    url: str
    description: str | None
    secret: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    id: str
    endpoint_id: str
    project_id: str
    event_type: str
    event_key: str
    payload: str
    status: str
    attempts: int
    next_attempt_at: float | None
    last_status_code: int | None
    last_error: str | None
    created_at: float
    delivered_at: float | None


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A message for one endpoint; ``event_key`` names what it reports, once per endpoint."""

    id: str
    endpoint_id: str
    project_id: str
    event_type: str
    event_key: str
    payload: str


@dataclass(frozen=True, slots=True)
class Produced:
    """What one `produce_deliveries` did: events read, deliveries enqueued, the cursor
    before and after, and the lowest event id kept (to tell pruned events)."""

    events: int
    enqueued: int
    cursor: int
    advanced_to: int
    lowest_kept: int | None


# Makes the deliveries of some events for the enabled endpoints of their projects.
Plan = Callable[[Sequence[EventRow], Sequence[EndpointRecord]], list[NewDelivery]]

_ENDPOINTS = select(webhook_endpoints)


def _endpoint(row: Any) -> EndpointRecord:
    values = {name: getattr(row, name) for name in EndpointRecord.__dataclass_fields__}
    values["event_types"] = list(values["event_types"] or [])
    values["enabled"] = bool(values["enabled"])
    return EndpointRecord(**values)


# -- endpoints --------------------------------------------------------------------------------


async def create_endpoint(database: Database, endpoint: EndpointRecord) -> EndpointRecord:
    values = {name: getattr(endpoint, name) for name in EndpointRecord.__dataclass_fields__}
    async with database.write() as conn:
        await conn.execute(webhook_endpoints.insert().values(**values))
    return endpoint


async def get_endpoint(
    database: Database, endpoint_id: str, *, project_id: str
) -> EndpointRecord | None:
    query = _ENDPOINTS.where(
        webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.project_id == project_id
    )
    async with database.read() as conn:
        row = (await conn.execute(query)).first()
    return None if row is None else _endpoint(row)


async def any_enabled_endpoint(database: Database) -> bool:
    """Whether some project has an enabled endpoint (a read: the side task's idle check)."""
    query = select(webhook_endpoints.c.id).where(webhook_endpoints.c.enabled.is_(True)).limit(1)
    async with database.read() as conn:
        return (await conn.execute(query)).first() is not None


async def list_endpoints(database: Database, *, project_id: str) -> list[EndpointRecord]:
    query = _ENDPOINTS.where(webhook_endpoints.c.project_id == project_id).order_by(
        webhook_endpoints.c.seq
    )
    async with database.read() as conn:
        rows = (await conn.execute(query)).all()
    return [_endpoint(row) for row in rows]


async def update_endpoint(
    database: Database, endpoint_id: str, *, project_id: str, changes: dict[str, Any], now: float
) -> EndpointRecord | None:
    """Apply ``changes`` (column -> value) to the project's endpoint; None if unknown."""
    statement = (
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.project_id == project_id)
        .values(**changes, updated_at=now)
        .returning(*webhook_endpoints.c)
    )
    async with database.write() as conn:
        row = (await conn.execute(statement)).first()
    return None if row is None else _endpoint(row)


async def delete_endpoint(database: Database, endpoint_id: str, *, project_id: str) -> bool:
    """Delete the project's endpoint and its delivery log; False if unknown."""
    async with database.write() as conn:
        found = await conn.scalar(
            select(webhook_endpoints.c.id).where(
                webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.project_id == project_id
            )
        )
        if found is None:
            return False
        await conn.execute(
            webhook_deliveries.delete().where(webhook_deliveries.c.endpoint_id == endpoint_id)
        )
        await conn.execute(webhook_endpoints.delete().where(webhook_endpoints.c.id == endpoint_id))
    return True


# -- producing --------------------------------------------------------------------------------


async def produce_deliveries(
    database: Database, plan: Plan, *, now: float, limit: int = 500, start_at: int | None = None
) -> Produced:
    """Read up to ``limit`` events after the cursor, insert the deliveries ``plan`` makes of
    them (due ``now``, once per endpoint and event key) and advance the cursor: one
    transaction. A
    cursor not stored yet starts at ``start_at`` (None: 0, every event kept)."""
    async with database.write() as conn:
        cursor = await _cursor(conn, start_at)
        rows = (
            await conn.execute(
                select(events).where(events.c.id > cursor).order_by(events.c.id).limit(limit)
            )
        ).all()
        lowest = await conn.scalar(select(func.min(events.c.id)))
        if not rows:
            return Produced(0, 0, cursor, cursor, lowest)
        read = [from_row(EventRow, row) for row in rows]
        projects = sorted({e.project_id for e in read if e.project_id is not None})
        endpoints = [
            _endpoint(row)
            for row in (
                await conn.execute(
                    _ENDPOINTS.where(
                        webhook_endpoints.c.project_id.in_(projects),
                        webhook_endpoints.c.enabled.is_(True),
                    )
                )
            ).all()
        ]
        new = plan(read, endpoints) if endpoints else []
        enqueued = await _insert_deliveries(conn, new, now=now)
        moved = await conn.execute(
            update(webhook_cursor)
            .where(webhook_cursor.c.name == _CURSOR, webhook_cursor.c.event_id == cursor)
            .values(event_id=read[-1].id)
        )
        if moved.rowcount != 1:
            # Another process advanced it meanwhile: this transaction is rolled back.
            raise _CursorMoved
    return Produced(len(read), enqueued, cursor, read[-1].id, lowest)


class _CursorMoved(Exception):
    pass


async def produce(database: Database, plan: Plan, **options: Any) -> Produced | None:
    """`produce_deliveries`, or None when another process moved the cursor first."""
    try:
        return await produce_deliveries(database, plan, **options)
    except _CursorMoved:
        return None


async def _cursor(conn: AsyncConnection, start_at: int | None) -> int:
    value = await conn.scalar(
        select(webhook_cursor.c.event_id).where(webhook_cursor.c.name == _CURSOR)
    )
    if value is not None:
        return int(value)
    insert = upsert_insert(conn.dialect.name)
    start = start_at or 0
    await conn.execute(
        insert(webhook_cursor).values(name=_CURSOR, event_id=start).on_conflict_do_nothing()
    )
    value = await conn.scalar(
        select(webhook_cursor.c.event_id).where(webhook_cursor.c.name == _CURSOR)
    )
    return int(value if value is not None else start)


async def _insert_deliveries(
    conn: AsyncConnection, new: Sequence[NewDelivery], *, now: float
) -> int:
    if not new:
        return 0
    insert = upsert_insert(conn.dialect.name)
    rows = [
        {
            "id": d.id,
            "endpoint_id": d.endpoint_id,
            "project_id": d.project_id,
            "event_type": d.event_type,
            "event_key": d.event_key,
            "payload": d.payload,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for d in new
    ]
    inserted = 0
    for row in rows:
        result = await conn.execute(
            insert(webhook_deliveries).values(**row).on_conflict_do_nothing()
        )
        inserted += int(result.rowcount or 0)
    return inserted


async def enqueue_delivery(database: Database, delivery: NewDelivery, *, now: float) -> bool:
    """Insert one delivery, due now (a test ping); False if its event key was enqueued."""
    async with database.write() as conn:
        return await _insert_deliveries(conn, [delivery], now=now) == 1


# -- delivering -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    delivery: DeliveryRecord
    endpoint: EndpointRecord


async def claim_deliveries(
    database: Database, *, now: float, lease: float, limit: int
) -> list[ClaimedDelivery]:
    """Take up to ``limit`` due deliveries of enabled endpoints: each one's attempt count
    goes up and it is not due again for ``lease`` seconds (unless recorded meanwhile)."""
    d = webhook_deliveries
    due = [d.c.status == "pending", d.c.next_attempt_at <= now]
    enabled = exists().where(
        webhook_endpoints.c.id == d.c.endpoint_id, webhook_endpoints.c.enabled.is_(True)
    )
    async with database.write() as conn:
        candidates = select(d.c.id).where(*due, enabled).order_by(d.c.next_attempt_at).limit(limit)
        statement = claim_rows(
            conn.dialect.name,
            d,
            candidates=candidates,
            still=due,
            values={"attempts": d.c.attempts + 1, "next_attempt_at": now + lease},
        )
        claimed = [from_row(DeliveryRecord, row) for row in (await conn.execute(statement)).all()]
        if not claimed:
            return []
        ids = sorted({c.endpoint_id for c in claimed})
        found = (await conn.execute(_ENDPOINTS.where(webhook_endpoints.c.id.in_(ids)))).all()
    by_id = {row.id: _endpoint(row) for row in found}
    return [ClaimedDelivery(c, by_id[c.endpoint_id]) for c in claimed if c.endpoint_id in by_id]


async def record_attempt(
    database: Database,
    delivery: DeliveryRecord,
    *,
    status: str,
    status_code: int | None,
    error: str | None,
    next_attempt_at: float | None,
    now: float,
    disable_endpoint: str | None = None,
) -> bool:
    """Record the outcome of the claimed attempt ``delivery`` (its ``attempts`` as
    claimed): ``status`` delivered, pending (again at ``next_attempt_at``) or failed.
    ``disable_endpoint``: the reason its endpoint is disabled, in the same transaction.
    False if the delivery changed meanwhile (replayed, or claimed again after its lease)."""
    d = webhook_deliveries
    async with database.write() as conn:
        result = await conn.execute(
            update(d)
            .where(d.c.id == delivery.id, d.c.attempts == delivery.attempts)
            .values(
                status=status,
                last_status_code=status_code,
                last_error=error,
                next_attempt_at=next_attempt_at,
                delivered_at=now if status == "delivered" else d.c.delivered_at,
            )
        )
        if disable_endpoint is not None:
            await conn.execute(
                update(webhook_endpoints)
                .where(webhook_endpoints.c.id == delivery.endpoint_id)
                .values(enabled=False, disabled_reason=disable_endpoint, updated_at=now)
            )
    return bool(result.rowcount)


# -- the delivery log -------------------------------------------------------------------------


async def list_deliveries(
    database: Database, endpoint_id: str, *, limit: int, after: str | None = None
) -> tuple[list[DeliveryRecord], bool]:
    """The endpoint's deliveries, newest first, after the delivery ``after``; and whether
    there are more."""
    d = webhook_deliveries
    query = select(d).where(d.c.endpoint_id == endpoint_id)
    if after is not None:
        query = query.where(d.c.seq < select(d.c.seq).where(d.c.id == after).scalar_subquery())
    async with database.read() as conn:
        rows = (await conn.execute(query.order_by(d.c.seq.desc()).limit(limit + 1))).all()
    found = [from_row(DeliveryRecord, row) for row in rows]
    return found[:limit], len(found) > limit


async def get_delivery(
    database: Database, delivery_id: str, *, endpoint_id: str
) -> DeliveryRecord | None:
    d = webhook_deliveries
    query = select(d).where(d.c.id == delivery_id, d.c.endpoint_id == endpoint_id)
    async with database.read() as conn:
        row = (await conn.execute(query)).first()
    return None if row is None else from_row(DeliveryRecord, row)


async def replay_delivery(
    database: Database, delivery_id: str, *, endpoint_id: str, now: float
) -> DeliveryRecord | None:
    """Make the delivery due now with a fresh retry schedule (same id, same payload)."""
    d = webhook_deliveries
    statement = (
        update(d)
        .where(d.c.id == delivery_id, d.c.endpoint_id == endpoint_id)
        .values(status="pending", attempts=0, next_attempt_at=now)
        .returning(*d.c)
    )
    async with database.write() as conn:
        row = (await conn.execute(statement)).first()
    return None if row is None else from_row(DeliveryRecord, row)


async def prune_deliveries(database: Database, *, before: float, max_rows: int) -> Pruned:
    """Delete deliveries created before ``before`` from the log, whatever their status."""
    return await prune_before(
        database,
        webhook_deliveries,
        key=webhook_deliveries.c.id,
        stamp=webhook_deliveries.c.created_at,
        before=before,
        max_rows=max_rows,
    )
