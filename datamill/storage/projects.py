"""Projects: every stored object belongs to one. The default project always exists; more
are made with `create_project` (names are unique)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from datamill.storage.database import Database
from datamill.storage.schema import DEFAULT_PROJECT_ID, projects

# Processes starting together all try to create the default project: the first one wins.
_INSERT = {
    "sqlite": sqlite.insert(projects).on_conflict_do_nothing(),
    "postgresql": postgresql.insert(projects).on_conflict_do_nothing(),
}


class ProjectNameTaken(Exception):
    """Another project already has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    id: str
    name: str
    created_at: float


def _record(row: Row[Any]) -> ProjectRecord:
    return ProjectRecord(id=row.id, name=row.name, created_at=row.created_at)


async def ensure_default_project(database: Database) -> None:
    async with database.read() as conn:
        found = (
            await conn.execute(select(projects.c.id).where(projects.c.id == DEFAULT_PROJECT_ID))
        ).first()
    if found:
        return
    async with database.write() as conn:
        await conn.execute(
            _INSERT[database.dialect].values(
                id=DEFAULT_PROJECT_ID, name="default", created_at=time.time()
            )
        )


async def create_project(database: Database, *, id: str, name: str, now: float) -> ProjectRecord:
    """Raises `ProjectNameTaken` when the name is in use."""
    try:
        async with database.write() as conn:
            await conn.execute(projects.insert().values(id=id, name=name, created_at=now))
    except IntegrityError as error:
        raise ProjectNameTaken(name) from error
    return ProjectRecord(id=id, name=name, created_at=now)


async def list_projects(database: Database) -> list[ProjectRecord]:
    async with database.read() as conn:
        rows = (await conn.execute(select(projects).order_by(projects.c.created_at))).all()
    return [_record(row) for row in rows]


async def get_project(
    database: Database, *, id: str | None = None, name: str | None = None
) -> ProjectRecord | None:
    """The project with this id or this name, if any."""
    query = select(projects)
    if id is not None:
        query = query.where(projects.c.id == id)
    if name is not None:
        query = query.where(projects.c.name == name)
    async with database.read() as conn:
        row = (await conn.execute(query)).first()
    return _record(row) if row is not None else None
