"""Native batches on Anthropic's Message Batches and Gemini's batch mode, through the engine
against mocks of their APIs: an upstream batch in which some requests fail and others expire
unprocessed, then a second one with only those; every line ends once, as online."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from datamill.engine.native.outcomes import request_key
from datamill.engine.validation import validate_batch
from datamill.storage import native_jobs as job_repo
from datamill.storage.schema import requests
from datamill_testing.mock_process import MockProviderProcess
from tests.engine.conftest import assert_each_once, wait_until
from tests.helpers import chat_line, jsonl, output_lines, running_worker, submit

POLL = 0.05


@pytest.fixture
def mock_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TEST_KEY_PROVIDER", "test-key")
    return "TEST_KEY_PROVIDER"


@pytest.fixture
def anthropic() -> Iterator[MockProviderProcess]:
    with MockProviderProcess(module="datamill_testing.mock_anthropic") as process:
        yield process


@pytest.fixture
def gemini() -> Iterator[MockProviderProcess]:
    with MockProviderProcess(module="datamill_testing.mock_gemini") as process:
        yield process


async def keys_of(runtime, batch_id: str) -> list[str]:
    async with runtime.database.read() as conn:
        ids = await conn.execute(
            select(requests.c.id).where(requests.c.batch_id == batch_id).order_by(requests.c.line)
        )
        return [request_key(request_id) for request_id in ids.scalars()]


async def run_native(runtime, batch, *, first_job_running) -> tuple[Any, list, list]:
    """Run the batch until it ends; ``first_job_running()`` is called once the first upstream
    batch exists (to change the mock's switches for the ones after it)."""

    async def first_submitted() -> bool:
        jobs = await job_repo.jobs_of_batch(runtime.database, batch.id)
        return bool(jobs) and jobs[0].upstream_id is not None

    async with running_worker(runtime):
        await wait_until(first_submitted)
        first_job_running()
        done = await runtime.batches.wait(batch.id, timeout=60, poll=0.05)
    return (
        done,
        await output_lines(runtime, done.output_file_id),
        await output_lines(runtime, done.error_file_id),
    )


async def test_anthropic_message_batches_resubmit_what_failed_or_expired(
    make_runtime, anthropic, mock_key
):
    runtime = await make_runtime(
        [
            {
                "name": "claude",
                "provider": "anthropic",
                "base_url": anthropic.url,
                "api_key_env": mock_key,
                "model": "claude-sonnet-4-5",
                "alias": "claude",
            }
        ],
        native_poll_interval=POLL,
    )
    ids = [f"r{i}" for i in range(12)]
    batch = await submit(runtime, jsonl(chat_line(i, model="claude") for i in ids), mode="native")
    await validate_batch(runtime.engine, batch, worker_id="validator")
    keys = await keys_of(runtime, batch.id)
    anthropic.control(batch_polls=2, batch_errored=keys[:2], batch_expired=keys[2:5])

    done, outputs, errors = await run_native(
        runtime,
        batch,
        first_job_running=lambda: anthropic.control(batch_errored=[], batch_expired=[]),
    )

    assert (done.status, done.completed_count, done.failed_count) == ("completed", 12, 0)
    assert_each_once(outputs, errors, ids)
    jobs = await job_repo.jobs_of_batch(runtime.database, done.id)
    assert [job.request_count for job in jobs] == [12, 5]  # 2 failed + 3 expired, again
    assert {line["response"]["body"]["object"] for line in outputs} == {"chat.completion"}
    assert anthropic.stats()["batches"] == 2


async def test_gemini_batch_mode_resubmits_what_failed_or_expired(make_runtime, gemini, mock_key):
    runtime = await make_runtime(
        [
            {
                "name": "gem",
                "provider": "gemini",
                "base_url": gemini.url,
                "api_key_env": mock_key,
                "model": "gemini-2.5-flash",
                "alias": "gem",
            }
        ],
        native_poll_interval=POLL,
    )
    ids = [f"r{i}" for i in range(12)]
    batch = await submit(runtime, jsonl(chat_line(i, model="gem") for i in ids), mode="native")
    # Every third request fails; the batch expires after running 9 of its 12.
    gemini.control(batch_polls=2, batch_fail_every=3, batch_state="expired", batch_expire_after=9)

    done, outputs, errors = await run_native(
        runtime,
        batch,
        first_job_running=lambda: gemini.control(batch_fail_every=0, batch_state="succeeded"),
    )

    assert (done.status, done.completed_count, done.failed_count) == ("completed", 12, 0)
    assert_each_once(outputs, errors, ids)
    jobs = await job_repo.jobs_of_batch(runtime.database, done.id)
    # 3 of the 9 that ran failed, 3 never ran: 6 go again.
    assert [job.request_count for job in jobs] == [12, 6]
    assert {line["response"]["body"]["object"] for line in outputs} == {"chat.completion"}
