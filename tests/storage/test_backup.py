"""`storage.backup`: a SQLite backup is one snapshot while others write; PostgreSQL's tools
get the URL's credentials through the environment, never their command line."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from datamill.storage import backup as backups


async def test_a_sqlite_backup_is_one_snapshot_while_another_connection_writes(
    tmp_path: Path,
):
    store = tmp_path / "live.db"
    with sqlite3.connect(store) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE pairs (n INTEGER)")
    stop, under_way = threading.Event(), threading.Event()
    commits = 0

    def write_pairs() -> None:
        # Every transaction adds two rows: a copy with an odd count saw half of one.
        nonlocal commits
        writer = sqlite3.connect(store, timeout=30, isolation_level=None)
        while not stop.is_set():
            writer.execute("BEGIN IMMEDIATE")
            writer.executemany("INSERT INTO pairs VALUES (?)", [(commits,), (commits,)])
            writer.execute("COMMIT")
            commits += 1
            if commits == 50:
                under_way.set()
        writer.close()

    thread = threading.Thread(target=write_pairs)
    thread.start()
    try:
        assert await asyncio.to_thread(under_way.wait, 60)
        sizes = [
            await backups.backup(f"sqlite:///{store}", tmp_path / f"b{i}.db") for i in range(3)
        ]
    finally:
        stop.set()
        thread.join()

    for i, size in enumerate(sizes):
        assert size == (tmp_path / f"b{i}.db").stat().st_size
        with sqlite3.connect(tmp_path / f"b{i}.db") as copy:
            (count,) = copy.execute("SELECT COUNT(*) FROM pairs").fetchone()
        assert count >= 100
        assert count % 2 == 0
    assert commits > 50  # writing went on


def test_postgres_credentials_go_through_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PGPASSWORD", "a stale one")
    url = make_url("postgresql+asyncpg://mill:s%40cret@db.internal:5433/datamill?sslmode=require")

    env = backups.pg_environment(url)

    assert env["PGHOST"] == "db.internal"
    assert env["PGPORT"] == "5433"
    assert env["PGUSER"] == "mill"
    assert env["PGPASSWORD"] == "s@cret"
    assert env["PGDATABASE"] == "datamill"
    assert env["PGSSLMODE"] == "require"


def test_no_password_leaves_none_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PGPASSWORD", "someone else's")

    env = backups.pg_environment(make_url("postgresql://mill@localhost/datamill"))

    assert "PGPASSWORD" not in env
    assert "PGPORT" not in env


def test_pg_tools_are_found_off_path_too(monkeypatch: pytest.MonkeyPatch):
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))
    if not installed:
        pytest.skip("no PostgreSQL client tools in /usr/lib/postgresql")
    monkeypatch.setenv("PATH", "")

    assert backups.find_pg_tool("pg_dump").startswith("/usr/lib/postgresql/")
    with pytest.raises(backups.BackupError, match="postgresql-client"):
        backups.find_pg_tool("pg_nothing")


def test_a_store_is_described_without_its_password():
    described = backups.describe("postgresql://mill:s3cret@db:5432/datamill")

    assert "s3cret" not in described
    assert "db:5432/datamill" in described
