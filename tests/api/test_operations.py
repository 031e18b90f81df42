"""datamill's operational routes under `/api`, and keeping keys out of every answer and log."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

from tests.conftest import mock_deployment
from tests.helpers import chat_line, jsonl, running_worker


async def test_info_lists_deployments_and_counts(make_api, mock):
    api = await make_api([mock_deployment(mock, rpm=600)])
    async with running_worker(api.runtime):
        batch = await api.submit(jsonl([chat_line("a"), chat_line("b")]))
        await api.wait_for(batch["id"])
        await api.runtime.events.flush()
        info = (await api.client.get("/api/info")).json()

    assert set(info) == {"version", "store", "simulated", "deployments", "counts", "events"}
    assert info["simulated"] is False
    assert info["store"].startswith(("sqlite:", "postgresql"))
    [deployment] = info["deployments"]
    assert deployment["name"] == "mock"
    assert deployment["provider"] == "openai"
    assert deployment["base_url"] == mock.base_url
    assert deployment["passthrough"] is True
    assert deployment["rpm"] == 600
    assert deployment["api_key_set"] is False
    assert deployment["live"]["circuit"] == "closed"
    counts = info["counts"]
    assert counts["files"] == 2  # the input and the output file
    assert counts["batches"]["completed"] == 1
    assert sum(counts["batches"].values()) == 1
    assert set(counts["batches"]) == {
        "validating",
        "failed",
        "in_progress",
        "finalizing",
        "completed",
        "expired",
        "cancelling",
        "cancelled",
    }
    assert counts["live_workers"] == 1
    events = info["events"]
    assert events["written"] >= 3  # the worker's start, the batch created, then done
    assert 1 <= events["writes"] <= events["written"]
    assert events["subscribers"] == 0


async def test_secrets_never_leave_the_process(make_api, mock, monkeypatch, caplog):
    secret = f"sk-datamill-{secrets.token_hex(16)}"
    monkeypatch.setenv("TEST_KEY_MOCK", secret)
    api = await make_api([mock_deployment(mock, api_key_env="TEST_KEY_MOCK")])
    caplog.set_level(logging.DEBUG)

    async with running_worker(api.runtime):
        batch = await api.submit(jsonl([chat_line("a", model="unauthorized"), chat_line("b")]))
        batch = await api.wait_for(batch["id"])
        stuck = await api.client.get("/api/batches/stuck")
        workers = await api.client.get("/api/workers")
        ready = await api.client.get("/readyz")
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 2, "completed": 1, "failed": 1}

    info = await api.client.get("/api/info")
    [deployment] = info.json()["deployments"]
    assert deployment["api_key_set"] is True  # the key is loaded ...
    assert deployment["api_key_env"] == "TEST_KEY_MOCK"  # ... and only its variable is shown
    _, [error] = await api.lines(f"/v1/batches/{batch['id']}/errors")
    assert error["response"]["status_code"] == 401
    assert (error["error"], error["datamill_category"]) == (None, "auth")

    file_id = batch["input_file_id"]
    responses = [stuck, workers, ready, info]
    for method, path in [
        ("GET", "/healthz"),
        ("GET", "/api/workers?include_stopped=true"),
        ("GET", "/openapi.json"),
        ("GET", "/v1/files"),
        ("GET", f"/v1/files/{file_id}"),
        ("GET", f"/v1/files/{file_id}/content"),
        ("GET", f"/v1/files/{batch['output_file_id']}/content"),
        ("GET", f"/v1/files/{batch['error_file_id']}/content"),
        ("GET", "/v1/batches"),
        ("GET", f"/v1/batches/{batch['id']}"),
        ("GET", f"/v1/batches/{batch['id']}/output"),
        ("GET", f"/v1/batches/{batch['id']}/errors"),
        ("POST", f"/v1/batches/{batch['id']}/cancel"),
        ("GET", "/v1/batches/batch_nope"),
        ("GET", "/nowhere"),
    ]:
        responses.append(await api.client.request(method, path))
    for response in responses:
        assert secret not in response.text, response.request.url
        assert secret not in str(response.headers), response.request.url
    assert caplog.records, "the run logged nothing: the check below would prove nothing"
    assert secret not in caplog.text
    for record in caplog.records:
        assert secret not in repr(record.args)


async def test_workers_show_heartbeat_and_counts(make_api, mock):
    api = await make_api([mock_deployment(mock)], heartbeat_interval=0.1)
    async with running_worker(api.runtime) as worker:
        batch = await api.submit(jsonl([chat_line(f"r{i}") for i in range(3)]))
        await api.wait_for(batch["id"])
        deadline = time.monotonic() + 30
        while True:
            response = await api.client.get("/api/workers")
            assert response.status_code == 200
            [seen] = response.json()["data"]
            if seen["completed"] == 3 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert seen["id"] == worker.id
        assert seen["status"] == "running"
        assert seen["alive"] is True
        assert seen["kind"] == "serve"
        assert seen["completed"] == 3
        assert seen["failed"] == 0
        assert seen["last_heartbeat_at"] >= seen["started_at"]
        assert seen["stopped_at"] is None
        assert isinstance(seen["pid"], int)

    stopped = (await api.client.get("/api/workers")).json()["data"]
    assert [(w["id"], w["status"], w["alive"]) for w in stopped] == [(worker.id, "stopped", False)]
    assert stopped[0]["stopped_at"] is not None
    running_only = await api.client.get("/api/workers", params={"include_stopped": "false"})
    assert running_only.json()["data"] == []


async def test_stuck_batches_are_listed(make_api, mock):
    api = await make_api([mock_deployment(mock)], stuck_after=0.5)
    mock.control(hang_rate=1)
    async with running_worker(api.runtime):
        batch = await api.submit(jsonl([chat_line("a"), chat_line("b")]))
        await api.wait_for(batch["id"], lambda b: b["status"] == "in_progress")
        deadline = time.monotonic() + 30
        # Stuck because its calls hang, not because a loaded worker has not sent them yet.
        while mock.stats()["hung"] < 1:
            assert time.monotonic() < deadline, "the worker sent no call"
            await asyncio.sleep(0.05)
        while True:
            stuck = (await api.client.get("/api/batches/stuck")).json()
            if stuck["data"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)

    assert stuck["object"] == "list"
    [item] = stuck["data"]
    assert item["batch"]["id"] == batch["id"]
    assert item["batch"]["status"] == "in_progress"
    assert item["stuck_for_seconds"] >= 0.5
    assert sum(item["requests_by_state"].values()) == 2
    assert "done" not in item["requests_by_state"]
    assert mock.stats()["hung"] >= 1
