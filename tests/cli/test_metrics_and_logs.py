"""The scaled mode's metrics and logs, through real processes: `datamill serve --workers 0`
and a `datamill worker --metrics-port --log-format json` on the same store. The batch is
created with ``X-Request-ID: abc-cli``; the worker's JSON lines about it carry that id, and
its metrics port counts the calls it made."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from datamill_testing.mock_process import MockProviderProcess
from tests.cli.conftest import DEADLINE, StartCli, StartServer, free_port
from tests.conftest import mock_deployment, write_config
from tests.helpers import chat_line, jsonl

pytestmark = pytest.mark.slow


def json_lines(text: str) -> list[dict]:
    """The JSON log lines of a process's stderr (the banner is rich text)."""
    return [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]


async def test_a_worker_logs_its_batch_with_the_request_id_and_serves_its_metrics(
    start_server: StartServer,
    start_cli: StartCli,
    mock_provider: MockProviderProcess,
    tmp_path,
):
    write_config(tmp_path / "datamill.toml", [mock_deployment(mock_provider)])
    env = {"DATAMILL_AUTO_DEPLOYMENTS": "false"}
    server = start_server("--workers", "0", "--log-format", "json", env=env)
    port = free_port()
    worker = start_cli("worker", "--metrics-port", str(port), "--log-format", "json", env=env)
    worker.wait_for_output(f"http://127.0.0.1:{port}/metrics")

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        uploaded = await client.post(
            "/v1/files",
            files={"file": ("in.jsonl", jsonl(chat_line(f"r{i}") for i in range(20)))},
            data={"purpose": "batch"},
        )
        created = await client.post(
            "/v1/batches",
            json={
                "input_file_id": uploaded.json()["id"],
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
            headers={"X-Request-ID": "abc-cli"},
        )
        assert created.headers["x-request-id"] == "abc-cli"
        batch_id = created.json()["id"]
        deadline = time.monotonic() + DEADLINE
        while (await client.get(f"/v1/batches/{batch_id}")).json()["status"] != "completed":
            assert time.monotonic() < deadline, worker.stderr
            await asyncio.sleep(0.05)
        scraped = await client.get(f"http://127.0.0.1:{port}/metrics")
        api_metrics = await client.get("/metrics")

    about = [line for line in json_lines(worker.stderr) if batch_id in line["message"]]
    assert any("validated" in line["message"] for line in about), worker.stderr
    assert any("completed" in line["message"] for line in about), worker.stderr
    assert {line.get("request_id") for line in about} == {"abc-cli"}
    assert json_lines(server.process.stderr)  # uvicorn's and datamill's lines, as JSON

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
    }
    ok = (("category", "none"), ("deployment", "mock"), ("outcome", "ok"))
    assert samples[("datamill_calls_total", ok)] == 20
    # The API server made no call, and it is the one that reads the store.
    api = {f.name for f in text_string_to_metric_families(api_metrics.text)}
    assert "datamill_batches" in api
