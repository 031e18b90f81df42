"""Native jobs: claiming a native batch's requests into a job, claiming jobs, and ending them,
on both stores; online leasing and lease recovery never touch a native batch."""

from __future__ import annotations

import asyncio

from sqlalchemy import select, update

from datamill.storage import native_jobs as job_repo
from datamill.storage.batches import get_batch, request_cancel, stuck_batches
from datamill.storage.leasing import lease_requests, recover_stale_leases, release_dead_workers
from datamill.storage.results import record_results
from datamill.storage.schema import batches, native_jobs, results
from tests.storage.conftest import NOW, make_result, request_rows


async def native_batch(database, make_batch, n=10, **values):
    batch = await make_batch(n, **values)
    async with database.write() as conn:
        await conn.execute(update(batches).where(batches.c.id == batch.id).values(mode="native"))
    return batch


async def new_job(database, batch, ids, *, job_id="njob_1", worker="w1", now=NOW):
    return await job_repo.create_job(
        database,
        job_id=job_id,
        batch_id=batch.id,
        deployment="d",
        request_ids=ids,
        worker_id=worker,
        now=now,
    )


async def job_row(database, job_id):
    async with database.read() as conn:
        return (await conn.execute(select(native_jobs).where(native_jobs.c.id == job_id))).first()


async def test_a_job_takes_the_pending_requests_it_names_once(database, make_batch):
    batch = await native_batch(database, make_batch)
    ids = batch.request_ids

    first = await new_job(database, batch, ids[:6])
    second = await new_job(database, batch, ids[4:], job_id="njob_2", worker="w2")

    assert first == ids[:6]
    assert second == ids[6:]  # the overlap stayed with the first job
    rows = await request_rows(database, batch.id)
    assert {rows[i].native_job_id for i in range(6)} == {"njob_1"}
    assert {rows[i].state for i in range(10)} == {"native"}
    assert {rows[i].attempts for i in range(10)} == {1}
    job = await job_row(database, "njob_1")
    assert (job.state, job.request_count, job.claimed_by, job.attempts) == (
        "submitting",
        6,
        "w1",
        1,
    )


async def test_no_job_is_left_when_nothing_was_pending(database, make_batch):
    batch = await native_batch(database, make_batch, 3)
    await new_job(database, batch, batch.request_ids)

    assert await new_job(database, batch, batch.request_ids, job_id="njob_2") == []
    assert await job_row(database, "njob_2") is None


async def test_only_running_native_batches_give_requests_to_jobs(database, make_batch):
    online = await make_batch(3)
    closing = await native_batch(database, make_batch, 3)
    assert await request_cancel(database, closing.id, now=NOW)

    assert await new_job(database, online, online.request_ids) == []
    assert await new_job(database, closing, closing.request_ids, job_id="njob_2") == []


async def test_online_leasing_and_recovery_never_touch_a_native_batch(database, make_batch):
    batch = await native_batch(database, make_batch, 6)
    await new_job(database, batch, batch.request_ids[:3])

    leased = await lease_requests(database, batch_id=batch.id, worker_id="w", limit=10, now=NOW)
    assert leased == []
    assert (await release_dead_workers(database, ["w1"], now=NOW)).requests == 0
    assert await recover_stale_leases(database, batch_id=batch.id, leased_before=NOW + 1e9) == 0
    rows = await request_rows(database, batch.id)
    assert [rows[i].state for i in range(6)] == ["native"] * 3 + ["pending"] * 3
    # Waiting for the provider's batch API is no sign of a stuck batch.
    assert await stuck_batches(database, now=NOW + 1e6, stuck_after=1) == []


async def test_pending_requests_are_read_in_pages_of_due_rows(database, make_batch):
    batch = await native_batch(database, make_batch, 5)
    async with database.write() as conn:
        await conn.execute(
            update(batches.metadata.tables["requests"])
            .where(batches.metadata.tables["requests"].c.id == batch.request_ids[1])
            .values(not_before=NOW + 60)
        )

    page = await job_repo.pending_requests(database, batch.id, now=NOW, limit=2)
    rest = await job_repo.pending_requests(database, batch.id, now=NOW, after=page[-1].id)

    assert [r.id for r in page] == [batch.request_ids[0], batch.request_ids[2]]
    assert [r.id for r in rest] == batch.request_ids[3:]
    assert page[0].body == b'{"line": 0}'


async def test_upstream_id_is_recorded_only_by_the_claimant(database, make_batch):
    batch = await native_batch(database, make_batch, 2)
    await new_job(database, batch, batch.request_ids)

    assert not await job_repo.record_upstream(
        database, "njob_1", worker_id="w2", upstream_id="up", now=NOW, next_poll_at=NOW + 5
    )
    assert await job_repo.record_upstream(
        database, "njob_1", worker_id="w1", upstream_id="up", now=NOW, next_poll_at=NOW + 5
    )
    job = await job_row(database, "njob_1")
    assert (job.state, job.upstream_id, job.claimed_by, job.next_poll_at) == (
        "running",
        "up",
        None,
        NOW + 5,
    )


