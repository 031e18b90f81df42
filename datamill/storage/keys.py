"""The API keys repository: who may call, as stored. Only a key's SHA-256 is kept.

Every function runs in a transaction of its own. `find_key` is the one read on the
request path (a unique index on ``sha256``); `touch_key` records use at most as often as
its caller asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from datamill.storage.database import Database
from datamill.storage.schema import api_keys, batches, gateway_calls, projects


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    project_id: str
    project_name: str
    role: str
    name: str | None
    prefix: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None
    requests_per_minute: int | None
    spend_per_day: float | None


@dataclass(frozen=True, slots=True)
class NewKey:
    """What `create_key` stores: everything but the key itself, which only its maker sees."""

    id: str
    project_id: str
    role: str
    name: str | None
    prefix: str
    sha256: str
    created_at: float
    expires_at: float | None
    requests_per_minute: int | None
    spend_per_day: float | None


_COLUMNS = (
    api_keys.c.id,
    api_keys.c.project_id,
    projects.c.name.label("project_name"),
    api_keys.c.role,
    api_keys.c.name,
    api_keys.c.prefix,
    api_keys.c.created_at,
    api_keys.c.expires_at,
    api_keys.c.revoked_at,
    api_keys.c.last_used_at,
    api_keys.c.requests_per_minute,
    api_keys.c.spend_per_day,
)
_SELECT = select(*_COLUMNS).select_from(
    api_keys.join(projects, projects.c.id == api_keys.c.project_id)
)


def _record(row: Row[Any] | Any) -> KeyRecord:
    return KeyRecord(**row._mapping)


class KeyTaken(Exception):
    """A key with this hash is stored already."""


async def create_key(database: Database, key: NewKey) -> KeyRecord:
    """Store a key; `KeyTaken` when its hash is (two servers bootstrapping the same key)."""
    try:
        async with database.write() as conn:
            await conn.execute(api_keys.insert().values(**_values(key)))
            row = (await conn.execute(_SELECT.where(api_keys.c.id == key.id))).one()
    except IntegrityError:
        raise KeyTaken(key.prefix) from None
    return _record(row)


def _values(key: NewKey) -> dict[str, Any]:
    return {name: getattr(key, name) for name in NewKey.__dataclass_fields__}


async def find_key(database: Database, sha256: str) -> KeyRecord | None:
    """The key with this hash, revoked or expired ones included (the caller decides)."""
    async with database.read() as conn:
        row = (await conn.execute(_SELECT.where(api_keys.c.sha256 == sha256))).first()
    return _record(row) if row is not None else None


async def get_key(database: Database, key_id: str) -> KeyRecord | None:
    async with database.read() as conn:
        row = (await conn.execute(_SELECT.where(api_keys.c.id == key_id))).first()
    return _record(row) if row is not None else None


async def list_keys(database: Database, *, project_id: str | None = None) -> list[KeyRecord]:
    """Every key (of one project, if given), oldest first."""
    query = _SELECT.order_by(api_keys.c.created_at, api_keys.c.id)
    if project_id is not None:
        query = query.where(api_keys.c.project_id == project_id)
    async with database.read() as conn:
        rows = (await conn.execute(query)).all()
    return [_record(row) for row in rows]


async def any_keys(database: Database) -> bool:
    """Whether any key was ever created (revoked ones count: revoking every key does not
    open the server again)."""
    async with database.read() as conn:
        return (await conn.execute(select(api_keys.c.id).limit(1))).first() is not None


async def revoke_key(database: Database, key_id: str, *, now: float) -> KeyRecord | None:
    """Revoke a key (a second revoke keeps the first time). None if there is no such key."""
    async with database.write() as conn:
        await conn.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        row = (await conn.execute(_SELECT.where(api_keys.c.id == key_id))).first()
    return _record(row) if row is not None else None


async def touch_key(database: Database, key_id: str, *, now: float) -> None:
    """Record that the key was used (bookkeeping: a relaxed write)."""
    async with database.write(relaxed=True) as conn:
        await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now))


async def key_spend(database: Database, key_id: str, *, since: float) -> tuple[float, float | None]:
    """USD a key spent since then (its gateway calls and the batches it created), and when
    the oldest of that spending happened (None if none)."""
    parts = []
    for table in (gateway_calls, batches):
        parts.append(
            select(func.coalesce(func.sum(table.c.cost), 0.0), func.min(table.c.created_at)).where(
                table.c.key_id == key_id, table.c.created_at >= since, table.c.cost > 0
            )
        )
    async with database.read() as conn:
        rows = [(await conn.execute(part)).one() for part in parts]
    spent = sum(float(row[0] or 0.0) for row in rows)
    starts = [float(row[1]) for row in rows if row[1] is not None]
    return spent, min(starts) if starts else None
