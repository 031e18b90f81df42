"""Workers killed with SIGKILL, as real processes: the server on SQLite, standalone workers on
PostgreSQL, and two workers sharing one batch. Nothing is lost, nothing is in the files twice,
and the provider redoes at most the calls that were in flight when the process died."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from datamill.engine.worker import WorkerOptions
from datamill.runtime import Runtime
from datamill.settings import load_settings
from datamill_testing.mock_process import MockProviderProcess
from tests.conftest import fresh_postgres_database, write_config
from tests.engine.conftest import assert_each_once, closed_port, wait_until
from tests.helpers import CHAT, chat_line, jsonl, output_lines, submit

pytestmark = pytest.mark.slow

CONCURRENCY = 32
DEADLINE = 180  # seconds for a batch to finish; the machine is shared and slow


class Processes:
    """datamill commands started in their own session, each logging to a file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, *args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self.directory / f"{args[0]}-{len(self.started)}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "datamill.cli.main", *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append((process, log))
        return process

    def logs(self) -> str:
        """The end of every log, for failure messages."""
        return "\n".join(
            f"--- {log.name} (exit {process.poll()})\n" + log.read_text(errors="replace")[-3000:]
            for process, log in self.started
        )

    def stop_all(self) -> None:
        for process, _ in self.started:
            if process.poll() is None:
                process.terminate()
        for process, _ in self.started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL, as a crash or the OOM killer would: no shutdown code runs."""
    process.kill()
    process.wait(timeout=10)


def datamill_env(home: Path, mock: MockProviderProcess, **settings: str) -> dict[str, str]:
    return {
        **os.environ,  # already stripped of DATAMILL_* and provider keys by conftest
        "DATAMILL_HOME": str(home),
        "OPENAI_BASE_URL": mock.base_url,
        "OPENAI_API_KEY": "x",
        "DATAMILL_CONCURRENCY": str(CONCURRENCY),
        "DATAMILL_WORKER_TTL": "2",
        "DATAMILL_HEARTBEAT_INTERVAL": "0.5",
        "DATAMILL_LOG_LEVEL": "info",
        **settings,
    }


def poll(check: Callable[[], bool], *, timeout: float, what: str, logs: Processes) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{logs.logs()}")
        time.sleep(0.05)


def crash_point(mock: MockProviderProcess, recorded: Callable[[], int]) -> tuple[int, int]:
    """(requests the provider had answered, results the store had recorded) at a crash."""
    time.sleep(0.5)  # the provider notices the dropped connections and counts no more
    return mock.stats()["completed_keys"], recorded()


def assert_only_unrecorded_redone(
    mock: MockProviderProcess, n: int, *, answered: int, recorded: int
) -> None:
    """Every request succeeded; the provider ran again only the requests it had answered
    whose results were not recorded yet, and those are never more than the worker's bound on
    requests sent and not recorded (the concurrency plus one commit window)."""
    stats = mock.stats()
    assert stats["completed_keys"] == n
    unrecorded = answered - recorded
    report = f"repeats {stats['ok_repeats']}, answered-but-unrecorded {unrecorded} at the crash"
    print(report)
    assert stats["ok_repeats"] <= unrecorded, report
    assert stats["ok_repeats"] <= WorkerOptions(concurrency=CONCURRENCY).max_unrecorded, report


def recorded_results(home: Path, batch_id: str) -> int:
    """Results in the server's SQLite store, read while no server runs."""
    with contextlib.closing(sqlite3.connect(home / "datamill.db")) as conn:
        query = "SELECT count(*) FROM results WHERE batch_id = ?"
        return int(conn.execute(query, (batch_id,)).fetchone()[0])


def lines_of(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in data.splitlines()]


# -- the server on SQLite ------------------------------------------------------------------


