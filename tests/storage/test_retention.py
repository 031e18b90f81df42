"""Retention's deletes on both stores: what a batch or a generation job still needs stays,
and everything else of the age given goes, in chunks."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update

from datamill.storage import files as file_repo
from datamill.storage import generation as generation_repo
from datamill.storage.database import Database
from datamill.storage.records import FileRecord
from datamill.storage.requests import prune_finished_requests
from datamill.storage.schema import DEFAULT_PROJECT_ID, batches, requests
from tests.storage.conftest import NOW, MakeBatch
from tests.storage.test_generation import make_job

LATER = NOW + 1000


async def finish(database: Database, batch_id: str, **values: Any) -> None:
    """Mark the batch completed at NOW (the engine's way there is not the point here)."""
    async with database.write() as conn:
        await conn.execute(
            update(batches)
            .where(batches.c.id == batch_id)
            .values(status="completed", completed_at=NOW, **values)
        )


async def rows(database: Database, batch_id: str) -> int:
    async with database.read() as conn:
        query = select(func.count()).select_from(requests).where(requests.c.batch_id == batch_id)
        return int(await conn.scalar(query) or 0)


async def test_only_finished_batches_past_the_age_lose_their_rows(
    database: Database, make_batch: MakeBatch
):
    old = await make_batch(25)
    await finish(database, old.id)
    running = await make_batch(5, now=NOW - 10_000)
    young = await make_batch(5)
    async with database.write() as conn:
        await conn.execute(
            update(batches)
            .where(batches.c.id == young.id)
            .values(status="cancelled", cancelled_at=LATER)
        )

    pruned = await prune_finished_requests(database, finished_before=LATER, max_rows=1000, chunk=10)

    assert (pruned.rows, pruned.more) == (25, False)
    assert [await rows(database, b.id) for b in (old, running, young)] == [0, 5, 5]


async def test_a_pass_stops_past_its_bound(database: Database, make_batch: MakeBatch):
    batch = await make_batch(25)
    await finish(database, batch.id)

    first = await prune_finished_requests(database, finished_before=LATER, max_rows=10, chunk=10)
    assert (first.rows, first.more) == (10, True)
    assert await rows(database, batch.id) == 15
    rest = await prune_finished_requests(database, finished_before=LATER, max_rows=100, chunk=10)
    assert (rest.rows, rest.more) == (15, False)


async def test_rows_a_generation_job_still_reads_stay(database: Database, make_batch: MakeBatch):
    await make_job(database, target=1, requests=0)
    read_by_job = await make_batch(2)
    issued = [generation_repo.IssuedRequest("law", "qa", "sample", custom_id="c0")]
    await generation_repo.add_batch_requests(database, "gen_test", read_by_job.id, issued=issued)
    await finish(database, read_by_job.id)
    # A job's batch not recorded as the job's yet (its runner died): the next runner adopts
    # it from its rows.
    unadopted = await make_batch(2, idempotency_key="gen:gen_test:7")
    await finish(database, unadopted.id)

    pruned = await prune_finished_requests(database, finished_before=LATER, max_rows=100)

    assert pruned.rows == 0
    assert await rows(database, read_by_job.id) == 2
    assert await rows(database, unadopted.id) == 2
    # Once the job is done with its requests, they go like any other batch's.
    assert await generation_repo.finish_job(database, "gen_test", "completed", now=NOW)
    assert (await prune_finished_requests(database, finished_before=LATER, max_rows=100)).rows == 2


def file_record(
    file_id: str, *, created_at: float, expires_at: float | None = None, purpose: str = "batch"
) -> FileRecord:
    return FileRecord(
        id=file_id,
        project_id=DEFAULT_PROJECT_ID,
        filename=f"{file_id}.jsonl",
        purpose=purpose,
        bytes=1,
        lines=1,
        sha256=None,
        status="processed",
        created_at=created_at,
        expires_at=expires_at,
    )


async def test_files_an_unfinished_batch_names_stay_whatever_their_age(
    database: Database, make_batch: MakeBatch
):
    for record in (
        file_record("file-old", created_at=NOW),
        file_record("file-expired", created_at=LATER, expires_at=LATER),
        file_record("file-input", created_at=NOW, expires_at=NOW + 1),
        file_record("file-output", created_at=NOW, purpose="batch_output"),
        file_record("file-young", created_at=LATER + 1),
    ):
        await file_repo.insert_file(database, record)
    await make_batch(2, input_file_id="file-input")

    deleted = await file_repo.delete_unneeded_files(
        database, now=LATER + 10, created_before=LATER, limit=100
    )

    assert sorted(deleted) == ["file-expired", "file-old"]
    for kept in ("file-input", "file-output", "file-young"):
        assert await file_repo.get_file(database, kept, project_id=DEFAULT_PROJECT_ID)
