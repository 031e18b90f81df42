"""The task schemas repository: a project's schemas by name, every version kept.

A schema is one row per version. Creating one writes version 1 (or, for a name whose schema
was deleted, the version after the highest it had: a version number is never reused); an
update writes the next version; deleting marks every version deleted. Only live versions
are read. Every public function runs in a transaction of its own; two writers racing for
one version number leave one winner and `TaskSchemaRace` for the other.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from datamill.storage.database import Database
from datamill.storage.schema import task_schemas


class TaskSchemaExists(Exception):
    """A live schema of the project already has this name."""


class TaskSchemaRace(Exception):
    """Another writer stored the same version of this schema first."""


@dataclass(frozen=True, slots=True)
class TaskSchemaRecord:
    project_id: str
    name: str
    version: int
    definition: dict[str, Any]
    created_at: float
    created_by: str | None
    deleted_at: float | None


def _record(row: Row[Any]) -> TaskSchemaRecord:
    return TaskSchemaRecord(
        project_id=row.project_id,
        name=row.name,
        version=row.version,
        definition=row.definition,
        created_at=row.created_at,
        created_by=row.created_by,
        deleted_at=row.deleted_at,
    )


def _live(project_id: str) -> list[Any]:
    return [task_schemas.c.project_id == project_id, task_schemas.c.deleted_at.is_(None)]


async def add_version(
    database: Database,
    *,
    project_id: str,
    name: str,
    definition: dict[str, Any],
    created_by: str | None,
    now: float,
    create: bool,
) -> TaskSchemaRecord | None:
    """Store the next version of ``name``. ``create``: the name must have no live schema
    (else `TaskSchemaExists`); otherwise it must have one (else None, nothing stored)."""
    the_name = task_schemas.c.name == name
    async with database.write() as conn:
        live = await conn.scalar(select(func.count()).where(*_live(project_id), the_name))
        if create and live:
            raise TaskSchemaExists(name)
        if not create and not live:
            return None
        highest = await conn.scalar(
            select(func.max(task_schemas.c.version)).where(
                task_schemas.c.project_id == project_id, the_name
            )
        )
        statement = (
            insert(task_schemas)
            .values(
                project_id=project_id,
                name=name,
                version=(highest or 0) + 1,
                definition=definition,
                created_at=now,
                created_by=created_by,
            )
            .returning(*task_schemas.c)
        )
        try:
            # A savepoint: on PostgreSQL a failed statement would end the transaction.
            async with conn.begin_nested():
                row = (await conn.execute(statement)).one()
        except IntegrityError:
            raise TaskSchemaRace(name) from None
    return _record(row)


async def get_schema(
    database: Database, *, project_id: str, name: str, version: int | None = None
) -> TaskSchemaRecord | None:
    """A live schema's latest version (or the live ``version``); None when there is none."""
    query = select(task_schemas).where(*_live(project_id), task_schemas.c.name == name)
    if version is not None:
        query = query.where(task_schemas.c.version == version)
    query = query.order_by(task_schemas.c.version.desc()).limit(1)
    async with database.read() as conn:
        row = (await conn.execute(query)).first()
    return _record(row) if row else None


async def list_versions(
    database: Database, *, project_id: str, name: str
) -> list[TaskSchemaRecord]:
    """A live schema's versions, oldest first (empty: no such schema)."""
    query = (
        select(task_schemas)
        .where(*_live(project_id), task_schemas.c.name == name)
        .order_by(task_schemas.c.version)
    )
    async with database.read() as conn:
        return [_record(row) for row in (await conn.execute(query)).all()]


async def latest_schemas(
    database: Database, *, project_id: str, names: Collection[str] | None = None
) -> list[TaskSchemaRecord]:
    """The latest version of each live schema of the project (of ``names`` only, when
    given), by name."""
    conditions = _live(project_id)
    if names is not None:
        if not names:
            return []
        conditions.append(task_schemas.c.name.in_(sorted(names)))
    newest = (
        select(task_schemas.c.name, func.max(task_schemas.c.version).label("version"))
        .where(*conditions)
        .group_by(task_schemas.c.name)
        .subquery()
    )
    query = (
        select(task_schemas)
        .join(
            newest,
            (task_schemas.c.name == newest.c.name) & (task_schemas.c.version == newest.c.version),
        )
        .where(task_schemas.c.project_id == project_id)
        .order_by(task_schemas.c.name)
    )
    async with database.read() as conn:
        return [_record(row) for row in (await conn.execute(query)).all()]


async def delete_schema(database: Database, *, project_id: str, name: str, now: float) -> bool:
    """Mark every version of a live schema deleted; False when there is none."""
    async with database.write() as conn:
        result = await conn.execute(
            update(task_schemas)
            .where(*_live(project_id), task_schemas.c.name == name)
            .values(deleted_at=now)
        )
    return bool(result.rowcount)
