"""SQLite write transactions in one hop to a thread of their own.

Through SQLAlchemy's aiosqlite adapter every driver call is a trip to aiosqlite's thread and
back: a cursor, the statement, its rows, the cursor's close, the BEGIN and the COMMIT, 15 to
20 trips for a group commit of results. Each trip costs 20-30 µs of CPU (the queue, the
GIL changing hands, the event loop's wake-up), and at thousands of requests a second they
were a tenth of the engine's CPU. `SqliteThread` runs a whole transaction, a plain function
over a `sqlite3.Connection`, in one trip: the engine's two hottest transactions (leasing
requests and recording results) go this way.

The thread holds one connection, configured like the engine's (WAL, the same synchronous
level, a 30 s busy timeout). Its caller serializes writes (`Database`'s write lock), so the
connection's ``BEGIN IMMEDIATE`` never waits on a writer of this process. A call whose
caller is cancelled still runs to its commit or rollback before the cancel goes on: a
transaction never outlives the lock that admitted it.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]] | None

BUSY_TIMEOUT = 30.0  # seconds a SQLite connection waits for another's lock
WAL_RETRY = 0.01


def enter_wal(connection: sqlite3.Connection) -> None:
    """Put the connection's store in WAL mode (it stays so: once per file in effect).

    While another connection opens the same new file (two processes starting on a new
    store), SQLite refuses the switch at once, "database is locked", without waiting in its
    busy handler (or answers the old mode): so it is retried, for as long as any other lock
    is waited for."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            row = connection.execute("PRAGMA journal_mode=WAL").fetchone()
        except sqlite3.OperationalError as exc:
            if not wal_refused(exc, deadline):
                raise
        else:
            if str(row[0]).lower() == "wal" or time.monotonic() > deadline:
                return
        time.sleep(WAL_RETRY)


def wal_refused(error: sqlite3.OperationalError, deadline: float) -> bool:
    """Whether a refused switch to WAL is worth trying again."""
    return "locked" in str(error) and time.monotonic() <= deadline


def configure(connection: Any, synchronous: str) -> None:
    """The pragmas every datamill connection to a SQLite store runs with, WAL aside
    (``connection``: a `sqlite3.Connection`, or the DB-API adapter SQLAlchemy puts around
    aiosqlite's)."""
    cursor = connection.cursor()
    for pragma in (
        f"synchronous={synchronous}",
        "foreign_keys=ON",
        f"busy_timeout={int(BUSY_TIMEOUT * 1000)}",
        "cache_size=-16384",
        "temp_store=MEMORY",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


class SqliteThread:
    """One thread and one connection to the SQLite file at ``path``; open on first use."""

    def __init__(self, path: str, *, synchronous: str) -> None:
        self._path = path
        self._synchronous = synchronous
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(connection)`` inside ``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back if it
        raises), in the thread; its result, or its exception, comes back here."""
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._start()
        self._jobs.put((work, done))
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            if not done.done():
                await asyncio.wait([done])  # the transaction ends before the lock is let go
            raise

    def close(self) -> None:
        """End the thread once the transactions already asked for are done."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            thread.join()

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="datamill-sqlite", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            while (job := self._jobs.get()) is not None:
                work, done = job
                try:
                    if connection is None:
                        connection = self._connect()
                    result = _in_transaction(connection, work)
                except BaseException as exc:
                    _settle(done, None, exc)
                else:
                    _settle(done, result, None)
        finally:
            if connection is not None:
                connection.close()

    def _connect(self) -> sqlite3.Connection:
        # isolation_level None: the module opens no transaction of its own; we BEGIN.
        connection = sqlite3.connect(
            self._path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        enter_wal(connection)
        configure(connection, self._synchronous)
        return connection


def _in_transaction(connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work(connection)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return result


def _settle(done: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    loop = done.get_loop()
    if loop.is_closed():
        return
    if error is None:
        loop.call_soon_threadsafe(_set_result, done, result)
    else:
        loop.call_soon_threadsafe(_set_exception, done, error)


def _set_result(done: asyncio.Future[Any], result: Any) -> None:
    if not done.done():
        done.set_result(result)


def _set_exception(done: asyncio.Future[Any], error: BaseException) -> None:
    if not done.done():
        done.set_exception(error)


def placeholders(values: Sequence[object]) -> str:
    """``?, ?, ...`` for an ``IN (...)`` of ``values``."""
    return ", ".join("?" * len(values))
