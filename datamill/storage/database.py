"""Connections to the store: SQLite (embedded, WAL) or PostgreSQL (scaled).

`Database.read()` gives a connection for reads; `Database.write()` a connection inside one
write transaction. On SQLite a write transaction starts with ``BEGIN IMMEDIATE`` (so two
writers never deadlock on a lock upgrade) and writers in one process queue on an asyncio lock
instead of spinning in SQLite's busy handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import Table, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from datamill.errors import StorageError
from datamill.storage.sqlite_thread import (
    BUSY_TIMEOUT,
    WAL_RETRY,
    SqliteThread,
    configure,
    wal_refused,
)

T = TypeVar("T")

Dialect = Literal["sqlite", "postgresql"]

_IMMEDIATE = "datamill_immediate"


async def _enter_wal(driver: Any) -> None:
    """`sqlite_thread.enter_wal` on aiosqlite's connection, waiting without blocking the
    event loop."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            async with driver.execute("PRAGMA journal_mode=WAL") as cursor:
                row = await cursor.fetchone()
        except sqlite3.OperationalError as exc:
            if not wal_refused(exc, deadline):
                raise
        else:
            if str(row[0]).lower() == "wal" or time.monotonic() > deadline:
                return
        await asyncio.sleep(WAL_RETRY)


class Database:
    """One store. Create with `Database.open(url)`; close with `dispose()`."""

    def __init__(
        self,
        engine: AsyncEngine,
        dialect: Dialect,
        *,
        postgres_synchronous_commit: bool = False,
        sqlite_thread: SqliteThread | None = None,
    ) -> None:
        self.engine = engine
        self.dialect: Dialect = dialect
        self._write_lock = asyncio.Lock() if dialect == "sqlite" else None
        self._sqlite = sqlite_thread
        self._relax_commits = dialect == "postgresql" and not postgres_synchronous_commit

    @classmethod
    def open(
        cls,
        url: str,
        *,
        sqlite_synchronous: str = "NORMAL",
        postgres_synchronous_commit: bool = False,
    ) -> Database:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            return cls._open_sqlite(url, parsed.database, sqlite_synchronous)
        if backend in {"postgresql", "postgres"}:
            if parsed.drivername in {"postgresql", "postgres"}:
                parsed = parsed.set(drivername="postgresql+asyncpg")
            engine = create_async_engine(parsed, pool_size=10, max_overflow=20, pool_pre_ping=True)
            return cls(
                engine, "postgresql", postgres_synchronous_commit=postgres_synchronous_commit
            )
        raise StorageError(
            f"DATAMILL_DATABASE_URL uses {backend!r}; datamill supports sqlite and postgresql"
        )

    @classmethod
    def _open_sqlite(cls, url: str, path: str | None, synchronous: str) -> Database:
        if not path or path == ":memory:":
            raise StorageError(
                f"DATAMILL_DATABASE_URL {url!r} names no SQLite file: datamill's connections "
                "share the store through a file, e.g. sqlite:///./datamill.db"
            )
        _create_private(Path(path))
        engine = create_async_engine(url, connect_args={"timeout": BUSY_TIMEOUT})

        @event.listens_for(engine.sync_engine, "connect")
        def _configure(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
            # Take transaction control away from the sqlite3 module; we emit BEGIN ourselves.
            dbapi_connection.isolation_level = None
            dbapi_connection.run_async(_enter_wal)
            configure(dbapi_connection, synchronous)

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Any) -> None:
            immediate = conn.get_execution_options().get(_IMMEDIATE, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return cls(engine, "sqlite", sqlite_thread=SqliteThread(path, synchronous=synchronous))

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads; its snapshot ends when the block does."""
        try:
            async with self.engine.connect() as conn:
                yield conn
        except (OperationalError, OSError) as exc:
            raise _storage_error(exc) from exc

    @asynccontextmanager
    async def write(self, *, relaxed: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection inside one write transaction, committed when the block ends.

        ``relaxed``: for work that is safely redone (leases, results, staging, blob chunks).
        On PostgreSQL the
        commit does not wait for the WAL flush (unless DATAMILL_POSTGRES_SYNCHRONOUS_COMMIT):
        a crash of the PostgreSQL server itself may lose the last fraction of a second of such
        commits, and their requests simply run again. A later ordinary commit flushes them
        too. SQLite's durability is DATAMILL_SQLITE_SYNCHRONOUS for every commit."""
        try:
            if self._write_lock is None:
                async with self.engine.begin() as conn:
                    if relaxed and self._relax_commits:
                        await conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                    yield conn
                return
            async with self._write_lock, self.engine.connect() as conn:
                await conn.execution_options(**{_IMMEDIATE: True})
                async with conn.begin():
                    yield conn
        except (OperationalError, OSError) as exc:
            raise _storage_error(exc) from exc

    async def write_sqlite(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` in one SQLite write transaction, run in one trip to the store's own
        thread (`sqlite_thread.py`): for the engine's hot transactions, which would
        otherwise pay a trip per driver call. Only on SQLite."""
        if self._sqlite is None or self._write_lock is None:
            raise RuntimeError("write_sqlite is for SQLite stores")
        try:
            async with self._write_lock:
                return await self._sqlite.transaction(work)
        except sqlite3.OperationalError as exc:
            raise StorageError(f"the store is not usable: {exc}") from exc

    async def ping(self) -> None:
        from sqlalchemy import text

        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        if self._sqlite is not None:
            await asyncio.to_thread(self._sqlite.close)
        await self.engine.dispose()

    def describe(self) -> str:
        """The store for banners and /api/info, without any password."""
        url = self.engine.url
        if self.dialect == "sqlite":
            return f"sqlite:{url.database}"
        return url.set(password=None).render_as_string(hide_password=True)


def _create_private(path: Path) -> None:
    """Make a new SQLite store readable by its owner only: its directory 0700 and its file
    0600, before SQLite opens it (SQLite gives the -wal and -shm files the database file's
    mode). What exists already keeps its mode; the parents are made as ``mkdir -p`` does."""
    directory = path.parent
    if not directory.exists():
        directory.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
    # O_EXCL: an existing store is never opened here, as closing any descriptor of a file
    # drops the locks SQLite connections of this process hold on it.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _storage_error(exc: BaseException) -> StorageError:
    detail = str(exc.orig) if isinstance(exc, DBAPIError) and exc.orig is not None else str(exc)
    return StorageError(f"the store is not usable: {detail}")


def upsert_insert(dialect: str) -> Callable[[Table], Any]:
    """The dialect's INSERT, the one with ``on_conflict_do_nothing`` / ``_do_update``.
    Imported on first use: the PostgreSQL dialect costs a SQLite process 25 ms of start-up."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert
