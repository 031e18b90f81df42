"""Schema migrations (Alembic), run by `datamill migrate` and on `serve` start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from datamill.storage.database import Database

_MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant: serialises concurrent `migrate` runs (a server and workers starting together).
_PG_LOCK_KEY = 7_263_511_901


def _config(connection: Connection | None = None) -> Config:
    config = Config(str(_MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(_MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


async def upgrade(database: Database) -> None:
    """Bring the store to the newest schema; safe to run from several processes at once."""
    async with database.write() as conn:
        if database.dialect == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        await conn.run_sync(lambda sync: command.upgrade(_config(sync), "head"))
    await _ensure_default_project(database)


async def current_revision(database: Database) -> str | None:
    async with database.read() as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


async def _ensure_default_project(database: Database) -> None:
    from datamill.storage.projects import ensure_default_project

    await ensure_default_project(database)
