"""Leasing: the atomic claim of pending requests, and giving leases back."""

from __future__ import annotations

import asyncio

from sqlalchemy import update

from datamill.protocol.batches import BatchStatus
from datamill.storage.leasing import (
    lease_requests,
    recover_leases,
    recover_stale_leases,
    release_leases,
)
from datamill.storage.results import record_results
from datamill.storage.schema import requests
from tests.storage.conftest import NOW, make_result, request_rows


async def test_leases_pending_requests_in_id_order(database, make_batch):
    batch = await make_batch(10)

    first = await lease_requests(database, batch_id=batch.id, worker_id="w1", limit=4, now=NOW)
    second = await lease_requests(database, batch_id=batch.id, worker_id="w2", limit=4, now=NOW)

    assert [r.id for r in first] == batch.request_ids[:4]
    assert [r.id for r in second] == batch.request_ids[4:8]
    assert [(r.line, r.custom_id, r.body) for r in first] == [
        (line, f"c{line}", b'{"line": %d}' % line) for line in range(4)
    ]
    assert {r.attempts for r in first + second} == {1}
    rows = await request_rows(database, batch.id)
    assert {line: rows[line].lease_owner for line in range(10)} == {
        **dict.fromkeys(range(4), "w1"),
        **dict.fromkeys(range(4, 8), "w2"),
        **dict.fromkeys(range(8, 10), None),
    }
    assert rows[0].state == "leased"
    assert rows[0].leased_at == NOW
    assert rows[9].state == "pending"


async def test_leases_only_from_in_progress_batches(database, make_batch):
    validating = await make_batch(3, status=BatchStatus.validating)
    cancelling = await make_batch(3, status=BatchStatus.cancelling)
    running = await make_batch(3)

    for batch in (validating, cancelling):
        assert (
            await lease_requests(database, batch_id=batch.id, worker_id="w", limit=5, now=NOW) == []
        )
    leased = await lease_requests(database, batch_id=running.id, worker_id="w", limit=5, now=NOW)
    assert [r.id for r in leased] == running.request_ids
    # Only the named batch: the others kept every row pending.
    assert {row.state for row in (await request_rows(database, validating.id)).values()} == {
        "pending"
    }


async def test_leases_only_pending_rows_whose_not_before_has_passed(database, make_batch):
    batch = await make_batch(4)
    async with database.write() as conn:
        await conn.execute(
            update(requests)
            .where(requests.c.id == batch.request_ids[0])
            .values(not_before=NOW + 30)
        )
        await conn.execute(
            update(requests).where(requests.c.id == batch.request_ids[1]).values(state="done")
        )

    leased = await lease_requests(database, batch_id=batch.id, worker_id="w", limit=10, now=NOW)
    assert [r.id for r in leased] == batch.request_ids[2:]

    later = await lease_requests(database, batch_id=batch.id, worker_id="w", limit=10, now=NOW + 30)
    assert [r.id for r in later] == batch.request_ids[:1]


async def test_each_lease_increments_attempts(database, make_batch):
    batch = await make_batch(2)
    for attempt in (1, 2, 3):
        leased = await lease_requests(database, batch_id=batch.id, worker_id="w", limit=1, now=NOW)
        assert [(r.id, r.attempts) for r in leased] == [(batch.request_ids[0], attempt)]
        assert await release_leases(database, worker_id="w") == 1
    rows = await request_rows(database, batch.id)
    assert (rows[0].attempts, rows[1].attempts) == (3, 0)


async def test_two_racing_leasers_get_disjoint_sets_covering_everything(
    open_database, database, make_batch
):
    batch = await make_batch(300)
    other = await open_database()  # a second connection pool on the same store

    async def leaser(db, worker: str) -> tuple[str, list[int]]:
        got: list[int] = []
        for _ in range(20):
            leased = await lease_requests(db, batch_id=batch.id, worker_id=worker, limit=7, now=NOW)
            got += [r.id for r in leased]
        return worker, got

    outcomes = await asyncio.gather(
        *(
            leaser(db, f"{name}{i}")
            for i in range(3)
            for name, db in (("a", database), ("b", other))
        )
    )

    everything = [request_id for _, got in outcomes for request_id in got]
    assert len(everything) == len(set(everything)), "a request was leased twice"
    # 6 leasers x 20 leases x 7 rows = 840 >= 300: every row was taken, once.
    assert sorted(everything) == batch.request_ids
    owner_of = {request_id: worker for worker, got in outcomes for request_id in got}
    rows = await request_rows(database, batch.id)
    assert {row.id: row.lease_owner for row in rows.values()} == owner_of
    assert {row.attempts for row in rows.values()} == {1}


async def test_release_gives_back_only_the_callers_leases(database, make_batch):
    batch = await make_batch(6)
    mine = await lease_requests(database, batch_id=batch.id, worker_id="me", limit=3, now=NOW)
    theirs = await lease_requests(database, batch_id=batch.id, worker_id="them", limit=3, now=NOW)

    # Someone else's ids, and an id of mine already finished, are left alone.
    await record_results(database, [make_result(batch, mine[0].line)], now=NOW)
    released = await release_leases(
        database, worker_id="me", request_ids=[mine[0].id, mine[1].id, theirs[0].id]
    )
    assert released == 1
    rows = await request_rows(database, batch.id)
    assert [rows[line].state for line in range(6)] == ["done", "pending", "leased"] + ["leased"] * 3
    assert rows[1].lease_owner is None

    assert await release_leases(database, worker_id="me", request_ids=[]) == 0
    assert await release_leases(database, worker_id="me") == 1  # the rest of mine
    rows = await request_rows(database, batch.id)
    assert [rows[line].lease_owner for line in range(6)] == [None] * 3 + ["them"] * 3


async def test_recover_leases_puts_back_what_dead_workers_held(database, make_batch):
    batch = await make_batch(9)
    for worker in ("dead1", "dead2", "alive"):
        await lease_requests(database, batch_id=batch.id, worker_id=worker, limit=3, now=NOW)

    assert await recover_leases(database, worker_ids=[]) == 0
    assert await recover_leases(database, worker_ids=["dead1", "dead2"]) == 6

    rows = await request_rows(database, batch.id)
    assert [rows[line].state for line in range(9)] == ["pending"] * 6 + ["leased"] * 3
    assert {rows[line].lease_owner for line in range(6)} == {None}
    # Recovered rows are leased again, in order, with their attempt counted.
    again = await lease_requests(database, batch_id=batch.id, worker_id="new", limit=10, now=NOW)
    assert [(r.line, r.attempts) for r in again] == [(line, 2) for line in range(6)]


async def test_recover_stale_leases_takes_back_only_old_leases_of_that_batch(database, make_batch):
    batch = await make_batch(4)
    other = await make_batch(2)
    await lease_requests(database, batch_id=batch.id, worker_id="w", limit=2, now=NOW)
    await lease_requests(database, batch_id=batch.id, worker_id="w", limit=2, now=NOW + 100)
    await lease_requests(database, batch_id=other.id, worker_id="w", limit=2, now=NOW)

    assert await recover_stale_leases(database, batch_id=batch.id, leased_before=NOW + 50) == 2

    rows = await request_rows(database, batch.id)
    assert [rows[line].state for line in range(4)] == ["pending", "pending", "leased", "leased"]
    assert {row.state for row in (await request_rows(database, other.id)).values()} == {"leased"}
