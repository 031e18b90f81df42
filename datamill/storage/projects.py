"""Projects: every stored object belongs to one. One default project until API keys arrive."""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from datamill.storage.database import Database
from datamill.storage.schema import DEFAULT_PROJECT_ID, projects

# Processes starting together all try to create the default project: the first one wins.
_INSERT = {
    "sqlite": sqlite.insert(projects).on_conflict_do_nothing(index_elements=["id"]),
    "postgresql": postgresql.insert(projects).on_conflict_do_nothing(index_elements=["id"]),
}


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