async def test_due_jobs_are_claimed_by_one_worker(database, make_batch):
    batch = await native_batch(database, make_batch, 4)
    await new_job(database, batch, batch.request_ids[:2])
    await new_job(database, batch, batch.request_ids[2:], job_id="njob_2")
    for job_id, next_poll in (("njob_1", NOW + 5), ("njob_2", NOW + 500)):
        await job_repo.record_upstream(
            database, job_id, worker_id="w1", upstream_id=job_id, now=NOW, next_poll_at=next_poll
        )

    claims = await asyncio.gather(
        *(job_repo.claim_jobs(database, worker_id=f"w{i}", now=NOW + 10, limit=5) for i in range(4))
    )

    claimed = [job.id for jobs in claims for job in jobs]
    assert claimed == ["njob_1"]  # once, and only the due one
    assert await job_repo.claim_jobs(database, worker_id="w9", now=NOW + 10, limit=5) == []
    # A cancel makes every job of the batch due at once.
    assert await request_cancel(database, batch.id, now=NOW)
    [job] = await job_repo.claim_jobs(database, worker_id="w9", now=NOW + 10, limit=5)
    assert job.id == "njob_2"
    # A live worker keeps the claims its steps hold; the others go back.
    assert await job_repo.release_claims(database, "w9", keep=["njob_2"]) == 0
    # Claims of a dead worker go back.
    assert (await release_dead_workers(database, ["w9"], now=NOW)).native_jobs == 1
    assert (await job_row(database, "njob_2")).claimed_by is None


async def test_finishing_a_job_requeues_its_unfinished_requests(database, make_batch):
    batch = await native_batch(database, make_batch, 4)
    ids = batch.request_ids
    await new_job(database, batch, ids)
    # One result came back; one failure counts toward max_retries; the rest had no outcome.
    await record_results(database, [make_result(batch, 0, native=True)], now=NOW)

    assert await job_repo.finish_job(
        database,
        "njob_1",
        worker_id="w1",
        now=NOW,
        upstream_state="ended",
        counted=[ids[1]],
        not_before=NOW + 7,
    )

    rows = await request_rows(database, batch.id)
    assert [rows[i].state for i in range(4)] == ["done", "pending", "pending", "pending"]
    assert [rows[i].attempts for i in range(4)] == [1, 1, 0, 0]
    assert {rows[i].native_job_id for i in range(1, 4)} == {None}
    assert {rows[i].not_before for i in range(1, 4)} == {NOW + 7}
    job = await job_row(database, "njob_1")
    assert (job.state, job.upstream_state, job.claimed_by) == ("done", "ended", None)
    async with database.read() as conn:
        [native] = (await conn.execute(select(results.c.native))).scalars()
    assert native is True
    # Finishing is done once.
    assert not await job_repo.finish_job(
        database, "njob_1", worker_id="w1", now=NOW, upstream_state="ended"
    )


async def test_finishing_a_job_of_a_closed_batch_closes_its_requests(database, make_batch):
    batch = await native_batch(database, make_batch, 3)
    await new_job(database, batch, batch.request_ids)
    await record_results(database, [make_result(batch, 0)], now=NOW)

    assert await job_repo.finish_job(
        database,
        "njob_1",
        worker_id="w1",
        now=NOW,
        upstream_state="cancelled",
        close_code="batch_cancelled",
        deployment="d",
    )

    record = await get_batch(database, batch.id)
    assert (record.completed_count, record.failed_count) == (1, 2)
    async with database.read() as conn:
        closed = (
            await conn.execute(
                select(results.c.error_code, results.c.deployment, results.c.native).where(
                    results.c.ok.is_(False)
                )
            )
        ).all()
    assert [tuple(row) for row in closed] == [("batch_cancelled", "d", False)] * 2
    assert {row.state for row in (await request_rows(database, batch.id)).values()} == {"done"}


async def test_a_failed_job_counts_a_try_for_each_request(database, make_batch):
    batch = await native_batch(database, make_batch, 2)
    await new_job(database, batch, batch.request_ids)

    await job_repo.finish_job(
        database, "njob_1", worker_id="w1", now=NOW, upstream_state="failed", count_all=True
    )

    rows = await request_rows(database, batch.id)
    assert [(rows[i].state, rows[i].attempts) for i in range(2)] == [("pending", 1)] * 2


async def test_jobs_of_a_batch_and_their_members(database, make_batch):
    batch = await native_batch(database, make_batch, 3)
    await new_job(database, batch, batch.request_ids[:2], now=NOW)
    await new_job(database, batch, batch.request_ids[2:], job_id="njob_2", now=NOW + 1)
    await record_results(database, [make_result(batch, 0)], now=NOW)

    assert [job.id for job in await job_repo.jobs_of_batch(database, batch.id)] == [
        "njob_1",
        "njob_2",
    ]
    members = await job_repo.job_members(database, "njob_1")
    assert list(members) == [batch.request_ids[1]]
    assert (members[batch.request_ids[1]].line, members[batch.request_ids[1]].attempts) == (1, 1)
    [row] = await job_repo.job_requests(database, "njob_1")
    assert row.body == b'{"line": 1}'
