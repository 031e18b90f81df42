"""The store's connections: relaxed commits on PostgreSQL, only where asked; SQLite in WAL mode
however many connections open a new store at once."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from collections.abc import Iterator

import asyncpg
import pytest

from datamill.storage.database import Database
from tests.conftest import fresh_postgres_database


@pytest.fixture
def synchronous_database(postgres_server) -> Iterator[str]:
    """A database whose default is ``synchronous_commit = on``, as on a production server
    (the test server runs with it off)."""
    url, drop = fresh_postgres_database(postgres_server, migrated=False)
    name = url.rsplit("/", 1)[1]

    async def configure() -> None:
        conn = await asyncpg.connect(host="127.0.0.1", port=postgres_server.port, user="postgres")
        try:
            await conn.execute(f"ALTER DATABASE {name} SET synchronous_commit = on")
        finally:
            await conn.close()

    asyncio.run(configure())
    try:
        yield url
    finally:
        drop()


async def _synchronous_commit(database: Database, *, relaxed: bool) -> str:
    async with database.write(relaxed=relaxed) as conn:
        result = await conn.exec_driver_sql("SHOW synchronous_commit")
        return str(result.scalar())


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("synchronous", "relaxed", "expected"),
    [(False, True, "off"), (False, False, "on"), (True, True, "on")],
)
async def test_relaxed_commits_skip_the_wal_flush_unless_told_otherwise(
    synchronous_database, synchronous, relaxed, expected
):
    database = Database.open(synchronous_database, postgres_synchronous_commit=synchronous)
    try:
        assert await _synchronous_commit(database, relaxed=relaxed) == expected
        # SET LOCAL ends with its transaction: the next ordinary one waits for the flush.
        assert await _synchronous_commit(database, relaxed=False) == "on"
    finally:
        await database.dispose()


async def test_relaxed_writes_commit_on_sqlite(tmp_path):
    database = Database.open(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with database.write(relaxed=True) as conn:
            await conn.exec_driver_sql("CREATE TABLE t (x integer)")
            await conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        async with database.read() as conn:
            assert (await conn.exec_driver_sql("SELECT x FROM t")).scalar() == 1
    finally:
        await database.dispose()


async def test_a_new_sqlite_store_another_connection_is_making_is_waited_for(tmp_path):
    # Another process opened the new store first and holds its write lock (its own switch to
    # WAL, or its tables): SQLite refuses our switch to WAL at once ("database is locked"),
    # without waiting in its busy handler. A server and its workers starting together on a
    # new store, or two racing `migrate` runs, failed so in about 1 start of 20.
    path = tmp_path / "new.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE made_by_the_other (x integer)")
    database = Database.open(f"sqlite+aiosqlite:///{path}")
    try:
        ping = asyncio.create_task(database.ping())
        # Without waiting for the lock, the ping fails at once; with it, it waits for the
        # commit however long this takes.
        await asyncio.wait({ping}, timeout=0.5)
        other.execute("COMMIT")
        await ping
        async with database.read() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            await conn.exec_driver_sql("SELECT x FROM made_by_the_other")
    finally:
        other.close()
        await database.dispose()


async def test_a_new_sqlite_store_is_readable_by_its_owner_only(tmp_path):
    # Whatever the umask: the store holds prompts, answers and uploaded files.
    previous = os.umask(0o022)
    try:
        (tmp_path / "home").mkdir()
        home = tmp_path / "home" / ".datamill"
        database = Database.open(f"sqlite+aiosqlite:///{home / 'datamill.db'}")
        try:
            async with database.write() as conn:
                await conn.exec_driver_sql("CREATE TABLE t (x integer)")
            async with database.read() as conn:
                await conn.exec_driver_sql("SELECT x FROM t")
            made = sorted(path.name for path in home.iterdir())
            assert made == ["datamill.db", "datamill.db-shm", "datamill.db-wal"]
            assert stat.S_IMODE(home.stat().st_mode) == 0o700
            for path in home.iterdir():
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
        finally:
            await database.dispose()
    finally:
        os.umask(previous)
    # The directory the store's directory is in (the working directory, say) keeps its mode.
    assert stat.S_IMODE((tmp_path / "home").stat().st_mode) == 0o755
