"""Backing a store up to one file, and restoring it into another store.

SQLite: the online backup API (`sqlite3.Connection.backup`) from a connection of its own,
copying in one step, which is one read snapshot: consistent while the server and workers
write (WAL lets them go on meanwhile). PostgreSQL: ``pg_dump --format=custom`` (one
repeatable-read snapshot) and ``pg_restore --clean --if-exists``, found on PATH or in
``/usr/lib/postgresql/*/bin``; the URL's credentials go to them through the environment
(``PGPASSWORD``...), never on the command line.

A restore refuses a store that holds work unless forced, brings the schema to the newest
revision, and declares dead every worker the backup recorded as running: none of them
writes to the restored store, so what they held (leased requests, claimed batches, jobs) is
released at once (`leasing.release_dead_workers`) and unfinished batches resume.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect, select
from sqlalchemy.engine import URL, make_url

from datamill.errors import StorageError
from datamill.storage import leasing, migrate
from datamill.storage import workers as worker_repo
from datamill.storage.database import Database
from datamill.storage.schema import metadata
from datamill.storage.sqlite_thread import BUSY_TIMEOUT

Progress = Callable[[str], None]

_SQLITE_MAGIC = b"SQLite format 3\x00"
_PG_MAGIC = b"PGDMP"
# The tables that hold a store's work: a row in any makes a store one a restore would not
# replace unforced. (A fresh `migrate` fills `projects`; a server started once, `workers`
# and `events`.)
_WORK_TABLES = (
    "files", "batches", "datasets", "generation_jobs", "stored_responses", "gateway_calls",
)  # fmt: skip
# Libpq's environment for the URL's query parameters datamill's URLs may carry.
_PG_QUERY_ENV = {"sslmode": "PGSSLMODE", "ssl": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT"}


class BackupError(StorageError):
    """A backup or restore could not be made; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Restored:
    """What a restore did: the workers it declared dead and the claims they gave back."""

    dead_workers: int
    released: leasing.Released


def describe(url: str) -> str:
    """The store ``url`` names, for messages: never its password."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite:{parsed.database}"
    return parsed.set(password=None).render_as_string(hide_password=True)


def _noop(_: str) -> None:
    return None


# -- backup -----------------------------------------------------------------------------------


async def backup(url: str, path: Path, *, progress: Progress = _noop) -> int:
    """Write a consistent backup of the store at ``url`` to ``path`` (replaced atomically:
    a failed backup leaves no half file); return its size in bytes."""
    parsed = make_url(url)
    partial = path.with_name(path.name + ".partial")
    try:
        if parsed.get_backend_name() == "sqlite":
            await asyncio.to_thread(_sqlite_backup, _sqlite_path(parsed), partial, progress)
        else:
            await _pg_dump(parsed, partial, progress)
        return await asyncio.to_thread(_publish, partial, path)
    finally:
        await asyncio.to_thread(partial.unlink, missing_ok=True)


def _publish(partial: Path, path: Path) -> int:
    """Put the finished backup in place; return its size."""
    os.replace(partial, path)
    return path.stat().st_size


def _private_file(path: Path) -> None:
    """Create ``path`` empty and readable by its owner only: a backup holds every file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))


def _sqlite_backup(source: Path, target: Path, progress: Progress) -> None:
    if not source.is_file():
        raise BackupError(f"there is no SQLite store at {source}: nothing to back up")
    _private_file(target)
    progress(f"copying {source.name}")
    with (
        closing(sqlite3.connect(source, timeout=BUSY_TIMEOUT)) as src,
        closing(sqlite3.connect(target)) as dst,
    ):
        # One step (pages=-1) is one read transaction: a snapshot, so writers that commit
        # meanwhile neither restart the copy nor leave half their work in it.
        src.backup(dst, pages=-1)
        # The copy came in WAL mode, the store's: one self-contained file instead.
        dst.execute("PRAGMA journal_mode=DELETE")


# -- restore ----------------------------------------------------------------------------------


async def restore(url: str, path: Path, *, force: bool, progress: Progress = _noop) -> Restored:
    """Load the backup ``path`` into the store at ``url`` and make it resume its work."""
    kind = _backup_kind(path)
    parsed = make_url(url)
    dialect = "sqlite" if parsed.get_backend_name() == "sqlite" else "postgresql"
    if kind != dialect:
        raise BackupError(
            f"{path} is a {_NAMES[kind]} backup and DATAMILL_DATABASE_URL is a {_NAMES[dialect]} "
            f"store: restore it into a {_NAMES[kind]} store"
        )
    database = Database.open(url)
    try:
        if not force and not await is_empty(database):
            raise BackupError(
                f"the store {database.describe()} already holds work (files, batches, "
                "datasets, jobs or gateway calls); restore into an empty store (a new "
                "DATAMILL_DATABASE_URL), or pass --force to replace what it holds"
            )
    finally:
        await database.dispose()
    if dialect == "sqlite":
        await asyncio.to_thread(_sqlite_restore, path, _sqlite_path(parsed), progress)
    else:
        await _pg_restore(parsed, path, progress)
    progress("releasing the claims of the backup's workers")
    database = Database.open(url)
    try:
        await migrate.upgrade(database)
        return await _release_all_workers(database)
    finally:
        await database.dispose()


