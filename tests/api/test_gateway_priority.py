"""Interactive calls go ahead of batch work on a shared deployment: a gateway call is answered
in a few round trips while a batch keeps the deployment's every slot busy."""

from __future__ import annotations

import time

from tests.conftest import mock_deployment
from tests.helpers import chat_line, jsonl, running_worker


async def test_a_gateway_call_does_not_wait_behind_a_batch(make_api, make_mock):
    mock = make_mock(latency_ms=100)
    # Two slots at the deployment: 200 batch calls need 10 s of them.
    api = await make_api([mock_deployment(mock, max_concurrency=2)])
    batch = await api.submit(jsonl(chat_line(f"r{i}") for i in range(200)))

    async with running_worker(api.runtime, concurrency=64):
        await api.wait_for(batch["id"], lambda b: b["request_counts"]["completed"] >= 4)
        gate = api.runtime.router.get("mock").gate
        assert gate.concurrency.held == 2  # every slot taken by the batch, calls waiting
        sent_before = mock.stats()["total"]
        response = await api.client.post(
            "/v1/chat/completions",
            json={"model": "mock-model", "messages": [{"role": "user", "content": "now"}]},
        )
        sent_meanwhile = mock.stats()["total"] - sent_before - 1  # the batch's, not its own
        still_running = (await api.batch(batch["id"]))["status"] == "in_progress"
        await api.client.post(f"/v1/batches/{batch['id']}/cancel")

    assert response.status_code == 200
    assert still_running
    # It went ahead of the batch's queue (about 190 calls): while it waited for a slot and
    # ran, the other slot served a few batch calls, however slow the machine (counted, not
    # timed: at 100 ms a call, each slot serves about one call per call of its own).
    assert sent_meanwhile < 20


async def test_a_wait_at_the_gate_counts_against_the_calls_timeout(make_api, make_mock):
    # The deployment's only slot is held (a wedged call): the gateway's call gives up at its
    # timeout with a clear error, and takes nothing from the gate.
    mock = make_mock()
    api = await make_api([mock_deployment(mock, max_concurrency=1, timeout=0.5)])
    gate = api.runtime.router.get("mock").gate
    held = await gate.acquire(0)
    started = time.monotonic()
    response = await api.client.post(
        "/v1/chat/completions",
        json={"model": "mock-model", "messages": [{"role": "user", "content": "now"}]},
    )
    waited = time.monotonic() - started

    assert response.status_code == 504
    # No upstream answered: no upstream code; datamill's category says what happened.
    assert response.json()["error"]["datamill_category"] == "timeout"
    assert waited < 5.0
    assert mock.stats()["total"] == 0  # never sent
    assert (gate.concurrency.held, gate.concurrency.waiting) == (1, 0)
    gate.release(held, error=None)
