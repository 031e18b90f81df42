"""SQLite's hot transactions in one trip to the store's thread (`storage/sqlite_thread.py`)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from datamill.errors import StorageError
from datamill.storage.database import Database


@pytest.fixture
async def database(tmp_path):
    database = Database.open(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    async with database.write() as conn:
        await conn.exec_driver_sql("CREATE TABLE t (n INTEGER PRIMARY KEY)")
    yield database
    await database.dispose()


async def _rows(database: Database) -> list[int]:
    async with database.read() as conn:
        return [row[0] for row in (await conn.exec_driver_sql("SELECT n FROM t ORDER BY n"))]


async def test_a_transaction_commits_and_the_engine_reads_it(database):
    def insert(conn: sqlite3.Connection) -> int:
        conn.executemany("INSERT INTO t (n) VALUES (?)", [(1,), (2,)])
        return threading.get_ident()

    ident = await database.write_sqlite(insert)
    assert ident != threading.get_ident()  # it ran in the store's thread
    assert await _rows(database) == [1, 2]


async def test_a_transaction_that_raises_is_rolled_back_and_its_error_comes_back(database):
    def half(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (n) VALUES (1)")
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    with pytest.raises(OverflowError, match="too large"):
        await database.write_sqlite(half)
    assert await _rows(database) == []
    await database.write_sqlite(lambda conn: conn.execute("INSERT INTO t (n) VALUES (3)"))
    assert await _rows(database) == [3]


async def test_a_cancelled_caller_waits_for_the_commit_and_keeps_the_lock_until_then(database):
    started, release = threading.Event(), threading.Event()

    def slow(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (n) VALUES (7)")
        started.set()
        release.wait(timeout=60)

    call = asyncio.create_task(database.write_sqlite(slow))
    await asyncio.to_thread(started.wait, 60)
    call.cancel()
    # Another writer queues on the lock meanwhile: it must not start before the commit.
    other = asyncio.create_task(
        database.write_sqlite(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone()[0])
    )
    await asyncio.sleep(0)
    assert not call.done()
    assert not other.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await other == 1  # it saw the committed row
    assert await _rows(database) == [7]


async def test_a_store_error_says_the_store_is_not_usable(tmp_path):
    database = Database.open(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        with pytest.raises(StorageError, match="not usable: no such table"):
            await database.write_sqlite(lambda conn: conn.execute("SELECT * FROM missing"))
    finally:
        await database.dispose()


@pytest.mark.parametrize("url", ["sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"])
def test_an_in_memory_sqlite_store_is_refused_with_the_fix(url):
    with pytest.raises(StorageError, match=r"names no SQLite file.*sqlite:///"):
        Database.open(url)
