"""Storage fixtures: open stores on `store_url`, build batches with staged requests, and
(for the migration tests) empty, never-migrated stores."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from datamill.ids import new_batch_id
from datamill.protocol.batches import BatchStatus
from datamill.storage import migrate
from datamill.storage import requests as request_repo
from datamill.storage.batches import get_batch, insert_batch, request_cancel, start_batch
from datamill.storage.database import Database
from datamill.storage.records import BatchRecord, RequestResult, WorkerRecord
from datamill.storage.schema import DEFAULT_PROJECT_ID, requests
from datamill_testing.postgres import TemporaryPostgres
from tests.conftest import fresh_postgres_database

NOW = 1_700_000_000.0
WORKER_HOST = "this-host"  # the host `declare_dead_workers` is told it runs on

OpenDatabase = Callable[[], Awaitable[Database]]


@pytest.fixture
async def open_database(store_url: str) -> AsyncIterator[OpenDatabase]:
    """Open (and migrate) `Database` objects on the test's store; each has its own pool."""
    opened: list[Database] = []

    async def open_one() -> Database:
        database = Database.open(store_url)
        opened.append(database)
        await migrate.upgrade(database)
        return database

    yield open_one
    for database in opened:
        await database.dispose()


@pytest.fixture
async def database(open_database: OpenDatabase) -> Database:
    return await open_database()


@dataclass(frozen=True)
class StagedBatch:
    record: BatchRecord
    request_ids: list[int]

    @property
    def id(self) -> str:
        return self.record.id


MakeBatch = Callable[..., Awaitable[StagedBatch]]


@pytest.fixture
def make_batch(database: Database) -> MakeBatch:
    """Insert a batch with ``n`` staged requests (line i has custom_id ``c<i>``), then move it
    to ``status`` (validating, in_progress or cancelling) the way the engine does."""

    async def make(
        n: int = 10,
        *,
        status: BatchStatus = BatchStatus.in_progress,
        now: float = NOW,
        **values: Any,
    ) -> StagedBatch:
        batch_id = new_batch_id()
        await insert_batch(
            database,
            **{
                "id": batch_id,
                "project_id": DEFAULT_PROJECT_ID,
                "endpoint": "/v1/chat/completions",
                "input_file_id": "file-input",
                "completion_window": "24h",
                "status": BatchStatus.validating.value,
                "created_at": now,
                "expires_at": now + 86_400,
                **values,
            },
        )
        rows = [(line, f"c{line}", b'{"line": %d}' % line) for line in range(n)]
        await request_repo.stage_requests(database, batch_id, rows)
        if status is not BatchStatus.validating:
            assert await start_batch(database, batch_id, total=n, model="m", now=now)
        if status is BatchStatus.cancelling:
            assert await request_cancel(database, batch_id, now=now)
        elif status not in {BatchStatus.validating, BatchStatus.in_progress}:
            raise ValueError(f"make_batch cannot build a {status} batch")
        async with database.read() as conn:
            query = (
                select(requests.c.id)
                .where(requests.c.batch_id == batch_id)
                .order_by(requests.c.line)
            )
            ids = list((await conn.execute(query)).scalars())
        record = await get_batch(database, batch_id)
        assert record is not None
        return StagedBatch(record, ids)

    return make


def make_result(
    batch: StagedBatch, line: int, *, ok: bool = True, tokens: int = 0, **values: Any
) -> RequestResult:
    """The result of line ``line`` of ``batch``; ``tokens`` goes to every token counter."""
    fields: dict[str, Any] = {
        "request_id": batch.request_ids[line],
        "batch_id": batch.id,
        "line": line,
        "custom_id": f"c{line}",
        "ok": ok,
        "status_code": 200 if ok else 500,
        "body": b'{"ok": true}' if ok else None,
        "provider_request_id": None,
        "error_code": None if ok else "server_error",
        "error_message": None if ok else "boom",
        "deployment": "d",
        "attempts": 1,
        "input_tokens": tokens,
        "cached_tokens": tokens,
        "output_tokens": tokens,
        "reasoning_tokens": tokens,
        "finished_at": NOW,
    }
    fields.update(values)
    return RequestResult(**fields)


async def request_rows(database: Database, batch_id: str) -> dict[int, Any]:
    """The batch's request rows by line."""
    async with database.read() as conn:
        rows = (await conn.execute(select(requests).where(requests.c.batch_id == batch_id))).all()
    return {row.line: row for row in rows}


# -- empty stores, for the migration tests ---------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a store nobody has migrated: a new SQLite file, a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    server: TemporaryPostgres = request.getfixturevalue("postgres_server")
    url, drop = fresh_postgres_database(server, migrated=False)
    try:
        yield url
    finally:
        drop()


def worker(
    worker_id: str, *, host: str = WORKER_HOST, pid: int | None = None, at: float = NOW
) -> WorkerRecord:
    """A running worker registered at ``at`` on ``host``, by default this process."""
    return WorkerRecord(
        id=worker_id,
        kind="worker",
        host=host,
        pid=os.getpid() if pid is None else pid,
        version="0.1.0",
        status="running",
        started_at=at,
        heartbeat_at=at,
        stopped_at=None,
        current_batch_id=None,
        in_flight=0,
        completed=0,
        failed=0,
    )
