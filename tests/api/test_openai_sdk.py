"""End to end with the official `openai` SDK against `datamill serve` in a subprocess, in front
of the mock provider: what a user of OpenAI's Batch API would run, unchanged."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from datamill_testing.mock_process import MockProviderProcess
from datamill_testing.postgres import TemporaryPostgres
from tests.conftest import ISOLATED_PREFIXES, fresh_postgres_database
from tests.helpers import CHAT, chat_line, jsonl

pytestmark = pytest.mark.slow

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
TERMINAL = {"failed", "completed", "expired", "cancelled"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """`datamill serve` in a child process; its output goes to ``log``."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.url}/v1",
            api_key="anything",
            max_retries=0,
            # Loopback never goes through a proxy, whatever the environment says.
            http_client=openai.DefaultHttpxClient(trust_env=False),
        )

    def stop(self) -> int | None:
        """SIGTERM; the exit code, or None (and a SIGKILL) if it did not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                return None
        return self.process.returncode


def start_server(home: Path, mock: MockProviderProcess, **env: str) -> Server:
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(ISOLATED_PREFIXES)}
    environment.update(
        DATAMILL_HOME=str(home),
        DATAMILL_LOG_LEVEL="warning",
        OPENAI_BASE_URL=mock.base_url,
        OPENAI_API_KEY="x",
        **env,
    )
    log = home / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "datamill.cli.main", "serve", "--port", str(port)],
            cwd=home,  # no stray datamill.toml
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise AssertionError(
                f"datamill serve exited with {process.returncode}:\n{server.output()}"
            )
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1, trust_env=False).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"datamill serve did not answer /healthz:\n{server.output()}")
        time.sleep(0.1)


def stop_cleanly(server: Server) -> None:
    """SIGTERM the server: it shuts down gracefully and exits 0 within STOP_TIMEOUT."""
    code = server.stop()
    assert code is not None, f"datamill serve ignored SIGTERM:\n{server.output()}"
    assert code == 0, f"datamill serve ended with {code} after SIGTERM:\n{server.output()}"


@pytest.fixture(scope="module")
def server(
    shared_mock: MockProviderProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server on SQLite for the module. Few provider calls at once, so that a slow mock
    keeps a batch running long enough to cancel it."""
    running = start_server(tmp_path_factory.mktemp("serve"), shared_mock, DATAMILL_CONCURRENCY="4")
    try:
        yield running
    finally:
        stop_cleanly(running)


@pytest.fixture
def client(server: Server) -> Iterator[openai.OpenAI]:
    with server.client() as sdk:
        yield sdk


