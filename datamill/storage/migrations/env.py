"""Alembic environment. datamill runs it through `datamill.storage.migrate`; developers may also
run `alembic -c datamill/storage/migrations/alembic.ini revision --autogenerate -m "..."` with
DATAMILL_DATABASE_URL (or the default SQLite store) to draft a new revision."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from datamill.storage.schema import metadata
from datamill.storage.search import is_search_object

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # The search index is made by hand per store (storage/search.py), not by metadata.
        include_name=lambda name, type_, _parents: not is_search_object(name, type_),
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_standalone() -> None:
    from datamill.settings import load_settings
    from datamill.storage.database import Database

    async def main() -> None:
        database = Database.open(load_settings().resolved_database_url)
        async with database.engine.connect() as conn:
            await conn.run_sync(_run)
            await conn.commit()
        await database.dispose()

    asyncio.run(main())


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    _run_standalone()
