"""`datamill backup` and `datamill restore`: a backup taken while a batch runs, restored into
a fresh store, finishes the batch there with every request exactly once."""

from __future__ import annotations

import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from datamill.engine.worker import WorkerOptions
from datamill_testing.mock_process import MockProviderProcess
from datamill_testing.postgres import TemporaryPostgres
from tests.cli.conftest import (
    CliEnv,
    RunCli,
    Running,
    StartCli,
    StartServer,
    custom_id_counts,
    write_requests,
)
from tests.conftest import fresh_postgres_database

CONCURRENCY = 8


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(source URL, target URL): a store to back up and an empty one to restore into."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'source.db'}", f"sqlite:///{tmp_path / 'target' / 'new.db'}"
        return
    server: TemporaryPostgres = request.getfixturevalue("postgres_server")
    source, drop_source = fresh_postgres_database(server)
    # Not even migrated: a database just created for the restore.
    target, drop_target = fresh_postgres_database(server, migrated=False)
    try:
        yield source, target
    finally:
        drop_source()
        drop_target()


@pytest.fixture
def mock_env(mock_provider: MockProviderProcess, cli_env: CliEnv) -> MockProviderProcess:
    cli_env.update(OPENAI_BASE_URL=mock_provider.base_url, OPENAI_API_KEY="sk-test-not-a-key")
    return mock_provider


def _wait_for_calls(mock: MockProviderProcess, at_least: int, process: Running) -> None:
    deadline = time.monotonic() + 60
    while mock.stats()["total"] < at_least:
        assert process.process.poll() is None, f"the run ended early:\n{process.stderr}"
        assert time.monotonic() < deadline, f"no progress:\n{process.stderr}"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_backup_taken_mid_batch_finishes_the_batch_once_in_a_fresh_store(
    run_cli: RunCli,
    start_cli: StartCli,
    mock_env: MockProviderProcess,
    two_stores: tuple[str, str],
    tmp_path: Path,
):
    source, target = two_stores
    at_source, at_target = {"DATAMILL_DATABASE_URL": source}, {"DATAMILL_DATABASE_URL": target}
    ids = write_requests(tmp_path / "in.jsonl", 2000)
    # Slow enough that the batch outlives the backup on a slow machine: ~23 s of calls left.
    mock_env.control(latency_ms=100)
    running = start_cli(
        "batch", "run", "in.jsonl", "-o", "first.jsonl", "--concurrency", str(CONCURRENCY),
        env=at_source,
    )  # fmt: skip
    # Past what a run may hold unrecorded: the backup has results as well as pending work.
    _wait_for_calls(mock_env, WorkerOptions(concurrency=CONCURRENCY).max_unrecorded + 100, running)

    backed_up = run_cli("backup", "store.backup", env=at_source)
    still_running = running.process.poll() is None
    running.kill()
    restored = run_cli("restore", "store.backup", env=at_target)
    resumed = run_cli("batch", "run", "in.jsonl", "-o", "out.jsonl", env=at_target)

    assert backed_up.code == 0, backed_up.stderr
    assert still_running, "the batch ended before the backup did: the test proves nothing"
    assert "backed up to store.backup" in backed_up.output
    assert f"restoring store.backup into {'sqlite' if 'sqlite' in target else 'postgresql'}" in (
        restored.output
    )
    assert stat.S_IMODE((tmp_path / "store.backup").stat().st_mode) == 0o600
    assert not (tmp_path / "store.backup.partial").exists()
    assert not list(tmp_path.glob("store.backup-*"))  # one file: no -wal or -shm beside it
    assert restored.code == 0, restored.stderr
    assert "the backup's 1 worker left" in restored.output  # the run's, dead to the copy
    assert "start a server or a worker to finish them" in restored.output
    assert resumed.code == 0, resumed.stderr
    done = re.search(r"resuming \S+ \(\w+, (\d+) of 2000 done\)", resumed.output)
    assert done is not None, resumed.output
    assert 0 < int(done.group(1)) < 2000
    assert custom_id_counts(tmp_path / "out.jsonl") == dict.fromkeys(ids, 1)
    assert mock_env.stats()["completed_keys"] == 2000


