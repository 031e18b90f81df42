"""Leasing: the atomic claim of pending requests, giving leases back, the one claim
statement, and releasing every kind of claim a dead worker held."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select, update

import datamill
from datamill.protocol.batches import BatchStatus
from datamill.storage import generation as generation_repo
from datamill.storage.batches import claim_batch
from datamill.storage.leasing import (
    Released,
    claim_rows,
    lease_requests,
    lock_clause,
    recover_stale_leases,
    release_dead_workers,
    release_leases,
    skips_locked,
)
from datamill.storage.native_jobs import claim_jobs
from datamill.storage.results import record_results
from datamill.storage.schema import batches, requests
from datamill.storage.workers import declare_dead_workers, register_worker
from tests.storage.conftest import NOW, WORKER_HOST, make_result, request_rows, worker
from tests.storage.test_generation import make_job
from tests.storage.test_native_jobs import native_batch, new_job


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


async def test_dead_workers_leases_go_back_to_pending(database, make_batch):
    batch = await make_batch(9)
    for owner in ("dead1", "dead2", "alive"):
        await lease_requests(database, batch_id=batch.id, worker_id=owner, limit=3, now=NOW)

    assert (await release_dead_workers(database, [], now=NOW)).requests == 0
    assert (await release_dead_workers(database, ["dead1", "dead2"], now=NOW)).requests == 6

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


async def test_one_call_releases_every_kind_of_claim_a_dead_worker_held(database, make_batch):
    online = await make_batch(4)
    validating = await make_batch(1, status=BatchStatus.validating)
    native = await native_batch(database, make_batch, 2)
    job_id, _ = await make_job(database, target=1, requests=0)
    await register_worker(database, worker("dead", host="elsewhere", at=NOW))
    await register_worker(database, worker("alive", host="elsewhere", at=NOW + 50))
    # "dead" holds one claim of each kind; "alive" holds leases of its own.
    await lease_requests(database, batch_id=online.id, worker_id="dead", limit=2, now=NOW)
    await lease_requests(database, batch_id=online.id, worker_id="alive", limit=2, now=NOW)
    assert await claim_batch(
        database, validating.id, worker_id="dead", status=BatchStatus.validating
    )
    await new_job(database, native, native.request_ids, worker="dead")
    assert await generation_repo.claim_job(database, worker_id="dead", now=NOW) is not None

    dead = await declare_dead_workers(database, now=NOW + 60, ttl=30, host=WORKER_HOST)
    assert dead == ["dead"]
    released = await release_dead_workers(database, dead, now=NOW + 60)

    assert released == Released(requests=2, batches=1, native_jobs=1, generation_jobs=1)
    assert released.total == 5
    rows = await request_rows(database, online.id)
    assert [(rows[line].state, rows[line].lease_owner) for line in range(4)] == [
        ("pending", None),
        ("pending", None),
        ("leased", "alive"),
        ("leased", "alive"),
    ]
    # Each kind is free for the next claimant.
    again = await lease_requests(database, batch_id=online.id, worker_id="alive", limit=9, now=NOW)
    assert [r.line for r in again] == [0, 1]
    assert await claim_batch(
        database, validating.id, worker_id="alive", status=BatchStatus.validating
    )
    [job] = await claim_jobs(database, worker_id="alive", now=NOW + 60, limit=5)
    assert job.batch_id == native.id
    taken = await generation_repo.claim_job(database, worker_id="alive", now=NOW + 61)
    assert taken is not None
    assert taken.id == job_id
    runs = await generation_repo.list_runs(database, job_id)
    assert [(r.runner, r.outcome, r.ended_at) for r in runs] == [
        ("dead", "lost", NOW + 60),
        ("alive", None, None),
    ]
    # Nothing left to release a second time.
    assert await release_dead_workers(database, dead, now=NOW + 62) == Released()


async def test_claim_statements_skip_locked_rows_on_postgresql_only(database):
    """The one place that decides it: PostgreSQL claimers skip what another is claiming."""
    candidates = select(batches.c.id).limit(1)
    statement = claim_rows(
        database.dialect, batches, candidates=candidates, still=[], values={"claimed_by": "w"}
    )
    sql = str(statement.compile(dialect=database.engine.dialect))
    expected = database.dialect == "postgresql"
    assert ("FOR UPDATE SKIP LOCKED" in sql) is expected
    assert skips_locked(database.dialect) is expected
    assert ("SKIP LOCKED" in lock_clause(database.dialect)) is expected


def test_only_the_leasing_module_decides_on_locks():
    package = Path(datamill.__file__).parent
    deciding = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if any(
            word in path.read_text() for word in ("SKIP LOCKED", "with_for_update", "skip_locked")
        )
    )
    assert deciding == ["storage/leasing.py"]