def wait_for(client: openai.OpenAI, batch_id: str, done: Any = None, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if done(batch) if done else batch.status in TERMINAL:
            return batch
        assert time.monotonic() < deadline, f"batch not there after {timeout} s: {batch}"
        time.sleep(0.1)


def lines_of(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [orjson.loads(line) for line in client.files.content(file_id).content.splitlines()]


def test_files(client, mock):
    data = jsonl([chat_line("a"), chat_line("b", text="héllo")])

    created = client.files.create(
        file=("input.jsonl", data),
        purpose="batch",
        expires_after={"anchor": "created_at", "seconds": 7200},
    )
    assert created.id.startswith("file-")
    assert created.object == "file"
    assert created.bytes == len(data)
    assert created.filename == "input.jsonl"
    assert created.purpose == "batch"
    assert created.status == "processed"
    assert created.expires_at == created.created_at + 7200

    assert client.files.retrieve(created.id) == created
    assert created.id in {f.id for f in client.files.list(purpose="batch")}
    assert client.files.content(created.id).content == data

    deleted = client.files.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "file", True)
    with pytest.raises(openai.NotFoundError) as raised:
        client.files.retrieve(created.id)
    assert raised.value.status_code == 404
    assert raised.value.body["param"] == "file_id"


def test_batch_end_to_end(client, mock):
    lines = [chat_line(f"r{i}") for i in range(20)] + [chat_line("bad", model="reject-me")]
    file = client.files.create(file=("input.jsonl", jsonl(lines)), purpose="batch")

    batch = client.batches.create(
        input_file_id=file.id,
        endpoint=CHAT,
        completion_window="24h",
        metadata={"job": "sdk", "run": "1"},
        extra_body={"datamill": {"max_retries": 0}},
    )
    assert batch.id.startswith("batch_")
    assert batch.status in {"validating", "in_progress"}
    assert batch.metadata == {"job": "sdk", "run": "1"}

    done = wait_for(client, batch.id)
    assert done.status == "completed", done
    assert done.request_counts.total == 21
    assert done.request_counts.completed == 20
    assert done.request_counts.failed == 1
    assert done.usage.input_tokens > 0
    assert done.usage.total_tokens == done.usage.input_tokens + done.usage.output_tokens
    assert done.in_progress_at is not None
    assert done.finalizing_at is not None
    assert done.completed_at is not None
    outputs = lines_of(client, done.output_file_id)
    errors = lines_of(client, done.error_file_id)
    assert Counter(line["custom_id"] for line in outputs + errors) == Counter(
        line["custom_id"] for line in lines
    )
    assert all(line["response"]["status_code"] == 200 for line in outputs)
    assert [line["custom_id"] for line in errors] == ["bad"]
    assert client.files.retrieve(done.output_file_id).purpose == "batch_output"

    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")
    with pytest.raises(openai.BadRequestError) as raised:
        client.batches.create(input_file_id=file.id, endpoint=CHAT, completion_window="48h")
    assert raised.value.body["param"] == "completion_window"


def test_list_auto_paginates(client, mock):
    file = client.files.create(file=("input.jsonl", jsonl([chat_line("a")])), purpose="batch")
    created = [
        client.batches.create(input_file_id=file.id, endpoint=CHAT, completion_window="24h").id
        for _ in range(5)
    ]

    first_page = client.batches.list(limit=2)
    assert [b.id for b in first_page.data] == created[::-1][:2]
    assert first_page.has_more is True
    every = [b.id for b in client.batches.list(limit=2)]  # follows `after` page by page
    assert every[:5] == created[::-1]
    assert len(every) == len(set(every))
    assert every == [b.id for b in client.batches.list(limit=100)]
    for batch_id in created:
        wait_for(client, batch_id)


def test_cancel_a_running_batch(client, mock):
    mock.control(latency_ms=1500)
    lines = [chat_line(f"r{i}") for i in range(24)]
    file = client.files.create(file=("input.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(input_file_id=file.id, endpoint=CHAT, completion_window="24h")
    wait_for(client, batch.id, lambda b: b.status != "validating")

    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in {"cancelling", "cancelled"}
    assert cancelling.cancelling_at is not None
    assert client.batches.cancel(batch.id).status in {"cancelling", "cancelled"}

    done = wait_for(client, batch.id)
    assert done.status == "cancelled"
    assert done.cancelled_at is not None
    counts = done.request_counts
    assert counts.completed + counts.failed == counts.total == 24
    assert counts.failed > 0
    outputs = lines_of(client, done.output_file_id)
    errors = lines_of(client, done.error_file_id)
    assert Counter(line["custom_id"] for line in outputs + errors) == Counter(
        line["custom_id"] for line in lines
    )
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}

    mock.control(latency_ms=0)
    one = client.files.create(file=("one.jsonl", jsonl([chat_line("one")])), purpose="batch")
    finished = client.batches.create(input_file_id=one.id, endpoint=CHAT, completion_window="24h")
    assert wait_for(client, finished.id).status == "completed"
    with pytest.raises(openai.ConflictError) as raised:
        client.batches.cancel(finished.id)
    assert raised.value.body["code"] == "batch_not_cancellable"


@pytest.mark.postgres
def test_on_postgresql(postgres_server: TemporaryPostgres, shared_mock, mock, tmp_path):
    url, drop = fresh_postgres_database(postgres_server)
    try:
        server = start_server(tmp_path / "pg", shared_mock, DATAMILL_DATABASE_URL=url)
        try:
            with server.client() as client:
                info = httpx.get(f"{server.url}/api/info", trust_env=False).json()
                assert info["store"].startswith("postgresql")
                lines = [chat_line(f"r{i}") for i in range(10)]
                file = client.files.create(file=("input.jsonl", jsonl(lines)), purpose="batch")
                batch = client.batches.create(
                    input_file_id=file.id, endpoint=CHAT, completion_window="24h"
                )
                done = wait_for(client, batch.id)
                assert done.status == "completed"
                assert done.request_counts.completed == 10
                outputs = lines_of(client, done.output_file_id)
                assert sorted(line["custom_id"] for line in outputs) == sorted(
                    line["custom_id"] for line in lines
                )
        finally:
            stop_cleanly(server)
    finally:
        drop()


def test_sigterm_with_requests_in_flight_exits_zero(shared_mock, mock, tmp_path):
    mock.control(latency_ms=300)
    server = start_server(tmp_path / "sigterm", shared_mock)
    try:
        with server.client() as client:
            file = client.files.create(
                file=("input.jsonl", jsonl([chat_line(f"r{i}") for i in range(4)])),
                purpose="batch",
            )
            batch = client.batches.create(
                input_file_id=file.id, endpoint=CHAT, completion_window="24h"
            )
            wait_for(client, batch.id, lambda b: b.status == "in_progress")
    finally:
        stop_cleanly(server)  # the worker drains what is in flight, then the process exits
