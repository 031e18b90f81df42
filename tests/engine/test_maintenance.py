"""The maintenance sweep's take-over: every claim a dead worker held, of every kind, comes
back through the one call (`storage.leasing.release_dead_workers`)."""

from __future__ import annotations

import asyncio
import time

import pytest

from datamill.engine.maintenance import Maintenance
from datamill.protocol.batches import BatchStatus
from datamill.storage import generation as generation_repo
from datamill.storage import leasing
from datamill.storage import workers as worker_repo
from datamill.storage.batches import claim_batch, get_batch
from datamill.storage.native_jobs import jobs_of_batch
from datamill.storage.records import WorkerRecord
from tests.storage.conftest import request_rows, worker
from tests.storage.test_generation import make_job
from tests.storage.test_native_jobs import native_batch, new_job


async def test_a_sweep_releases_everything_a_dead_worker_held_in_one_call(
    make_runtime, database, make_batch, monkeypatch: pytest.MonkeyPatch
):
    runtime = await make_runtime()
    now = time.time()
    online = await make_batch(3, now=now)
    validating = await make_batch(1, status=BatchStatus.validating, now=now)
    native = await native_batch(database, make_batch, 2, now=now)
    job_id, _ = await make_job(database, target=1, requests=0)
    # Silent for longer than DATAMILL_WORKER_TTL, on another host (no pid to check).
    await worker_repo.register_worker(database, worker("dead", host="elsewhere", at=now - 600))
    await leasing.lease_requests(database, batch_id=online.id, worker_id="dead", limit=3, now=now)
    assert await claim_batch(
        database, validating.id, worker_id="dead", status=BatchStatus.validating
    )
    await new_job(database, native, native.request_ids, worker="dead", now=now)
    assert await generation_repo.claim_job(database, worker_id="dead", now=now) is not None

    calls: list[tuple[list[str], leasing.Released]] = []
    release = leasing.release_dead_workers

    async def counted(*args, **kwargs) -> leasing.Released:
        released = await release(*args, **kwargs)
        calls.append((list(args[1]), released))
        return released

    monkeypatch.setattr(leasing, "release_dead_workers", counted)
    sweep = Maintenance(runtime.engine, worker_id="sweeper", batch_ids=frozenset())
    await sweep.sweep()

    assert calls == [(["dead"], leasing.Released(3, 1, 1, 1))]
    rows = await request_rows(database, online.id)
    assert {(row.state, row.lease_owner) for row in rows.values()} == {("pending", None)}
    assert (await get_batch(database, validating.id)).claimed_by is None
    assert [job.claimed_by for job in await jobs_of_batch(database, native.id)] == [None]
    job = await generation_repo.get_job(database, job_id)
    assert job is not None
    assert job.runner is None
    dead: list[WorkerRecord] = await worker_repo.get_workers(database, ["dead"])
    assert [w.status for w in dead] == ["dead"]
    # Declared once: the next sweep has nothing to release.
    await sweep.sweep()
    assert len(calls) == 1


async def test_a_validation_cancelled_by_a_stopping_worker_gives_its_claim_back(
    make_runtime, database, make_batch
):
    runtime = await make_runtime()
    batch = await make_batch(1, status=BatchStatus.validating, now=time.time())
    sweep = Maintenance(runtime.engine, worker_id="stopping", batch_ids=frozenset())
    claimed = asyncio.Event()

    async def validate() -> None:  # claims, then never ends by itself
        assert await claim_batch(
            database, batch.id, worker_id="stopping", status=BatchStatus.validating
        )
        claimed.set()
        await asyncio.Event().wait()

    sweep._spawn("validate", batch.record, validate)
    await claimed.wait()
    sweep.cancel_jobs()
    await sweep.wait_jobs()

    assert (await get_batch(database, batch.id)).claimed_by is None