def test_a_killed_server_resumes_its_batch_on_restart(tmp_path, make_mock, processes):
    n = 2000
    mock = make_mock(latency_ms=20)
    home = tmp_path / "serve-home"
    env = datamill_env(home, mock)
    ids = [f"r{i}" for i in range(n)]

    def start_server() -> httpx.Client:
        port = closed_port()
        processes.start("serve", "--port", str(port), env=env)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

        def ready() -> bool:
            try:
                return client.get("/readyz").status_code == 200
            except httpx.TransportError:
                return False

        poll(ready, timeout=60, what="the server to be ready", logs=processes)
        return client

    client = start_server()
    upload = client.post(
        "/v1/files",
        files={"file": ("input.jsonl", jsonl(chat_line(i) for i in ids))},
        data={"purpose": "batch"},
    )
    assert upload.status_code == 200, upload.text
    created = client.post(
        "/v1/batches",
        json={"input_file_id": upload.json()["id"], "endpoint": CHAT, "completion_window": "24h"},
    )
    assert created.status_code == 200, created.text
    batch_id = created.json()["id"]

    def counts() -> dict[str, int]:
        return dict(client.get(f"/v1/batches/{batch_id}").json()["request_counts"])

    poll(lambda: counts()["completed"] >= 200, timeout=60, what="results", logs=processes)
    kill(processes.started[0][0])
    client.close()
    answered, recorded = crash_point(mock, lambda: recorded_results(home, batch_id))
    assert answered < n, "the batch finished before the crash; make it slower"

    client = start_server()

    def terminal() -> bool:
        status = client.get(f"/v1/batches/{batch_id}").json()["status"]
        return status in {"completed", "failed", "expired", "cancelled"}

    poll(terminal, timeout=DEADLINE, what="the batch to finish", logs=processes)
    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "completed", processes.logs()
    assert batch["request_counts"] == {"total": n, "completed": n, "failed": 0}
    outputs = lines_of(client.get(f"/v1/files/{batch['output_file_id']}/content").content)
    assert batch["error_file_id"] is None
    client.close()

    assert_each_once(outputs, [], ids)
    assert_only_unrecorded_redone(mock, n, answered=answered, recorded=recorded)


# -- standalone workers on PostgreSQL ------------------------------------------------------


@pytest.fixture
def postgres_url(postgres_server) -> Iterator[str]:
    url, drop = fresh_postgres_database(postgres_server)
    try:
        yield url
    finally:
        drop()


@pytest.fixture
async def postgres_runtime(postgres_url, tmp_path) -> Any:
    """A runtime on a fresh PostgreSQL database (no workers of its own), and its URL."""
    env = {"DATAMILL_DATABASE_URL": postgres_url, "DATAMILL_HOME": str(tmp_path / "home")}
    runtime = await Runtime.open(load_settings(env, auto_deployments=False))
    try:
        yield runtime, postgres_url
    finally:
        await runtime.close()


async def wait_for_batch(runtime: Runtime, batch_id: str, processes: Processes) -> Any:
    try:
        batch = await runtime.batches.wait(batch_id, timeout=DEADLINE, poll=0.1)
    except TimeoutError:
        pytest.fail(f"the batch did not finish\n{processes.logs()}")
    return (
        batch,
        await output_lines(runtime, batch.output_file_id),
        await output_lines(runtime, batch.error_file_id),
    )


@pytest.mark.postgres
async def test_a_killed_worker_is_taken_over_by_the_next(
    tmp_path, make_mock, processes, postgres_runtime
):
    runtime, url = postgres_runtime
    n = 2000
    mock = make_mock(latency_ms=20)
    env = datamill_env(tmp_path / "worker-home", mock, DATAMILL_DATABASE_URL=url)
    ids = [f"r{i}" for i in range(n)]
    batch = await submit(runtime, jsonl(chat_line(i) for i in ids))

    first = processes.start("worker", env=env)

    async def some_done() -> bool:
        return (await runtime.batches.get(batch.id)).completed_count >= 200

    await wait_until(some_done, timeout=90)
    kill(first)
    await asyncio.sleep(0.5)  # the provider notices the dropped connections
    answered = mock.stats()["completed_keys"]
    recorded = (await runtime.batches.get(batch.id)).finished_count
    assert answered < n, "the batch finished before the crash; make it slower"
    processes.start("worker", env=env)
    batch, outputs, errors = await wait_for_batch(runtime, batch.id, processes)

    assert batch.status == "completed", processes.logs()
    assert (batch.completed_count, batch.failed_count) == (n, 0)
    assert_each_once(outputs, errors, ids)
    assert_only_unrecorded_redone(mock, n, answered=answered, recorded=recorded)
    workers = {w.pid: w for w in await runtime.operations.workers()}
    assert workers[first.pid].status == "dead"