_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def _backup_kind(path: Path) -> str:
    try:
        with path.open("rb") as file:
            head = file.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise BackupError(f"cannot read the backup {path}: {exc.strerror}") from exc
    if head.startswith(_SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(_PG_MAGIC):
        return "postgresql"
    raise BackupError(f"{path} is not a datamill backup (made by `datamill backup PATH`)")


async def is_empty(database: Database) -> bool:
    """Whether the store holds no work: no file, batch, dataset, generation job or gateway
    call (a fresh `datamill migrate`, or a server started and stopped)."""
    async with database.read() as conn:
        present = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
        for name in _WORK_TABLES:
            table = metadata.tables[name]
            if name in present and await conn.scalar(select(1).select_from(table).limit(1)):
                return False
    return True


def _sqlite_restore(source: Path, target: Path, progress: Progress) -> None:
    progress(f"copying {source.name} into {target.name}")
    with (
        closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src,
        closing(sqlite3.connect(target, timeout=BUSY_TIMEOUT)) as dst,
    ):
        if src.execute("PRAGMA quick_check").fetchone() != ("ok",):
            raise BackupError(f"{source} is damaged (PRAGMA quick_check failed)")
        # Through the target's own connection: SQLite replaces its pages and its WAL whole.
        src.backup(dst, pages=-1)
    os.chmod(target, 0o600)


async def _release_all_workers(database: Database) -> Restored:
    """Every worker the backup recorded as running is gone: declare it dead, release what
    it held."""
    now = time.time()
    dead = await worker_repo.declare_dead_workers(
        database, now=now, ttl=0.0, host=socket.gethostname()
    )
    released = await leasing.release_dead_workers(database, dead, now=now)
    return Restored(dead_workers=len(dead), released=released)


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("DATAMILL_DATABASE_URL names no SQLite file")
    return Path(url.database)


# -- PostgreSQL tools -------------------------------------------------------------------------


def find_pg_tool(name: str) -> str:
    """``pg_dump`` or ``pg_restore``: on PATH, else the newest in /usr/lib/postgresql."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
        reverse=True,
    )
    if candidates:
        return str(candidates[0])
    raise BackupError(
        f"{name} was not found on PATH or in /usr/lib/postgresql/*/bin: install the "
        "PostgreSQL client tools (Debian: postgresql-client), as new as the server"
    )


def pg_environment(url: URL) -> dict[str, str]:
    """The libpq environment naming the URL's server, user, password and database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    fields = {
        "PGHOST": url.host,
        "PGPORT": str(url.port) if url.port else None,
        "PGUSER": url.username,
        "PGPASSWORD": url.password,
        "PGDATABASE": url.database,
    }
    env.update({k: str(v) for k, v in fields.items() if v})
    for key, value in url.query.items():
        if key in _PG_QUERY_ENV and isinstance(value, str):
            env[_PG_QUERY_ENV[key]] = value
    return env


async def _pg_dump(url: URL, target: Path, progress: Progress) -> None:
    _private_file(target)
    command = [find_pg_tool("pg_dump"), "--format=custom", "--verbose", f"--file={target}"]
    await _run_pg(command, url, progress, doing="pg_dump")


async def _pg_restore(url: URL, source: Path, progress: Progress) -> None:
    command = [
        find_pg_tool("pg_restore"),
        "--clean",
        "--if-exists",
        "--no-owner",
        "--no-privileges",
        "--single-transaction",
        "--exit-on-error",
        "--verbose",
        f"--dbname={url.database}",
        str(source),
    ]
    await _run_pg(command, url, progress, doing="pg_restore")


async def _run_pg(command: list[str], url: URL, progress: Progress, *, doing: str) -> None:
    """Run a PostgreSQL tool; its verbose lines are the progress, its errors the message."""
    process = await asyncio.create_subprocess_exec(
        *command,
        env=pg_environment(url),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    errors: list[str] = []
    async for raw in process.stderr:
        line = raw.decode(errors="replace").strip()
        if "error:" in line or "FATAL" in line or "fatal:" in line:
            errors.append(line)
        elif line:
            progress(line.removeprefix(f"{doing}: "))
    if await process.wait() != 0:
        detail = "; ".join(errors) or f"exit status {process.returncode}"
        raise BackupError(f"{doing} failed: {detail}")
