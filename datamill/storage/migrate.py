"""Schema migrations (Alembic), run by `datamill migrate` and on `serve` start."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_mock_engine, inspect, text
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.util import await_only

if TYPE_CHECKING:
    from alembic.config import Config

from datamill.storage.database import Database
from datamill.storage.schema import POSTGRES_BLOB_COMPRESSION, metadata
from datamill.storage.search import POSTGRES_SEARCH_DDL, create_search_objects

_MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant: serialises concurrent `migrate` runs (a server and workers starting together).
_PG_LOCK_KEY = 7_263_511_901


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config(str(_MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(_MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision as Alembic reads it from migrations/versions."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


# The newest revision in migrations/versions; a test checks it against Alembic's own view.
# Knowing it without Alembic lets every start skip Alembic (~0.15 s) when nothing is due.
SCHEMA_HEAD = "0018"


async def upgrade(database: Database) -> None:
    """Bring the store to the newest schema; safe to run from several processes at once.

    An empty store gets the newest schema at once, from `schema.metadata` (a test checks it
    is what the migrations build), and is stamped at its revision: Alembic's own advice for
    new databases, and a first start without Alembic's import (~0.1 s)."""
    if await current_revision(database) == SCHEMA_HEAD:
        await _ensure_default_project(database)
        return
    async with database.write() as conn:
        if database.dialect == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        await conn.run_sync(_upgrade)
    await _ensure_default_project(database)


def _upgrade(sync: Connection) -> None:
    # Decided under the write lock: a racing process may have just created the schema.
    if inspect(sync).get_table_names():
        run_migrations(sync)
    else:
        create_at_head(sync)


_STAMP = [
    "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
    "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))",
    f"INSERT INTO alembic_version (version_num) VALUES ('{SCHEMA_HEAD}')",
]


def create_at_head(sync: Connection) -> None:
    """Create the newest schema in an empty store and stamp it, as Alembic would.

    On PostgreSQL the whole script goes in one round trip (the simple query protocol runs
    several statements): statement by statement, a first `batch run` on a fresh store spent
    0.2-0.5 s of its start-up creating the schema."""
    if sync.dialect.name == "postgresql":
        script = [*schema_ddl(sync.dialect), *POSTGRES_SEARCH_DDL, POSTGRES_BLOB_COMPRESSION]
        driver = sync.connection.driver_connection
        assert driver is not None
        await_only(driver.execute(";\n".join([*script, *_STAMP])))
        return
    metadata.create_all(sync, checkfirst=False)  # the store is empty: nothing to look for
    create_search_objects(sync)
    for statement in _STAMP:
        sync.exec_driver_sql(statement)


def schema_ddl(dialect: Dialect) -> list[str]:
    """The statements `metadata.create_all` sends to an empty store, as text."""
    statements: list[str] = []

    def collect(sql: Any, *_args: Any, **_kwargs: Any) -> None:
        statements.append(str(sql.compile(dialect=dialect)).strip())

    metadata.create_all(create_mock_engine(f"{dialect.name}://", collect), checkfirst=False)
    return statements


def run_migrations(sync: Connection) -> None:
    """The migrations the store has not had yet, through Alembic."""
    from alembic import command

    command.upgrade(_config(sync), "head")


async def current_revision(database: Database) -> str | None:
    """The store's schema revision; None for an empty store."""
    async with database.read() as conn:
        exists = await conn.run_sync(lambda sync: sync.dialect.has_table(sync, "alembic_version"))
        if not exists:
            return None
        revision = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        return str(revision) if revision is not None else None


async def _ensure_default_project(database: Database) -> None:
    from datamill.storage.projects import ensure_default_project

    await ensure_default_project(database)
