"""The generation repository on both stores: quotas never exceeded, even by racing
runners; duplicates give their place back; each answer counts once; one runner per job."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from datamill.storage import datasets as dataset_repo
from datamill.storage import generation as repo
from datamill.storage.database import Database
from datamill.storage.leasing import release_dead_workers
from datamill.storage.samples import NewSample, count_cells
from datamill.storage.schema import DEFAULT_PROJECT_ID
from datamill.storage.workers import declare_dead_workers, mark_stopped, register_worker
from tests.storage.conftest import NOW, OpenDatabase, worker


async def make_job(database: Database, *, target: int, requests: int) -> tuple[str, list[int]]:
    await dataset_repo.insert_dataset(
        database,
        dataset_id="ds_gen",
        project_id=DEFAULT_PROJECT_ID,
        name="gen",
        description=None,
        now=NOW,
    )
    job = await repo.create_job(
        database,
        dataset_name="gen",
        dataset_description=None,
        targets={("law", "qa"): target, ("tax", "qa"): target},
        id="gen_test",
        project_id=DEFAULT_PROJECT_ID,
        name="t",
        status="running",
        spec={},
        spec_hash="h",
        spec_version=1,
        topics=["law", "tax"],
        created_at=NOW,
        updated_at=NOW,
    )
    assert job.dataset_id == "ds_gen"
    issued = [repo.IssuedRequest("law", "qa", "sample", custom_id=f"c{n}") for n in range(requests)]
    await repo.add_batch_requests(database, "gen_test", "batch_x", issued=issued)
    async with database.read() as conn:
        ids = [
            row[0]
            for row in (
                await conn.exec_driver_sql("SELECT id FROM generation_requests ORDER BY id")
            ).all()
        ]
    return "gen_test", ids


def accept(request_id: int, text: str) -> repo.Outcome:
    return repo.Outcome(
        request_id,
        "law",
        "qa",
        "accept",
        cost=0.01,
        sample=NewSample({"q": text}, topic="law", sample_type="qa"),
    )


async def test_racing_runners_never_exceed_a_target(open_database: OpenDatabase):
    first, second = await open_database(), await open_database()
    job_id, ids = await make_job(first, target=5, requests=40)

    async def runner(database: Database, mine: list[int]) -> list[repo.Recorded]:
        done: list[repo.Recorded] = []
        for request_id in mine:  # one transaction per answer: the most interleaving
            done += await repo.record_outcomes(
                database,
                job_id=job_id,
                dataset_id="ds_gen",
                outcomes=[accept(request_id, f"s{request_id}")],
                now=NOW,
            )
        return done

    # Both runners got every answer (a lease taken over mid-flight): each counts once.
    a, b = await asyncio.gather(runner(first, ids), runner(second, list(reversed(ids))))

    results = [r.result for r in a + b]
    assert results.count("accepted") == 5
    assert results.count("surplus") == 35
    assert results.count("stale") == 40
    cells = {(c.topic, c.sample_type): c for c in await repo.list_cells(first, job_id)}
    job = await repo.get_job(first, job_id)
    stored = await count_cells(first, "ds_gen")
    assert cells[("law", "qa")].accepted == 5
    assert cells[("law", "qa")].surplus == 35
    assert cells[("law", "qa")].in_flight == 0
    assert stored == {("law", "qa"): 5}
    assert job is not None
    assert (job.accepted, job.surplus, job.requests) == (5, 35, 40)
    assert abs(job.cost - 0.4) < 1e-9


async def test_duplicates_give_the_place_back_and_rejections_count_by_reason(database: Database):
    job_id, ids = await make_job(database, target=3, requests=6)
    outcomes = [
        accept(ids[0], "same"),
        accept(ids[1], "  SAME "),  # the normalized hash is equal
        repo.Outcome(ids[2], "law", "qa", "reject", reason="schema"),
        repo.Outcome(ids[3], "law", "qa", "reject", reason="schema"),
        repo.Outcome(ids[4], "law", "qa", "judge", candidate={"content": {"q": "x"}}),
        accept(ids[5], "other"),
    ]
    done = await repo.record_outcomes(
        database, job_id=job_id, dataset_id="ds_gen", outcomes=outcomes, now=NOW
    )
    assert [r.result for r in done] == [
        "accepted",
        "duplicate",
        "rejected",
        "rejected",
        "judge",
        "accepted",
    ]
    (cell,) = [c for c in await repo.list_cells(database, job_id) if c.topic == "law"]
    queued = await repo.queued_judgements(database, job_id, 10)
    assert (cell.accepted, cell.duplicates, cell.rejected) == (2, 1, 2)
    assert cell.rejections == {"schema": 2, "duplicate": 1}
    assert cell.in_flight == 1  # the candidate waiting for its judge
    assert [q[3] for q in queued] == [{"content": {"q": "x"}}]


async def test_one_worker_holds_a_job_until_it_is_declared_dead(database: Database):
    job_id, _ = await make_job(database, target=1, requests=0)
    await register_worker(database, worker("r1", at=NOW))
    await register_worker(database, worker("r2", at=NOW + 15))
    assert await repo.claim_job(database, worker_id="r1", now=NOW) is not None
    assert await repo.claim_job(database, worker_id="r2", now=NOW + 5) is None
    assert await repo.claimed_job(database, job_id, worker_id="r1") is not None
    # No timer on the claim: a stale heartbeat frees it only once the worker is declared dead.
    assert await repo.claim_job(database, worker_id="r2", now=NOW + 17) is None
    dead = await declare_dead_workers(database, now=NOW + 17, ttl=10, host="here", caller="r2")
    assert dead == ["r1"]
    assert (await release_dead_workers(database, dead, now=NOW + 17)).generation_jobs == 1
    taken = await repo.claim_job(database, worker_id="r2", now=NOW + 19)
    assert taken is not None
    assert taken.runner == "r2"
    assert await repo.claimed_job(database, job_id, worker_id="r1") is None
    await repo.release_job(database, job_id, worker_id="r2", now=NOW + 25, outcome="stopped")
    runs = await repo.list_runs(database, job_id)
    job = await repo.get_job(database, job_id)
    assert [(r.runner, r.outcome) for r in runs] == [("r1", "lost"), ("r2", "stopped")]
    assert job is not None
    assert job.runner is None
    assert job.elapsed == 6


async def test_a_stopped_workers_job_is_free_at_once_and_its_holder_takes_it_again(
    database: Database,
):
    job_id, _ = await make_job(database, target=1, requests=0)
    for worker_id in ("r1", "r2"):
        await register_worker(database, worker(worker_id, at=NOW))
    assert await repo.claim_job(database, worker_id="r1", now=NOW) is not None
    # Asked for by name, the holder takes its job again (its runner lost the store).
    again = await repo.claim_job(database, worker_id="r1", now=NOW + 1, job_id=job_id)
    assert again is not None
    assert again.runner == "r1"
    assert await repo.claim_job(database, worker_id="r2", now=NOW + 2, job_id=job_id) is None
    # A worker that stopped holding it (its runner could not release it) frees it at once.
    await mark_stopped(database, "r1", now=NOW + 3)
    taken = await repo.claim_job(database, worker_id="r2", now=NOW + 4)
    assert taken is not None
    assert taken.runner == "r2"


async def test_stop_resume_and_finish_a_job(database: Database):
    job_id, _ = await make_job(database, target=2, requests=3)

    assert await repo.stop_job(database, "gen_nope", project_id=DEFAULT_PROJECT_ID, now=NOW) is None
    assert await repo.stop_job(database, job_id, project_id="proj_other", now=NOW) is None
    stop = await repo.stop_job(database, job_id, project_id=DEFAULT_PROJECT_ID, now=NOW + 1)
    assert stop is not None
    assert (stop.stopped, stop.job.status, stop.job.stop_reason) == (True, "stopped", "stopped")
    assert stop.batch_ids == ["batch_x"]  # its open requests' batch, to cancel
    again = await repo.stop_job(database, job_id, project_id=DEFAULT_PROJECT_ID, now=NOW + 2)
    assert again is not None
    assert (again.stopped, again.batch_ids, again.job) == (False, [], stop.job)

    resumed = await repo.resume_job(
        database,
        job_id,
        project_id=DEFAULT_PROJECT_ID,
        budget={"requests": 50},
        resumable=["stopped"],
        now=NOW + 3,
    )
    assert resumed is not None
    assert (resumed.status, resumed.budget_requests, resumed.finished_at) == ("running", 50, None)

    finished = await repo.finish_job(database, job_id, "completed", now=NOW + 4)
    assert finished is not None
    assert (finished.status, finished.finished_at) == ("completed", NOW + 4)
    assert all(cell.in_flight == 0 for cell in await repo.list_cells(database, job_id))
    # Only a running job is finished: a second end changes nothing.
    assert await repo.finish_job(database, job_id, "failed", now=NOW + 5, error="x") == finished


def job_values(job_id: str, key: str | None, dataset: str = "keyed") -> dict[str, Any]:
    return {
        "dataset_name": dataset,
        "dataset_description": None,
        "targets": {("law", "qa"): 1},
        "id": job_id,
        "project_id": DEFAULT_PROJECT_ID,
        "name": "t",
        "status": "running",
        "spec": {},
        "spec_hash": "h",
        "spec_version": 1,
        "topics": ["law"],
        "created_at": NOW,
        "updated_at": NOW,
        "idempotency_key": key,
    }


async def test_jobs_racing_to_create_one_dataset_all_fill_it(database: Database):
    jobs = await asyncio.gather(
        *(repo.create_job(database, **job_values(f"gen_{n}", None, "new")) for n in range(8))
    )

    assert len({job.dataset_id for job in jobs}) == 1
    assert {job.id for job in jobs} == {f"gen_{n}" for n in range(8)}


async def test_a_taken_idempotency_key_is_job_key_taken(database: Database):
    job = job_values
    first = await repo.create_job(database, **job("gen_1", "k"))
    with pytest.raises(repo.JobKeyTaken) as taken:
        await repo.create_job(database, **job("gen_2", "k"))
    assert taken.value.key == "k"
    assert await repo.get_job(database, "gen_2") is None
    assert await repo.find_job_by_key(database, "k", project_id=DEFAULT_PROJECT_ID) == first
    await repo.create_job(database, **job("gen_3", None))
    await repo.create_job(database, **job("gen_4", None))  # no key: no clash
