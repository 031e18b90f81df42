"""Closing unfinished requests (cancel, expiry) and finding duplicate custom ids."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text

from datamill.protocol.batches import BatchStatus
from datamill.storage import requests as request_repo
from datamill.storage.batches import get_batch
from datamill.storage.leasing import lease_requests
from datamill.storage.requests import (
    DuplicateCustomId,
    cancel_pending_requests,
    count_unfinished,
    duplicate_custom_ids,
    expire_batch,
)
from datamill.storage.results import record_results
from datamill.storage.schema import requests, results
from tests.storage.conftest import NOW, make_result, request_rows


async def result_codes(database, batch_id: str) -> dict[int, str | None]:
    """line -> error code (None for a success) of every recorded result."""
    async with database.read() as conn:
        rows = (
            await conn.execute(
                select(results.c.line, results.c.error_code).where(results.c.batch_id == batch_id)
            )
        ).all()
    return {row.line: row.error_code for row in rows}


async def test_cancel_closes_pending_requests_and_leaves_leased_ones(database, make_batch):
    batch = await make_batch(6)
    await lease_requests(database, batch_id=batch.id, worker_id="w", limit=2, now=NOW)
    await record_results(database, [make_result(batch, 2)], now=NOW)

    assert await cancel_pending_requests(database, batch.id, now=NOW + 5) == 3

    assert await result_codes(database, batch.id) == {
        2: None,
        3: "batch_cancelled",
        4: "batch_cancelled",
        5: "batch_cancelled",
    }
    rows = await request_rows(database, batch.id)
    assert [rows[line].state for line in range(6)] == ["leased"] * 2 + ["done"] * 4
    record = await get_batch(database, batch.id)
    assert (record.completed_count, record.failed_count) == (1, 3)
    assert record.progress_at == NOW + 5

    # The requests in flight finish normally, and a second cancel finds nothing left.
    await record_results(database, [make_result(batch, 0), make_result(batch, 1)], now=NOW)
    assert await cancel_pending_requests(database, batch.id, now=NOW + 6) == 0
    record = await get_batch(database, batch.id)
    assert (record.completed_count, record.failed_count) == (3, 3)
    assert await count_unfinished(database, batch.id) == {"done": 6}


async def test_expiry_closes_pending_and_leased_requests(database, make_batch):
    batch = await make_batch(5)
    leased = await lease_requests(database, batch_id=batch.id, worker_id="w", limit=3, now=NOW)
    await record_results(database, [make_result(batch, leased[0].line)], now=NOW)

    assert await expire_batch(database, batch.id, now=NOW + 9)

    assert await result_codes(database, batch.id) == {
        0: None,
        **dict.fromkeys(range(1, 5), "batch_expired"),
    }
    record = await get_batch(database, batch.id)
    assert (record.status, record.target_status) == ("finalizing", "expired")
    assert record.finalizing_at == NOW + 9
    assert (record.completed_count, record.failed_count) == (1, 4)
    rows = await request_rows(database, batch.id)
    assert {(row.state, row.lease_owner) for row in rows.values()} == {("done", None)}


async def test_a_late_result_for_an_expired_request_is_dropped(database, make_batch):
    batch = await make_batch(2)
    leased = await lease_requests(database, batch_id=batch.id, worker_id="w", limit=2, now=NOW)
    assert await expire_batch(database, batch.id, now=NOW)

    late = await record_results(
        database, [make_result(batch, r.line, tokens=10) for r in leased], now=NOW + 1
    )

    assert (late.accepted, late.duplicates) == (0, 2)
    assert set((await result_codes(database, batch.id)).values()) == {"batch_expired"}
    record = await get_batch(database, batch.id)
    assert (record.completed_count, record.failed_count, record.input_tokens) == (0, 2, 0)


async def test_expire_only_moves_an_in_progress_batch(database, make_batch):
    validating = await make_batch(2, status=BatchStatus.validating)
    cancelling = await make_batch(2, status=BatchStatus.cancelling)
    running = await make_batch(2)
    assert await expire_batch(database, running.id, now=NOW)

    for batch in (validating, cancelling, running):  # running is finalizing by now
        assert not await expire_batch(database, batch.id, now=NOW)
        assert await result_codes(database, batch.id) == (
            {0: "batch_expired", 1: "batch_expired"} if batch is running else {}
        )
    assert (await get_batch(database, running.id)).failed_count == 2


async def test_duplicate_custom_ids(database, make_batch):
    batch = await make_batch(0, status=BatchStatus.validating)
    rows = [(0, "a", b"{}"), (1, "b", b"{}"), (2, "a", b"{}"), (3, "c", b"{}"), (4, "b", b"{}")]
    rows += [(5, "b", b"{}"), (6, "d", b"{}"), (7, "d", b"{}")]
    await request_repo.stage_requests(database, batch.id, rows)
    clean = await make_batch(3, status=BatchStatus.validating)

    found = await duplicate_custom_ids(database, batch.id, limit=10)

    # Ordered by where the duplicate was last seen; the line is the last occurrence.
    assert found == [
        DuplicateCustomId("a", first_line=0, line=2),
        DuplicateCustomId("b", first_line=1, line=5),
        DuplicateCustomId("d", first_line=6, line=7),
    ]
    assert await duplicate_custom_ids(database, batch.id, limit=2) == found[:2]
    assert await duplicate_custom_ids(database, clean.id, limit=10) == []


async def test_clear_requests_removes_rows_and_results(database, make_batch):
    batch = await make_batch(3, status=BatchStatus.validating)
    other = await make_batch(2)
    await record_results(database, [make_result(other, 0)], now=NOW)

    await request_repo.clear_requests(database, batch.id)

    assert await request_rows(database, batch.id) == {}
    assert len(await request_rows(database, other.id)) == 2
    assert await result_codes(database, other.id) == {0: None}


async def wait_for_lock_waiters(database, count: int) -> None:
    """Wait until ``count`` sessions of this PostgreSQL database wait on a lock."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(1000):
        async with database.read() as conn:
            if await conn.scalar(query) >= count:
                return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} sessions never waited on a lock")


async def test_an_expiry_racing_a_flush_does_not_deadlock(open_database, database, make_batch):
    """A flush has inserted its result and not yet counted it when the batch expires."""
    if database.dialect != "postgresql":
        pytest.skip("SQLite has one writer: transactions cannot interleave")
    batch = await make_batch(3)
    await lease_requests(database, batch_id=batch.id, worker_id="w", limit=3, now=NOW)
    recorder, expirer = await open_database(), await open_database()

    # A third session holds request 0's row, so the flush stops between its two steps.
    async with database.engine.connect() as holder:
        transaction = await holder.begin()
        await holder.execute(
            select(requests.c.id)
            .where(requests.c.id == batch.request_ids[0])
            .with_for_update(key_share=True)
        )
        flush = asyncio.create_task(
            record_results(recorder, [make_result(batch, 0, tokens=5)], now=NOW)
        )
        await wait_for_lock_waiters(database, 1)
        expiry = asyncio.create_task(expire_batch(expirer, batch.id, now=NOW + 1))
        await wait_for_lock_waiters(database, 2)
        await transaction.commit()

    outcome, expired = await asyncio.wait_for(asyncio.gather(flush, expiry), 30)

    assert outcome.accepted == 1
    assert expired
    assert await result_codes(database, batch.id) == {
        0: None,
        1: "batch_expired",
        2: "batch_expired",
    }
    record = await get_batch(database, batch.id)
    assert (record.status, record.target_status) == ("finalizing", "expired")
    assert (record.completed_count, record.failed_count, record.input_tokens) == (1, 2, 5)
