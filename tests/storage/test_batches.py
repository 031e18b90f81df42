"""The batch status machine: claims, finalization, cancel, stuck batches, idempotency keys."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from datamill.ids import new_batch_id
from datamill.protocol.batches import BatchStatus
from datamill.storage import batches as batch_repo
from datamill.storage.files import get_file
from datamill.storage.leasing import release_dead_workers
from datamill.storage.records import FileRecord
from datamill.storage.requests import cancel_pending_requests, expire_batch
from datamill.storage.results import record_results
from datamill.storage.schema import DEFAULT_PROJECT_ID, batches, files, projects
from tests.storage.conftest import NOW, make_result

S = BatchStatus


def file_record(file_id: str, *, project_id: str = DEFAULT_PROJECT_ID) -> FileRecord:
    return FileRecord(
        id=file_id,
        project_id=project_id,
        filename=f"{file_id}.jsonl",
        purpose="batch_output",
        bytes=10,
        lines=1,
        sha256=None,
        status="processed",
        created_at=NOW,
        expires_at=None,
    )


async def finish_all(database, batch, *, ok: bool = True) -> None:
    await record_results(
        database,
        [make_result(batch, line, ok=ok) for line in range(batch.record.total_count)],
        now=NOW,
    )


async def test_two_racing_claimers_exactly_one_wins(open_database, database, make_batch):
    batch = await make_batch(2, status=S.validating)
    other = await open_database()

    won = await asyncio.gather(
        *(
            batch_repo.claim_batch(db, batch.id, worker_id=f"w{i}", status=S.validating)
            for i, db in enumerate([database, other] * 4)
        )
    )

    assert sum(won) == 1
    record = await batch_repo.get_batch(database, batch.id)
    assert record.claimed_by == f"w{won.index(True)}"


async def test_released_claims_can_be_taken_again(database, make_batch):
    first = await make_batch(1, status=S.validating)
    second = await make_batch(1, status=S.validating)
    # A claim names the status it expects.
    assert not await batch_repo.claim_batch(database, first.id, worker_id="w", status=S.in_progress)
    for batch in (first, second):
        assert await batch_repo.claim_batch(
            database, batch.id, worker_id="dead", status=S.validating
        )

    await batch_repo.release_claims(database, "dead", batch_id=first.id)
    assert (await batch_repo.get_batch(database, second.id)).claimed_by == "dead"
    await release_dead_workers(database, ["dead"], now=NOW)

    for batch in (first, second):
        assert await batch_repo.claim_batch(
            database, batch.id, worker_id="new", status=S.validating
        )


async def test_start_and_fail_only_move_a_validating_batch(database, make_batch):
    validating = await make_batch(3, status=S.validating)
    assert await batch_repo.fail_batch(
        database, validating.id, errors=[{"code": "invalid_json", "line": 1}], now=NOW + 1
    )
    failed = await batch_repo.get_batch(database, validating.id)
    assert (failed.status, failed.failed_at, failed.errors) == (
        "failed",
        NOW + 1,
        [{"code": "invalid_json", "line": 1}],
    )
    assert not await batch_repo.start_batch(database, validating.id, total=3, model="m", now=NOW)
    assert not await batch_repo.fail_batch(database, validating.id, errors=[], now=NOW)


async def test_a_batch_cancelled_while_validating_keeps_its_count(database, make_batch):
    batch = await make_batch(4, status=S.validating)
    assert await batch_repo.request_cancel(database, batch.id, now=NOW)

    assert not await batch_repo.start_batch(database, batch.id, total=4, model="m", now=NOW)

    record = await batch_repo.get_batch(database, batch.id)
    assert (record.status, record.total_count, record.model) == ("cancelling", 4, "m")


@pytest.mark.parametrize(
    ("closed_for_budget", "stop_reason"), [(True, "budget_exhausted"), (False, None)]
)
async def test_a_batch_whose_requests_were_closed_for_its_budget_finalizes_as_stopped(
    database, make_batch, closed_for_budget, stop_reason
):
    # The worker closed its last requests itself before any sweep marked the batch stopped.
    batch = await make_batch(2)
    code = "budget_exhausted" if closed_for_budget else "server_error"
    closed = make_result(batch, 1, ok=False, status_code=None, error_code=code)
    await record_results(database, [make_result(batch, 0), closed], now=NOW)

    assert await batch_repo.claim_finalization(database, batch.id, worker_id="w", now=NOW)

    record = await batch_repo.get_batch(database, batch.id)
    assert (record.status, record.stop_reason) == ("finalizing", stop_reason)


async def test_claim_finalization_only_when_every_request_has_a_result(database, make_batch):
    batch = await make_batch(3)
    await record_results(database, [make_result(batch, 0), make_result(batch, 1)], now=NOW)
    assert not await batch_repo.claim_finalization(database, batch.id, worker_id="w", now=NOW)
    assert await batch_repo.batches_to_finalize(database) == []

    await record_results(database, [make_result(batch, 2, ok=False)], now=NOW)
    assert await batch_repo.batches_to_finalize(database) == [batch.id]
    assert await batch_repo.claim_finalization(database, batch.id, worker_id="w", now=NOW + 2)
    assert not await batch_repo.claim_finalization(database, batch.id, worker_id="x", now=NOW)

    record = await batch_repo.get_batch(database, batch.id)
    assert (record.status, record.target_status, record.claimed_by) == (
        "finalizing",
        "completed",
        "w",
    )
    assert record.finalizing_at == NOW + 2
    assert await batch_repo.batches_to_finalize(database) == []


async def test_racing_finalizers_exactly_one_wins(open_database, database, make_batch):
    batch = await make_batch(2)
    await finish_all(database, batch)
    other = await open_database()

    won = await asyncio.gather(
        *(
            batch_repo.claim_finalization(db, batch.id, worker_id=f"w{i}", now=NOW)
            for i, db in enumerate([database, other] * 4)
        )
    )

    assert sum(won) == 1


async def test_expired_and_cancelling_batches_keep_their_status_when_claimed(database, make_batch):
    expired = await make_batch(2)
    assert await expire_batch(database, expired.id, now=NOW)
    cancelling = await make_batch(2, status=S.cancelling)
    await cancel_pending_requests(database, cancelling.id, now=NOW)

    for batch, status, target in (
        (expired, "finalizing", "expired"),
        (cancelling, "cancelling", "cancelled"),
    ):
        assert await batch_repo.claim_finalization(database, batch.id, worker_id="w", now=NOW)
        record = await batch_repo.get_batch(database, batch.id)
        assert (record.status, record.target_status, record.claimed_by) == (status, target, "w")


async def test_finish_batch_writes_files_and_target_status(database, make_batch):
    batch = await make_batch(2)
    await finish_all(database, batch)
    assert await batch_repo.claim_finalization(database, batch.id, worker_id="w", now=NOW)

    # Only the claimer finishes.
    assert (
        await batch_repo.finish_batch(
            database, batch.id, worker_id="x", output_file=None, error_file=None, now=NOW
        )
        is None
    )
    status = await batch_repo.finish_batch(
        database,
        batch.id,
        worker_id="w",
        output_file=file_record("file-out"),
        error_file=None,
        now=NOW + 3,
    )

    assert status is S.completed
    record = await batch_repo.get_batch(database, batch.id)
    assert (record.status, record.completed_at, record.claimed_by) == ("completed", NOW + 3, None)
    assert (record.output_file_id, record.error_file_id) == ("file-out", None)
    assert await get_file(database, "file-out", project_id=DEFAULT_PROJECT_ID) == file_record(
        "file-out"
    )


@pytest.mark.parametrize(
    ("how", "status", "stamp"),
    [("expire", S.expired, "expired_at"), ("cancel", S.cancelled, "cancelled_at")],
)
async def test_finish_batch_ends_in_the_target_status(database, make_batch, how, status, stamp):
    batch = await make_batch(2, status=S.in_progress if how == "expire" else S.cancelling)
    if how == "expire":
        await expire_batch(database, batch.id, now=NOW)
    else:
        await cancel_pending_requests(database, batch.id, now=NOW)
    assert await batch_repo.claim_finalization(database, batch.id, worker_id="w", now=NOW)

    assert (
        await batch_repo.finish_batch(
            database,
            batch.id,
            worker_id="w",
            output_file=None,
            error_file=file_record("file-err"),
            now=NOW + 4,
        )
        is status
    )
    record = await batch_repo.get_batch(database, batch.id)
    assert (record.status, getattr(record, stamp), record.error_file_id) == (
        status.value,
        NOW + 4,
        "file-err",
    )


async def test_finish_batch_is_atomic(database, make_batch):
    batch = await make_batch(1)
    await finish_all(database, batch)
    assert await batch_repo.claim_finalization(database, batch.id, worker_id="w", now=NOW)

    # The error file's project does not exist: its row fails after the output row was written.
    with pytest.raises(IntegrityError):
        await batch_repo.finish_batch(
            database,
            batch.id,
            worker_id="w",
            output_file=file_record("file-out"),
            error_file=file_record("file-err", project_id="proj_missing"),
            now=NOW,
        )

    record = await batch_repo.get_batch(database, batch.id)
    assert (record.status, record.claimed_by, record.output_file_id) == ("finalizing", "w", None)
    async with database.read() as conn:
        assert (await conn.execute(select(files.c.id))).all() == []


async def test_cancel_only_from_validating_or_in_progress(database, make_batch):
    for status in S:
        batch = await make_batch(1, status=S.validating)
        async with database.write() as conn:
            await conn.execute(
                batches.update().where(batches.c.id == batch.id).values(status=status.value)
            )

        cancelled = await batch_repo.request_cancel(database, batch.id, now=NOW + 1)

        assert cancelled == (status in {S.validating, S.in_progress}), status
        record = await batch_repo.get_batch(database, batch.id)
        if cancelled:
            assert (record.status, record.target_status, record.cancelling_at) == (
                "cancelling",
                "cancelled",
                NOW + 1,
            )
        else:
            assert (record.status, record.cancelling_at) == (status.value, None)


async def test_stuck_batches(database, make_batch):
    quiet = await make_batch(2, now=NOW)
    busy = await make_batch(2, now=NOW + 100)
    done = await make_batch(1, now=NOW)
    await finish_all(database, done)
    waiting = await make_batch(1, status=S.validating, now=NOW)
    # A recorded result is progress.
    progressing = await make_batch(2, now=NOW)
    await record_results(database, [make_result(progressing, 0)], now=NOW + 100)

    stuck = await batch_repo.stuck_batches(database, now=NOW + 150, stuck_after=60)

    assert [b.id for b in stuck] == [quiet.id]
    # Later everything in progress with work left is stuck; validating and finished never are.
    later = await batch_repo.stuck_batches(database, now=NOW + 1000, stuck_after=60)
    assert [b.id for b in later] == [quiet.id, busy.id, progressing.id]
    assert {waiting.id, done.id}.isdisjoint(b.id for b in later)


async def test_find_batch_by_key_and_the_unique_key(database, make_batch):
    keyed = await make_batch(1, idempotency_key="run-1")
    await make_batch(1)  # batches without a key never collide
    await make_batch(1)

    found = await batch_repo.find_batch_by_key(database, "run-1", project_id=DEFAULT_PROJECT_ID)
    assert (found.id if found else None) == keyed.id
    assert (
        await batch_repo.find_batch_by_key(database, "run-2", project_id=DEFAULT_PROJECT_ID) is None
    )
    assert await batch_repo.find_batch_by_key(database, "run-1", project_id="proj_other") is None

    with pytest.raises(batch_repo.BatchKeyTaken) as taken:
        await make_batch(1, idempotency_key="run-1")
    assert taken.value.key == "run-1"

    # The same key in another project is another batch.
    async with database.write() as conn:
        await conn.execute(projects.insert().values(id="proj_other", name="other", created_at=NOW))
    other = await make_batch(1, idempotency_key="run-1", project_id="proj_other")
    found = await batch_repo.find_batch_by_key(database, "run-1", project_id="proj_other")
    assert (found.id if found else None) == other.id

    # Forgetting the key frees it for a new batch; the old batch stays.
    await batch_repo.forget_batch_key(database, "run-1", project_id=DEFAULT_PROJECT_ID)
    assert (
        await batch_repo.find_batch_by_key(database, "run-1", project_id=DEFAULT_PROJECT_ID) is None
    )
    fresh = await make_batch(1, idempotency_key="run-1")
    assert fresh.id != keyed.id
    assert (await batch_repo.get_batch(database, keyed.id)).idempotency_key is None

    # get_batch with a project finds only that project's batches.
    assert await batch_repo.get_batch(database, fresh.id, project_id="proj_other") is None
    assert await batch_repo.get_batch(database, new_batch_id()) is None
