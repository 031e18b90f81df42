"""`datamill migrate` on empty stores, and `datamill worker` refusing a store it cannot use."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from datamill.storage.migrate import head_revision
from tests.cli.conftest import RunCli, StartCli, custom_id_counts, write_requests

pytestmark = pytest.mark.slow


def _sqlite_tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


async def _postgres_tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row["tablename"] for row in rows}
    finally:
        await conn.close()


def test_migrate_an_empty_sqlite_store(run_cli: RunCli, isolated_environment: Path):
    first = run_cli("migrate")
    again = run_cli("migrate")  # already current: nothing to do, same answer

    assert first.code == again.code == 0, first.stderr
    assert f"store is at schema revision {head_revision()}" in first.output
    assert f"store is at schema revision {head_revision()}" in again.output
    tables = _sqlite_tables(isolated_environment / "datamill.db")
    assert {"alembic_version", "batches", "files", "requests"} <= tables


def test_worker_refuses_an_unmigrated_sqlite_store(run_cli: RunCli):
    done = run_cli("worker", timeout=30)

    assert done.code == 3
    assert "run `datamill migrate`" in done.output
    assert "Traceback" not in done.stderr


@pytest.mark.postgres
def test_postgres_migrate_then_a_worker_runs_submitted_batches(
    run_cli: RunCli,
    start_cli: StartCli,
    invoke: RunCli,
    empty_postgres_url: str,
    tmp_path: Path,
):
    # The plain postgresql:// form users copy from elsewhere: datamill picks the driver.
    url = empty_postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    env = {"DATAMILL_DATABASE_URL": url}
    ids = write_requests(tmp_path / "in.jsonl", 20)

    refused = run_cli("worker", env=env, timeout=30)
    migrated = run_cli("migrate", env=env)
    worker = start_cli("worker", "--concurrency", "8", env=env)
    worker.wait_for_output("stop")
    submitted = invoke("batch", "submit", "in.jsonl", "--wait", env=env)
    batch_id = submitted.stdout.strip()
    downloaded = invoke("batch", "download", batch_id, "-o", "out.jsonl", env=env)
    worker.signal(signal.SIGTERM)
    stopped = worker.wait(timeout=30)

    assert refused.code == 3
    assert "run `datamill migrate`" in refused.output
    assert migrated.code == 0, migrated.stderr
    assert f"store is at schema revision {head_revision()}" in migrated.output
    assert {"alembic_version", "batches", "files", "requests"} <= asyncio.run(
        _postgres_tables(empty_postgres_url)
    )
    assert "postgresql" in " ".join(worker.stderr.split())
    assert submitted.code == 0, submitted.stderr
    assert downloaded.code == 0
    assert custom_id_counts(tmp_path / "out.jsonl") == dict.fromkeys(ids, 1)
    assert stopped.code == 0, stopped.stderr
    assert "stopped" in stopped.stderr