@pytest.mark.postgres
async def test_two_workers_share_a_batch_without_running_a_request_twice(
    tmp_path, make_mock, processes, postgres_runtime
):
    runtime, url = postgres_runtime
    n = 3000
    mock = make_mock(latency_ms=10)
    env = datamill_env(tmp_path / "worker-home", mock, DATAMILL_DATABASE_URL=url)
    ids = [f"r{i}" for i in range(n)]
    processes.start("worker", env=env)
    processes.start("worker", env=env)

    async def both_running() -> bool:
        workers = await runtime.operations.workers(include_stopped=False)
        return len(workers) == 2

    try:
        await wait_until(both_running, timeout=60)
    except TimeoutError:
        pytest.fail(f"the workers did not start\n{processes.logs()}")
    batch = await submit(runtime, jsonl(chat_line(i) for i in ids))
    batch, outputs, errors = await wait_for_batch(runtime, batch.id, processes)

    assert batch.status == "completed", processes.logs()
    assert_each_once(outputs, errors, ids)
    stats = mock.stats()
    assert (stats["total"], stats["completed_keys"], stats["ok_repeats"]) == (n, n, 0)

    # Heartbeats carry each worker's count of recorded results.
    async def all_counted() -> bool:
        return sum(w.completed for w in await runtime.operations.workers()) == n

    await wait_until(all_counted, timeout=30)
    shares = sorted(w.completed for w in await runtime.operations.workers())
    assert len(shares) == 2
    assert shares[0] > 0, f"one worker did all the work: {shares}"


# -- native batch delegation ------------------------------------------------------------------


@pytest.mark.postgres
async def test_a_worker_killed_during_native_delegation_is_taken_over(
    tmp_path, make_mock, processes, postgres_url
):
    url = postgres_url
    n = 500
    # Slow upstream batches: a fortieth of their lines per poll.
    mock = make_mock(batch_polls=40)
    config = write_config(
        tmp_path / "datamill.toml",
        [
            {
                "name": "mock",
                "provider": "openai",
                "base_url": mock.base_url,
                "options": {"batch_max_requests": 100},
            }
        ],
    )
    env = datamill_env(
        tmp_path / "worker-home",
        mock,
        DATAMILL_DATABASE_URL=url,
        DATAMILL_CONFIG=str(config),
        DATAMILL_AUTO_DEPLOYMENTS="false",
        DATAMILL_NATIVE_POLL_INTERVAL="0.1",
    )
    ids = [f"r{i}" for i in range(n)]
    # The API side knows the same deployments as the workers: it refuses native otherwise.
    runtime = await Runtime.open(load_settings(env))
    try:
        await _kill_a_native_worker(runtime, mock, env, ids, processes)
    finally:
        await runtime.close()


async def _kill_a_native_worker(
    runtime: Runtime,
    mock: MockProviderProcess,
    env: dict[str, str],
    ids: list[str],
    processes: Processes,
) -> None:
    n = len(ids)
    batch = await submit(runtime, jsonl(chat_line(i) for i in ids), mode="native")

    first = processes.start("worker", env=env)
    poll(
        lambda: mock.stats()["batch_lines"] >= 50,
        timeout=90,
        what="upstream batches to run",
        logs=processes,
    )
    kill(first)
    assert mock.stats()["batch_lines"] < n, "the batch finished before the crash"
    processes.start("worker", env=env)
    batch, outputs, errors = await wait_for_batch(runtime, batch.id, processes)

    assert batch.status == "completed", processes.logs()
    assert (batch.completed_count, batch.failed_count) == (n, 0)
    assert_each_once(outputs, errors, ids)
    stats = mock.stats()
    # Five upstream batches, each created once (a submit cut off by the kill is found again
    # by its label), each line run once: nothing was sent twice.
    assert (stats["upstream_batches"], stats["batch_lines"], stats["ok_repeats"]) == (5, n, 0)
    workers = {w.pid: w for w in await runtime.operations.workers()}
    assert workers[first.pid].status == "dead"
