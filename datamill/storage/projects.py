"""Projects: every stored object belongs to one. One default project until API keys arrive."""

from __future__ import annotations

import time

from sqlalchemy import select

from datamill.storage.database import Database
from datamill.storage.schema import DEFAULT_PROJECT_ID, projects


async def ensure_default_project(database: Database) -> None:
    async with database.read() as conn:
        found = (
            await conn.execute(select(projects.c.id).where(projects.c.id == DEFAULT_PROJECT_ID))
        ).first()
    if found:
        return
    async with database.write() as conn:
        again = (
            await conn.execute(select(projects.c.id).where(projects.c.id == DEFAULT_PROJECT_ID))
        ).first()
        if not again:
            await conn.execute(
                projects.insert().values(
                    id=DEFAULT_PROJECT_ID, name="default", created_at=time.time()
                )
            )
