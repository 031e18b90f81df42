"""Native delegation with a provider the mock cannot play (`fake_native`), on both stores: a
request the provider cannot express ends alone without sinking its job, and a job whose
worker died between the submit and recording its upstream id is found again (with a lookup)
or resubmitted (without one), each result recorded once either way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datamill.engine.native.jobs import JobSteps
from datamill.engine.validation import validate_batch
from datamill.plugins import DEFAULT_PROVIDERS
from datamill.providers.base import Endpoint, NativeRequest
from datamill.storage import native_jobs as job_repo
from datamill.storage import workers as worker_repo
from datamill.storage.records import WorkerRecord
from tests.engine import fake_native
from tests.engine.conftest import assert_each_once, error_codes, wait_until
from tests.helpers import chat_line, jsonl, output_lines, run_batch, running_worker, submit


@pytest.fixture(autouse=True)
def fake_provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(
        DEFAULT_PROVIDERS, "fakebatch", "tests.engine.fake_native:create_fake_batch_provider"
    )
    fake_native.UPSTREAMS.clear()
    yield
    fake_native.UPSTREAMS.clear()


def fake(**options: object) -> dict[str, object]:
    return {"name": "fake", "provider": "fakebatch", "options": options}


async def test_a_request_the_provider_cannot_express_ends_alone(make_runtime):
    runtime = await make_runtime([fake()], native_poll_interval=0.05)
    lines = [chat_line(f"r{i}") for i in range(8)]
    lines[2] = chat_line("r2", logprobs=True)  # its field table says no: refused before a submit
    lines[5] = chat_line("r5", tools=[{"type": "function"}])  # its submit refuses it
    ids = [f"r{i}" for i in range(8)]

    batch, outputs, errors = await run_batch(runtime, jsonl(lines), mode="native")

    assert (batch.status, batch.completed_count, batch.failed_count) == ("completed", 6, 2)
    assert_each_once(outputs, errors, ids)
    assert error_codes(errors) == {"bad_request": 2}
    by_id = {line["custom_id"]: line["error"]["message"] for line in errors}
    assert "`logprobs` cannot be expressed" in by_id["r2"]
    assert "`tools` cannot be expressed" in by_id["r5"]
    upstream = fake_native.UPSTREAMS["fake"]
    sent = [
        request.key for batch_requests in upstream.batches.values() for request in batch_requests
    ]
    assert len(sent) == len(set(sent)) == 6  # the other six went upstream, once each
    assert upstream.online_calls == 0


async def ghost_submitted(runtime, batch_id: str, *, lookup: bool) -> str:
    """Do what a worker does up to the submit, then die: the job and its requests are
    committed, the upstream has the batch, its id is stored nowhere."""
    now = runtime.clock.now()
    await worker_repo.register_worker(
        runtime.database,
        WorkerRecord(
            id="worker_ghost",
            kind="worker",
            host="another-host",
            pid=1,
            version="0",
            status="running",
            started_at=now - 100,
            heartbeat_at=now - 100,  # long silent: declared dead at the next sweep
            stopped_at=None,
            current_batch_id=None,
            in_flight=0,
            completed=0,
            failed=0,
        ),
    )
    rows = await job_repo.pending_requests(runtime.database, batch_id, now=now)
    claimed = await job_repo.create_job(
        runtime.database,
        job_id="njob_ghost",
        batch_id=batch_id,
        deployment="fake",
        request_ids=[row.id for row in rows],
        worker_id="worker_ghost",
        now=now,
    )
    assert len(claimed) == len(rows)
    api = runtime.router.get("fake").provider.native_batches
    requests = [
        NativeRequest(f"r{row.id}", Endpoint.chat_completions, {"model": "m", "messages": []})
        for row in rows
    ]
    label = "njob_ghost" if lookup else None
    return api._create(requests, label)


@pytest.mark.parametrize("lookup", [True, False], ids=["lookup", "no-lookup"])
async def test_a_job_cut_off_between_submit_and_its_upstream_id_is_recovered(make_runtime, lookup):
    runtime = await make_runtime([fake(lookup=lookup)], native_poll_interval=0.05, worker_ttl=5)
    ids = [f"q{i}" for i in range(5)]
    batch = await submit(runtime, jsonl(chat_line(i, model="m") for i in ids), mode="native")
    await validate_batch(runtime.engine, batch, worker_id="validator")
    first_upstream = await ghost_submitted(runtime, batch.id, lookup=lookup)

    async with running_worker(runtime):
        batch = await runtime.batches.wait(batch.id, timeout=60, poll=0.05)

    outputs = await output_lines(runtime, batch.output_file_id)
    errors = await output_lines(runtime, batch.error_file_id)
    assert (batch.status, batch.completed_count) == ("completed", 5)
    assert_each_once(outputs, errors, ids)
    upstream = fake_native.UPSTREAMS["fake"]
    jobs = await job_repo.jobs_of_batch(runtime.database, batch.id)
    if lookup:
        # Found by its label: adopted, nothing sent twice.
        assert upstream.submits == 1
        assert [(job.id, job.upstream_id) for job in jobs] == [("njob_ghost", first_upstream)]
    else:
        # Nothing tells whether the submit went through: the requests went again, in a new
        # job (the first upstream batch ran them for nothing), and are recorded once.
        assert upstream.submits == 2
        assert [job.upstream_id for job in jobs] == [None, jobs[1].upstream_id]
        assert jobs[0].last_error == "its submitter stopped before it was sent"
        assert jobs[1].upstream_id != first_upstream
    assert all(runs == 1 for runs in upstream.runs.values())


async def test_an_upstream_batch_that_is_gone_is_resubmitted(make_runtime):
    runtime = await make_runtime([fake(vanish=1)], native_poll_interval=0.05)
    ids = [f"q{i}" for i in range(4)]

    batch, outputs, errors = await run_batch(
        runtime, jsonl(chat_line(i, model="m") for i in ids), mode="native", max_retries=1
    )

    assert (batch.status, batch.completed_count) == ("completed", 4)
    assert_each_once(outputs, errors, ids)
    jobs = await job_repo.jobs_of_batch(runtime.database, batch.id)
    assert len(jobs) == 2
    assert jobs[0].last_error is not None
    assert "no batch" in jobs[0].last_error


async def test_a_cancelled_batch_gives_up_on_an_upstream_that_never_stops(
    make_runtime, monkeypatch
):
    monkeypatch.setattr(JobSteps, "close_grace", 0.5)
    runtime = await make_runtime([fake(stuck=True)], native_poll_interval=0.05)
    ids = [f"q{i}" for i in range(3)]
    batch = await submit(runtime, jsonl(chat_line(i, model="m") for i in ids), mode="native")

    async with running_worker(runtime):

        async def submitted() -> bool:
            upstream = fake_native.UPSTREAMS.get("fake")
            return upstream is not None and upstream.polls > 0

        await wait_until(submitted)
        await runtime.batches.cancel(batch.id)
        batch = await runtime.batches.wait(batch.id, timeout=30, poll=0.05)

    outputs = await output_lines(runtime, batch.output_file_id)
    errors = await output_lines(runtime, batch.error_file_id)
    assert batch.status == "cancelled"
    assert_each_once(outputs, errors, ids)
    assert error_codes(errors) == {"batch_cancelled": 3}
    assert fake_native.UPSTREAMS["fake"].cancels == 1  # asked once, then waited
    [job] = await job_repo.jobs_of_batch(runtime.database, batch.id)
    assert job.last_error == "the upstream did not stop in time"
