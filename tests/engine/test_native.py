"""Native batch delegation against the mock provider's Batch API, on both stores: a native
batch ends with the same files an online one would, through upstream jobs that split, fail in
part or as a whole, expire, are cancelled, and outlive their datamill batch's window. Each test
checks that every custom_id ends in exactly one file line."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import select

from datamill.storage import native_jobs as job_repo
from datamill.storage.schema import results
from tests.conftest import mock_deployment
from tests.engine.conftest import assert_each_once, error_codes, wait_until
from tests.helpers import chat_line, jsonl, output_lines, run_batch, running_worker, submit

POLL = 0.05  # DATAMILL_NATIVE_POLL_INTERVAL in these tests


def chat_batch(n: int, **body: Any) -> tuple[bytes, list[str]]:
    ids = [f"r{i}" for i in range(n)]
    return jsonl(chat_line(custom_id, **body) for custom_id in ids), ids


async def native_runtime(make_runtime, mock, *, clock: Any = None, **deployment: Any):
    return await make_runtime(
        [mock_deployment(mock, **deployment)], native_poll_interval=POLL, clock=clock
    )


async def native_flags(runtime, batch_id: str) -> set[bool]:
    async with runtime.database.read() as conn:
        rows = await conn.execute(select(results.c.native).where(results.c.batch_id == batch_id))
        return {bool(value) for value in rows.scalars()}


async def test_a_native_batch_ends_with_the_lines_an_online_one_would(make_runtime, mock_provider):
    mock_provider.control(batch_polls=3)
    runtime = await native_runtime(make_runtime, mock_provider)
    data, ids = chat_batch(12)

    native, outputs, errors = await run_batch(runtime, data, mode="native")
    stats = mock_provider.stats()
    online, online_outputs, _ = await run_batch(runtime, data)

    assert (native.status, native.mode) == ("completed", "native")
    assert (native.completed_count, native.failed_count) == (12, 0)
    assert_each_once(outputs, errors, ids)
    assert errors == []
    # The lines ran inside one upstream batch: no chat call, each line once.
    assert (stats["upstream_batches"], stats["batch_lines"], stats["total"]) == (1, 12, 0)
    assert stats["ok_repeats"] == 0
    # Same shape, line for line, as the online batch's (ids differ with the batch id).
    assert online.mode == "online"
    for mine, theirs in zip(outputs, online_outputs, strict=True):
        assert mine.keys() == theirs.keys()
        assert mine["custom_id"] == theirs["custom_id"]
        assert mine["response"].keys() == theirs["response"].keys()
        assert mine["response"]["body"].keys() == theirs["response"]["body"].keys()
        assert mine["response"]["body"]["choices"] == theirs["response"]["body"]["choices"]
        assert mine["response"]["request_id"].startswith("req_")
    assert native.input_tokens == online.input_tokens > 0
    assert native.output_tokens == online.output_tokens > 0
    assert await native_flags(runtime, native.id) == {True}
    assert await native_flags(runtime, online.id) == {False}
    [job] = await job_repo.jobs_of_batch(runtime.database, native.id)
    assert (job.state, job.upstream_state, job.request_count) == ("done", "ended", 12)


async def test_a_batch_larger_than_one_upstream_batch_is_split(make_runtime, mock_provider):
    runtime = await native_runtime(make_runtime, mock_provider, options={"batch_max_requests": 4})
    data, ids = chat_batch(10)

    batch, outputs, errors = await run_batch(runtime, data, mode="native")

    assert batch.status == "completed"
    assert_each_once(outputs, errors, ids)
    jobs = await job_repo.jobs_of_batch(runtime.database, batch.id)
    assert sorted(job.request_count for job in jobs) == [2, 4, 4]
    assert len({job.upstream_id for job in jobs}) == 3
    stats = mock_provider.stats()
    assert (stats["upstream_batches"], stats["batch_lines"], stats["ok_repeats"]) == (3, 10, 0)


async def test_only_the_failed_requests_of_an_upstream_batch_are_resubmitted(
    make_runtime, mock_provider
):
    mock_provider.control(batch_fail_lines=3, batch_line_error_status=503)
    runtime = await native_runtime(make_runtime, mock_provider)
    data, ids = chat_batch(10)

    batch, outputs, errors = await run_batch(runtime, data, mode="native", max_retries=2)

    assert (batch.status, batch.completed_count, batch.failed_count) == ("completed", 10, 0)
    assert_each_once(outputs, errors, ids)
    jobs = await job_repo.jobs_of_batch(runtime.database, batch.id)
    assert [job.request_count for job in jobs] == [10, 3]
    stats = mock_provider.stats()
    # The 3 failed lines ran twice upstream, the others once; each succeeded once.
    assert (stats["upstream_batches"], stats["batch_lines"]) == (2, 13)
    assert (stats["completed_keys"], stats["ok_repeats"]) == (10, 0)


async def test_failed_requests_end_in_the_error_file_once_out_of_retries(
    make_runtime, mock_provider
):
    mock_provider.control(batch_fail_lines=2)
    runtime = await native_runtime(make_runtime, mock_provider)
    data, ids = chat_batch(6)
    refused = chat_line("refused", model="reject-me")

    batch, outputs, errors = await run_batch(
        runtime, data + jsonl([refused]), mode="native", max_retries=0
    )

    assert (batch.status, batch.completed_count, batch.failed_count) == ("completed", 4, 3)
    assert_each_once(outputs, errors, [*ids, "refused"])
    assert error_codes(errors) == {"server_error": 2, "bad_request": 1}
    by_id = {line["custom_id"]: line for line in errors}
    # The provider's answer is kept, as online.
    assert by_id["refused"]["response"]["status_code"] == 400
    assert by_id["refused"]["response"]["body"]["error"]["param"] == "model"
    assert mock_provider.stats()["upstream_batches"] == 1
    assert await native_flags(runtime, batch.id) == {True}


async def test_requests_an_expired_upstream_batch_never_ran_are_resubmitted(
    make_runtime, mock_provider
):
    mock_provider.control(batch_expire_next=1, batch_expire_processed=0.25)
    runtime = await native_runtime(make_runtime, mock_provider)
    data, ids = chat_batch(8)

    # No retry at all: requests that never ran spend none.
    batch, outputs, errors = await run_batch(runtime, data, mode="native", max_retries=0)

    assert (batch.status, batch.completed_count) == ("completed", 8)
    assert_each_once(outputs, errors, ids)
    jobs = await job_repo.jobs_of_batch(runtime.database, batch.id)
    assert [(job.request_count, job.upstream_state) for job in jobs] == [(8, "ended"), (6, "ended")]
    stats = mock_provider.stats()
    assert (stats["upstream_batches"], stats["batch_lines"], stats["ok_repeats"]) == (2, 8, 0)


async def test_an_upstream_batch_that_fails_as_a_whole_is_retried(make_runtime, mock_provider):
    mock_provider.control(batch_fail_next=1)
    runtime = await native_runtime(make_runtime, mock_provider)
    data, ids = chat_batch(5)

    batch, outputs, errors = await run_batch(runtime, data, mode="native", max_retries=1)

    assert (batch.status, batch.completed_count) == ("completed", 5)
    assert_each_once(outputs, errors, ids)
    jobs = await job_repo.jobs_of_batch(runtime.database, batch.id)
    assert [job.upstream_state for job in jobs] == ["failed", "ended"]
    assert jobs[0].last_error is not None
    assert "failed on purpose" in jobs[0].last_error


async def test_an_upstream_batch_failing_with_no_retries_left_fails_its_requests(
    make_runtime, mock_provider
):
    mock_provider.control(batch_fail_next=1)
    runtime = await native_runtime(make_runtime, mock_provider)
    data, ids = chat_batch(3)

    batch, outputs, errors = await run_batch(runtime, data, mode="native", max_retries=0)

    assert (batch.status, batch.completed_count, batch.failed_count) == ("completed", 0, 3)
    assert_each_once(outputs, errors, ids)
    assert error_codes(errors) == {"server_error": 3}
    assert "failed on purpose" in errors[0]["error"]["message"]


async def test_cancelling_a_native_batch_keeps_what_came_back(make_runtime, mock_provider):
    mock_provider.control(batch_polls=10)
    runtime = await make_runtime([mock_deployment(mock_provider)], native_poll_interval=0.2)
    data, ids = chat_batch(10)
    batch = await submit(runtime, data, mode="native")

    async with running_worker(runtime):

        async def some_ran() -> bool:
            return mock_provider.stats()["batch_lines"] >= 3

        await wait_until(some_ran, timeout=60)
        await runtime.batches.cancel(batch.id)
        batch = await runtime.batches.wait(batch.id, timeout=60, poll=0.05)

    outputs = await output_lines(runtime, batch.output_file_id)
    errors = await output_lines(runtime, batch.error_file_id)
    ran = mock_provider.stats()["batch_lines"]
    assert batch.status == "cancelled"
    assert_each_once(outputs, errors, ids)
    assert 3 <= len(outputs) == ran < 10  # every line that ran upstream came back
    assert error_codes(errors) == {"batch_cancelled": 10 - ran}
    [job] = await job_repo.jobs_of_batch(runtime.database, batch.id)
    assert (job.upstream_state, job.cancel_requested_at is not None) == ("cancelled", True)


async def test_a_native_batch_whose_window_ends_expires_with_what_came_back(
    make_runtime, mock_provider, offset_clock
):
    mock_provider.control(batch_polls=10)
    runtime = await make_runtime(
        [mock_deployment(mock_provider)], native_poll_interval=0.2, clock=offset_clock
    )
    data, ids = chat_batch(10)
    batch = await submit(runtime, data, mode="native")

    async with running_worker(runtime):

        async def some_ran() -> bool:
            return mock_provider.stats()["batch_lines"] >= 2

        await wait_until(some_ran, timeout=60)
        offset_clock.jump(25 * 3600)
        batch = await runtime.batches.wait(batch.id, timeout=60, poll=0.05)

    outputs = await output_lines(runtime, batch.output_file_id)
    errors = await output_lines(runtime, batch.error_file_id)
    ran = mock_provider.stats()["batch_lines"]
    assert batch.status == "expired"
    assert_each_once(outputs, errors, ids)
    assert len(outputs) == ran < 10
    assert error_codes(errors) == {"batch_expired": 10 - ran}
    assert mock_provider.stats()["upstream_batches"] == 1  # nothing resubmitted after it


async def test_auto_runs_native_when_cheaper_and_online_otherwise(make_runtime, mock_provider):
    priced = {"model": "priced", "input_price": 2.0, "output_price": 8.0}
    runtime = await make_runtime(
        [
            {"name": "priced", "provider": "openai", "base_url": mock_provider.base_url, **priced},
            {
                "name": "free",
                "provider": "openai",
                "base_url": mock_provider.base_url,
                "model": "free",
            },
            {
                "name": "dear",
                "provider": "openai",
                "base_url": mock_provider.base_url,
                "model": "dear",
                "input_price": 1.0,
                "batch_input_price": 2.0,
            },
            {"name": "simulated", "provider": "sim", "model": "simulated"},
        ],
        native_poll_interval=POLL,
    )

    async def mode_of(*models: str) -> tuple[str, dict[str, int]]:
        mock_provider.reset_stats()
        lines = [chat_line(f"q{i}", model=model) for i, model in enumerate(models)]
        batch, outputs, errors = await run_batch(runtime, jsonl(lines), mode="auto")
        assert batch.status == "completed"
        assert_each_once(outputs, errors, [f"q{i}" for i in range(len(models))])
        return batch.mode, mock_provider.stats()

    mode, stats = await mode_of("priced", "priced")
    assert (mode, stats["upstream_batches"], stats["total"]) == ("native", 1, 0)
    # Zero prices: the batch API is not cheaper.
    mode, stats = await mode_of("free")
    assert (mode, stats["upstream_batches"], stats["total"]) == ("online", 0, 1)
    # A batch price above the online one.
    assert (await mode_of("dear"))[0] == "online"
    # One of its deployments has no native batch API.
    assert (await mode_of("priced", "simulated"))[0] == "online"


async def test_native_mode_fails_validation_on_lines_without_a_native_api(
    make_runtime, mock_provider
):
    runtime = await make_runtime(
        [
            mock_deployment(mock_provider, model="mock-model"),
            {"name": "simulated", "provider": "sim", "model": "simulated"},
        ],
        native_poll_interval=POLL,
    )
    lines = [chat_line("a"), chat_line("b", model="simulated"), chat_line("c")]

    batch, outputs, errors = await run_batch(runtime, jsonl(lines), mode="native")

    assert (batch.status, outputs, errors) == ("failed", [], [])
    assert batch.errors is not None
    [error] = batch.errors
    assert (error["line"], error["code"], error["param"]) == (
        2,
        "native_batch_unsupported",
        "body.model",
    )
    assert "'simulated'" in error["message"]
    assert mock_provider.stats()["upstream_batches"] == 0


async def test_a_mode_given_in_metadata_is_used(make_runtime, mock_provider):
    runtime = await native_runtime(make_runtime, mock_provider)
    file = await runtime.files.upload(
        _stream(jsonl([chat_line("a")])), filename="in.jsonl", purpose="batch"
    )
    from datamill.protocol.batches import BatchCreate

    batch = await runtime.batches.create(
        BatchCreate(
            input_file_id=file.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"datamill_mode": "native"},
        )
    )
    async with running_worker(runtime):
        batch = await runtime.batches.wait(batch.id, timeout=60, poll=0.05)

    assert (batch.status, batch.mode) == ("completed", "native")
    assert mock_provider.stats()["upstream_batches"] == 1


async def _stream(data: bytes):
    yield data


async def test_embeddings_run_natively_too(make_runtime, mock_provider):
    runtime = await native_runtime(make_runtime, mock_provider)
    lines = [
        {
            "custom_id": f"e{i}",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "mock-model", "input": f"text {i}"},
        }
        for i in range(3)
    ]

    batch, outputs, errors = await run_batch(
        runtime, jsonl(lines), mode="native", endpoint="/v1/embeddings"
    )

    assert batch.status == "completed"
    assert_each_once(outputs, errors, ["e0", "e1", "e2"])
    assert outputs[0]["response"]["body"]["object"] == "list"
    assert len(orjson.dumps(outputs[0]["response"]["body"]["data"][0]["embedding"])) > 2