@pytest.mark.slow
def test_a_server_restored_from_a_backup_finishes_the_batch_its_predecessor_ran(
    invoke: RunCli,
    start_server: StartServer,
    mock_env: MockProviderProcess,
    two_stores: tuple[str, str],
    tmp_path: Path,
):
    source, target = two_stores
    at_source, at_target = {"DATAMILL_DATABASE_URL": source}, {"DATAMILL_DATABASE_URL": target}
    ids = write_requests(tmp_path / "in.jsonl", 1000)
    # Slow enough that the batch outlives the backup on a slow machine: ~16 s of calls left.
    mock_env.control(latency_ms=150)
    old = start_server(env={**at_source, "DATAMILL_CONCURRENCY": str(CONCURRENCY)})
    batch_id = invoke("batch", "submit", "in.jsonl", env=at_source).stdout.strip()
    _wait_for_calls(
        mock_env, WorkerOptions(concurrency=CONCURRENCY).max_unrecorded + 50, old.process
    )

    backed_up = invoke("backup", str(tmp_path / "store.backup"), env=at_source)
    old.process.kill()  # the disk died
    restored = invoke("restore", str(tmp_path / "store.backup"), env=at_target)
    unfinished = _status(invoke, batch_id, at_target)
    start_server(env=at_target)
    deadline = time.monotonic() + 60
    while (batch := _status(invoke, batch_id, at_target))["status"] != "completed":
        assert time.monotonic() < deadline, batch
        time.sleep(0.1)
    downloaded = invoke("batch", "download", batch_id, "-o", "out.jsonl", env=at_target)

    assert backed_up.code == 0, backed_up.output
    assert restored.code == 0, restored.output
    assert unfinished["status"] == "in_progress"
    assert unfinished["request_counts"]["completed"] < 1000
    assert downloaded.code == 0, downloaded.output
    assert batch["request_counts"] == {"total": 1000, "completed": 1000, "failed": 0}
    assert custom_id_counts(tmp_path / "out.jsonl") == dict.fromkeys(ids, 1)
    assert mock_env.stats()["completed_keys"] == 1000


def _status(invoke: RunCli, batch_id: str, env: dict[str, str]) -> Any:
    shown = invoke("batch", "status", batch_id, "--json", env=env)
    assert shown.code == 0, shown.output
    return orjson.loads(shown.stdout)


def test_restore_refuses_a_store_with_work_unless_forced(
    invoke: RunCli, run_cli: RunCli, tmp_path: Path, two_stores: tuple[str, str]
):
    source, target = two_stores
    at_source, at_target = {"DATAMILL_DATABASE_URL": source}, {"DATAMILL_DATABASE_URL": target}
    ids = write_requests(tmp_path / "in.jsonl", 3)  # answered by the built-in sim
    assert run_cli("batch", "run", "in.jsonl", "-o", "out.jsonl", env=at_source).code == 0
    assert invoke("backup", str(tmp_path / "b.backup"), env=at_source).code == 0

    refused = invoke("restore", str(tmp_path / "b.backup"), env=at_source)
    into_empty = invoke("restore", str(tmp_path / "b.backup"), env=at_target)
    again = invoke("restore", str(tmp_path / "b.backup"), env=at_target)
    forced = invoke("restore", str(tmp_path / "b.backup"), "--force", env=at_target)
    rerun = run_cli("batch", "run", "in.jsonl", "-o", "again.jsonl", env=at_target)

    assert refused.code == 3
    assert "already holds work" in refused.output
    assert "--force" in refused.output
    assert into_empty.code == 0, into_empty.output
    assert "no worker was running when the backup was taken" in into_empty.output
    assert not list(tmp_path.glob("b.backup-*"))
    assert again.code == 3
    assert forced.code == 0, forced.output
    assert rerun.code == 0, rerun.output
    assert "already ran on this input" in rerun.output
    assert custom_id_counts(tmp_path / "again.jsonl") == dict.fromkeys(ids, 1)


def test_what_is_not_a_backup_is_told(invoke: RunCli, tmp_path: Path, store_url: str):
    (tmp_path / "notes.txt").write_text("hello")
    env = {"DATAMILL_DATABASE_URL": store_url}

    told = invoke("restore", str(tmp_path / "notes.txt"), env=env)
    missing = invoke("restore", str(tmp_path / "nowhere.backup"), env=env)

    assert told.code == 3
    assert "is not a datamill backup" in told.output
    assert missing.code == 2  # the option parser: no such file


def test_a_backup_of_the_other_kind_of_store_is_refused(
    invoke: RunCli, tmp_path: Path, two_stores: tuple[str, str]
):
    source, _ = two_stores
    env = {"DATAMILL_DATABASE_URL": source}
    other = tmp_path / "other.backup"
    if source.startswith("sqlite"):
        other.write_bytes(b"PGDMP\x01\x0f\x00")
    else:
        other.write_bytes(b"SQLite format 3\x00" + bytes(100))

    told = invoke("restore", str(other), env=env)

    assert told.code == 3
    assert "backup and DATAMILL_DATABASE_URL is a" in told.output


def test_a_missing_sqlite_store_is_not_backed_up(invoke: RunCli, tmp_path: Path):
    env = {"DATAMILL_DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}"}

    told = invoke("backup", str(tmp_path / "b.backup"), env=env)

    assert told.code == 3
    assert "there is no SQLite store" in told.output
    assert not (tmp_path / "b.backup").exists()


def test_a_postgres_backup_that_cannot_connect_says_why(invoke: RunCli, tmp_path: Path):
    # Port 1 on loopback: nothing listens there.
    env = {"DATAMILL_DATABASE_URL": "postgresql://mill:s3cret@127.0.0.1:1/datamill"}

    told = invoke("backup", str(tmp_path / "b.backup"), env=env)

    assert told.code == 3
    assert "pg_dump failed" in told.output
    assert "127.0.0.1" in told.output
    assert "s3cret" not in told.output
    assert not (tmp_path / "b.backup").exists()
    assert not (tmp_path / "b.backup.partial").exists()
