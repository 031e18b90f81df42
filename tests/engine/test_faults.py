"""Batches against a real HTTP provider that misbehaves: rate limits, server errors, hangs,
refused connections, a crash and a restart, final errors, an open circuit, cancel, expiry and
stuck leases. Each test checks that every custom_id ends in exactly one file, with the right
error category, and that no request succeeded twice at the provider."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from datamill.engine.validation import validate_batch
from datamill.scheduler.breaker import BreakerState
from tests.conftest import mock_deployment
from tests.engine.conftest import (
    assert_each_once,
    closed_port,
    error_codes,
    wait_until,
)
from tests.helpers import chat_line, jsonl, output_lines, run_batch, running_worker, submit

EMBEDDINGS = "/v1/embeddings"


def chat_batch(n: int) -> tuple[bytes, list[str]]:
    ids = [f"r{i}" for i in range(n)]
    return jsonl(chat_line(custom_id) for custom_id in ids), ids


async def finished(runtime, batch_id: str, *, timeout: float = 90):
    batch = await runtime.batches.wait(batch_id, timeout=timeout, poll=0.05)
    return (
        batch,
        await output_lines(runtime, batch.output_file_id),
        await output_lines(runtime, batch.error_file_id),
    )


# -- retryable failures ----------------------------------------------------------------------


async def test_rate_limited_requests_wait_for_retry_after_and_all_succeed(
    make_runtime, mock_provider
):
    # 10 a second in bursts of 10: most of the 30 get a 429 first. (At rpm=120 the same test
    # passes too, in about 15 s.) A 429 spends no retry, so none ends in the error file.
    mock_provider.control(rpm=600)
    runtime = await make_runtime([mock_deployment(mock_provider)])
    data, ids = chat_batch(30)
    batch, outputs, errors = await run_batch(runtime, data, timeout=90)

    assert batch.status == "completed"
    assert_each_once(outputs, errors, ids)
    assert errors == []
    stats = mock_provider.stats()
    assert stats["by_status"].get("429", 0) > 0
    assert stats["completed_keys"] == 30
    assert stats["ok_repeats"] == 0
    assert runtime.router.handles[0].gate.rate_limited > 0


async def test_server_errors_are_retried_until_success(make_runtime, mock_provider):
    mock_provider.control(fail_next=4)  # below the breaker's threshold of 5
    runtime = await make_runtime([mock_deployment(mock_provider)])
    data, ids = chat_batch(20)
    batch, outputs, errors = await run_batch(runtime, data, timeout=90)

    assert batch.status == "completed"
    assert_each_once(outputs, errors, ids)
    assert errors == []
    stats = mock_provider.stats()
    assert stats["by_status"] == {"200": 20, "500": 4}
    assert stats["ok_repeats"] == 0


async def test_server_errors_past_max_retries_keep_the_upstream_answer(make_runtime, mock_provider):
    mock_provider.control(error_rate=1)
    runtime = await make_runtime([mock_deployment(mock_provider)])
    data, ids = chat_batch(3)
    batch, outputs, errors = await run_batch(runtime, data, timeout=90, max_retries=1)

    assert batch.status == "completed"
    assert (batch.completed_count, batch.failed_count) == (0, 3)
    assert_each_once(outputs, errors, ids)
    assert outputs == []
    for line in errors:
        # The provider answered: its answer is the line's `response`, `error` stays null.
        assert (line["error"], line["datamill_category"]) == (None, "server_error")
        assert (
            line["response"]["body"]["error"]["message"] == "The server had an error (error_rate)."
        )
        assert line["response"]["status_code"] == 500
        assert line["response"]["request_id"].startswith("req_")
        assert line["response"]["body"]["error"]["type"] == "server_error"
    # One call and one retry each, no more.
    assert mock_provider.stats()["by_status"] == {"500": 6}


async def test_hung_calls_time_out(make_runtime, mock_provider):
    mock_provider.control(hang_rate=1, hang_seconds=60)
    runtime = await make_runtime([mock_deployment(mock_provider)])
    data, ids = chat_batch(3)
    batch = await submit(runtime, data, max_retries=1, timeout=0.3)
    async with running_worker(runtime):
        batch, outputs, errors = await finished(runtime, batch.id)

    assert batch.status == "completed"
    assert_each_once(outputs, errors, ids)
    assert error_codes(errors) == {"timeout": 3}
    for line in errors:
        assert line["response"] is None
        assert "in 0.3 s" in line["error"]["message"]
    assert mock_provider.stats()["total"] == 6


async def test_refused_connections_are_connection_errors(make_runtime):
    dead = {
        "name": "dead",
        "provider": "openai",
        "base_url": f"http://127.0.0.1:{closed_port()}/v1",
    }
    runtime = await make_runtime([dead])
    data, ids = chat_batch(3)
    batch, outputs, errors = await run_batch(runtime, data, timeout=90, max_retries=1)

    assert batch.status == "completed"
    assert_each_once(outputs, errors, ids)
    assert error_codes(errors) == {"connection": 3}
    for line in errors:
        assert line["response"] is None
        assert "cannot connect to http://127.0.0.1:" in line["error"]["message"]


async def test_a_provider_that_dies_and_comes_back_loses_nothing(make_runtime, make_mock):
    mock = make_mock(latency_ms=40)
    runtime = await make_runtime([mock_deployment(mock)])
    gate = runtime.router.handles[0].gate
    data, ids = chat_batch(80)
    batch = await submit(runtime, data)
    async with running_worker(runtime, concurrency=4):

        async def some_done() -> bool:
            return (await runtime.batches.get(batch.id)).completed_count >= 10

        async def circuit_open() -> bool:
            return gate.breaker.state is not BreakerState.closed

        await wait_until(some_done)
        first_answers = await partial_outputs(runtime, batch.id)
        await asyncio.to_thread(mock.kill)
        await wait_until(circuit_open)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(mock.restart)
        batch, outputs, errors = await finished(runtime, batch.id)

    assert batch.status == "completed"
    assert_each_once(outputs, errors, ids)
    assert errors == []
    # The restarted mock counts afresh: it completed exactly the requests it answered in the
    # output file, so none answered before the crash was sent again.
    before = answerer(first_answers[0])
    after = [line for line in outputs if answerer(line) != before]
    stats = mock.stats()
    assert stats["ok_repeats"] == 0
    assert stats["completed_keys"] == len(after) > 0
    assert gate.breaker.opens >= 1


async def partial_outputs(runtime, batch_id: str) -> list[dict[str, Any]]:
    _, chunks = await runtime.batches.results(batch_id, ok=True)
    return [orjson.loads(line) for line in b"".join([c async for c in chunks]).splitlines()]


def answerer(line: dict[str, Any]) -> str:
    """Which mock process answered: each one prefixes its answer ids with its own token."""
    return str(line["response"]["body"]["id"]).removeprefix("chatcmpl-")[:8]


# -- final failures --------------------------------------------------------------------------


async def test_auth_and_not_found_are_final(make_runtime, mock_provider):
    runtime = await make_runtime([mock_deployment(mock_provider)])
    lines = [chat_line(f"auth{i}", model="unauthorized") for i in range(3)]
    lines += [chat_line(f"gone{i}", model="missing-model") for i in range(3)]
    lines += [chat_line(f"ok{i}") for i in range(3)]
    batch, outputs, errors = await run_batch(runtime, jsonl(lines), timeout=90)

    assert batch.status == "completed"
    assert_each_once(outputs, errors, [line["custom_id"] for line in lines])
    codes = {line["custom_id"]: line["datamill_category"] for line in errors}
    assert codes == {
        **{f"auth{i}": "auth" for i in range(3)},
        **{f"gone{i}": "not_found" for i in range(3)},
    }
    statuses = {line["response"]["status_code"] for line in errors}
    assert statuses == {401, 404}
    assert mock_provider.stats()["total"] == 9  # none retried


# -- the circuit breaker ---------------------------------------------------------------------


async def test_an_open_circuit_holds_calls_until_the_provider_recovers(make_runtime, mock_provider):
    mock_provider.control(force_status=503)
    runtime = await make_runtime([mock_deployment(mock_provider)])
    gate = runtime.router.handles[0].gate
    data, ids = chat_batch(20)
    batch = await submit(runtime, data)
    async with running_worker(runtime):

        async def circuit_open() -> bool:
            return gate.breaker.state is BreakerState.open

        await wait_until(circuit_open)
        mock_provider.control(force_status=None)
        batch, outputs, errors = await finished(runtime, batch.id)

    assert batch.status == "completed"
    assert_each_once(outputs, errors, ids)
    assert errors == []
    assert gate.breaker.opens >= 1
    assert gate.breaker.state is BreakerState.closed
    stats = mock_provider.stats()
    assert stats["by_status"].get("503", 0) >= 5
    assert stats["ok_repeats"] == 0


async def test_calls_held_by_an_open_circuit_are_not_sent_after_a_cancel(
    make_runtime, mock_provider
):
    mock_provider.control(force_status=503)
    runtime = await make_runtime([mock_deployment(mock_provider)])
    gate = runtime.router.handles[0].gate
    data, ids = chat_batch(20)
    batch = await submit(runtime, data)
    async with running_worker(runtime):

        async def circuit_open() -> bool:
            return gate.breaker.state is BreakerState.open

        await wait_until(circuit_open)
        # Past every retry's backoff (at most 0.5 s) but inside the circuit's 2 s cooldown:
        # the requests now wait in the gate, not in a backoff sleep.
        await asyncio.sleep(1.0)
        assert gate.breaker.state is BreakerState.open
        sent_before_cancel = mock_provider.stats()["total"]
        await runtime.batches.cancel(batch.id)
        # The circuit half-opens after its cooldown: the held calls must end, unsent.
        batch, outputs, errors = await finished(runtime, batch.id)

    assert batch.status == "cancelled"
    assert outputs == []
    assert_each_once(outputs, errors, ids)
    assert error_codes(errors) == {"batch_cancelled": 20}
    assert mock_provider.stats()["total"] == sent_before_cancel


# -- embeddings ------------------------------------------------------------------------------


async def test_an_embeddings_batch_completes(make_runtime, mock_provider):
    runtime = await make_runtime([mock_deployment(mock_provider)])
    ids = [f"e{i}" for i in range(10)]
    lines = [
        {
            "custom_id": custom_id,
            "method": "POST",
            "url": EMBEDDINGS,
            "body": {"model": "mock-embed", "input": f"text {custom_id}"},
        }
        for custom_id in ids
    ]
    batch, outputs, errors = await run_batch(runtime, jsonl(lines), endpoint=EMBEDDINGS)

    assert batch.status == "completed"
    assert_each_once(outputs, errors, ids)
    assert errors == []
    for line in outputs:
        body = line["response"]["body"]
        assert body["object"] == "list"
        assert len(body["data"][0]["embedding"]) == 8
    assert batch.input_tokens > 0


# -- cancel, expiry, stuck batches -----------------------------------------------------------


async def test_cancel_lets_calls_in_flight_finish_and_cancels_the_rest(make_runtime, make_mock):
    mock = make_mock(latency_ms=300)
    runtime = await make_runtime([mock_deployment(mock)])
    data, ids = chat_batch(40)
    batch = await submit(runtime, data)
    async with running_worker(runtime, concurrency=4):

        async def some_done() -> bool:
            return (await runtime.batches.get(batch.id)).completed_count >= 4

        async def pending_cancelled() -> bool:
            return (await runtime.batches.get(batch.id)).failed_count > 0

        await wait_until(some_done)
        cancelling = await runtime.batches.cancel(batch.id)
        await wait_until(pending_cancelled)  # the worker's sweep has seen the cancel
        await asyncio.sleep(0.1)
        sent_after_cancel = mock.stats()["total"]
        batch, outputs, errors = await finished(runtime, batch.id)

    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None
    assert batch.status == "cancelled"
    assert batch.cancelled_at is not None
    assert_each_once(outputs, errors, ids)
    assert (batch.completed_count, batch.failed_count) == (len(outputs), len(errors))
    assert len(outputs) >= 4
    assert errors
    assert error_codes(errors) == {"batch_cancelled": len(errors)}
    for line in errors:
        assert line["response"] is None
        assert "cancelled" in line["error"]["message"]
    stats = mock.stats()
    # Every call sent is in the output file (the ones in flight finished); the requests in
    # the error file were never sent.
    assert stats["total"] == stats["completed_keys"] == len(outputs)
    assert stats["ok_repeats"] == 0
    # Requests leased but still queued for a concurrency slot were not sent after the cancel.
    assert stats["total"] == sent_after_cancel


async def test_expiry_delivers_what_finished_and_expires_the_rest(
    make_runtime, make_mock, offset_clock
):
    mock = make_mock(latency_ms=300)
    runtime = await make_runtime([mock_deployment(mock)], clock=offset_clock)
    data, ids = chat_batch(40)
    batch = await submit(runtime, data)
    async with running_worker(runtime, concurrency=4):

        async def some_done() -> bool:
            return (await runtime.batches.get(batch.id)).completed_count >= 4

        async def unfinished_expired() -> bool:
            return (await runtime.batches.get(batch.id)).failed_count > 0

        await wait_until(some_done)
        offset_clock.jump(25 * 3600)
        await wait_until(unfinished_expired)  # the worker's sweep has seen the expiry
        await asyncio.sleep(0.1)
        sent_after_expiry = mock.stats()["total"]
        batch, outputs, errors = await finished(runtime, batch.id)

    assert batch.status == "expired"
    assert batch.expired_at is not None
    assert batch.expired_at >= batch.expires_at
    assert_each_once(outputs, errors, ids)
    assert len(outputs) >= 4
    assert (batch.completed_count, batch.failed_count) == (len(outputs), len(errors))
    assert errors
    assert error_codes(errors) == {"batch_expired": len(errors)}
    stats = mock.stats()
    assert stats["ok_repeats"] == 0
    # Beyond the delivered requests only the calls in flight at the expiry were sent (their
    # answers came too late and were dropped).
    assert len(outputs) <= stats["total"] <= len(outputs) + 4
    # Answers after the expiry would be dropped: requests queued for a slot were not sent.
    assert stats["total"] == sent_after_expiry


async def test_a_worker_that_slept_past_its_ttl_does_not_resend_its_calls(
    make_runtime, make_mock, offset_clock
):
    # The laptop slept: the worker's own heartbeat is now older than worker_ttl. Its next
    # sweep must not take its own calls in flight away from it and send them again.
    mock = make_mock(latency_ms=300)
    runtime = await make_runtime([mock_deployment(mock)], clock=offset_clock)
    data, ids = chat_batch(24)
    batch = await submit(runtime, data)
    async with running_worker(runtime, concurrency=4):

        async def some_done() -> bool:
            return (await runtime.batches.get(batch.id)).completed_count >= 4

        await wait_until(some_done)
        offset_clock.jump(runtime.settings.worker_ttl + 60)
        batch, outputs, errors = await finished(runtime, batch.id)

    assert batch.status == "completed"
    assert_each_once(outputs, errors, ids)
    stats = mock.stats()
    assert (stats["total"], stats["ok_repeats"]) == (24, 0)


async def test_a_stuck_batch_gets_its_stale_leases_back(make_runtime, mock_provider):
    mock_provider.control(hang_rate=1, hang_seconds=30)
    runtime = await make_runtime([mock_deployment(mock_provider)], stuck_after=0.5)
    data, ids = chat_batch(4)
    batch = await submit(runtime, data, timeout=60)  # calls hang far longer than stuck_after
    async with running_worker(runtime):

        async def listed_stuck() -> bool:
            return any(s.batch.id == batch.id for s in await runtime.operations.stuck_batches())

        async def sent_again() -> bool:
            calls = mock_provider.stats(per_key=True)["per_key"]
            return len(calls) == 4 and min(calls.values()) >= 2

        await wait_until(listed_stuck)
        [stuck] = await runtime.operations.stuck_batches()
        assert stuck.stuck_for >= 0.5
        assert sum(stuck.requests_by_state.values()) == 4
        await wait_until(sent_again)  # the sweep put the leases back and they were re-leased
        mock_provider.control(hang_rate=0)
        batch, outputs, errors = await finished(runtime, batch.id)

    # The old hung calls were re-leased to the same worker: stopping it still ended them all.
    assert [t for t in asyncio.all_tasks() if "Worker._execute" in repr(t.get_coro())] == []
    assert batch.status == "completed"
    assert_each_once(outputs, errors, ids)
    assert errors == []
    assert await runtime.operations.stuck_batches() == []
    assert mock_provider.stats()["ok_repeats"] == 0


# -- a deployment removed between validation and execution -----------------------------------


async def test_a_model_without_deployment_at_execution_is_not_found(make_runtime, mock_provider):
    kept = mock_deployment(mock_provider, name="kept", model="mock-model")
    removed = mock_deployment(mock_provider, name="removed", model="old-model")
    validator = await make_runtime([kept, removed])
    executor = await make_runtime([kept])  # restarted with "removed" taken out of the config
    lines = [chat_line("a"), chat_line("b", model="old-model"), chat_line("c")]
    batch = await submit(validator, jsonl(lines))
    await validate_batch(validator.engine, batch, worker_id="worker_validator")
    assert (await validator.batches.get(batch.id)).status == "in_progress"
    async with running_worker(executor):
        batch, outputs, errors = await finished(executor, batch.id)

    assert batch.status == "completed"
    assert_each_once(outputs, errors, ["a", "b", "c"])
    [error] = errors
    assert (error["custom_id"], error["error"]["code"], error["response"]) == (
        "b",
        "not_found",
        None,
    )
    assert "No deployment serves model 'old-model'" in error["error"]["message"]
    assert mock_provider.stats()["total"] == 2
