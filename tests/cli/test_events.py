"""The scaled mode's event stream: an API server with no worker of its own, and a batch run by
a `datamill worker` process on the same PostgreSQL, followed live from the server's
`GET /api/events` (the worker's events reach it through NOTIFY)."""

from __future__ import annotations

import httpx
import pytest

from datamill_testing.mock_process import MockProviderProcess
from tests.api.sse import SseReader
from tests.cli.conftest import StartCli, StartServer
from tests.conftest import mock_deployment, write_config
from tests.helpers import chat_line, jsonl

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


async def test_a_separate_worker_s_events_reach_the_api_server(
    start_server: StartServer,
    start_cli: StartCli,
    empty_postgres_url: str,
    mock_provider: MockProviderProcess,
    tmp_path,
):
    mock_provider.control(latency_ms=20)
    write_config(tmp_path / "datamill.toml", [mock_deployment(mock_provider)])
    env = {"DATAMILL_DATABASE_URL": empty_postgres_url, "DATAMILL_AUTO_DEPLOYMENTS": "false"}
    server = start_server("--workers", "0", env=env)  # migrates the empty store

    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as client,
        client.stream("GET", "/api/events") as response,
    ):
        stream = SseReader(response)
        await stream.next()  # subscribed
        worker = start_cli("worker", "--concurrency", "16", env=env)
        uploaded = await client.post(
            "/v1/files",
            files={"file": ("in.jsonl", jsonl(chat_line(f"r{i}") for i in range(200)))},
            data={"purpose": "batch"},
        )
        batch = (
            await client.post(
                "/v1/batches",
                json={
                    "input_file_id": uploaded.json()["id"],
                    "endpoint": "/v1/chat/completions",
                    "completion_window": "24h",
                },
            )
        ).json()
        frames = await stream.until(
            lambda f: f.event == "batch" and f.data["status"] == "completed", timeout=60
        )
        # The worker publishes its deployment's state each second it was active.
        frames += await stream.until(
            lambda f: f.event == "deployment" and f.data["process"]["pid"] == worker.pid
        )

    by_topic: dict[str, list] = {}
    for frame in frames:
        by_topic.setdefault(frame.event, []).append(frame.data)
    workers = [w["worker"] for w in by_topic["worker"]]
    assert any(w["pid"] == worker.pid and w["kind"] == "worker" for w in workers), workers
    statuses = [b["status"] for b in by_topic["batch"] if b["id"] == batch["id"]]
    assert "in_progress" in statuses  # validated by the worker, seen by the server
    assert statuses[-1] == "completed"
    [state] = [d for d in by_topic["deployment"] if d["process"]["pid"] == worker.pid][-1:]
    assert state["name"] == "mock"
    assert state["live"]["calls"] > 0
