"""`datamill batch submit|status|list|cancel|download` on the store a running server works on.

The server is a real `datamill serve` process; the client commands run in this process
(CliRunner), as they need no process of their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.cli.conftest import (
    RunCli,
    StartServer,
    custom_id_counts,
    read_lines,
    write_requests,
)
from tests.conftest import write_config


def _wait_for(invoke: RunCli, batch_id: str, done: Callable[[dict[str, Any]], bool]) -> Any:
    deadline = time.monotonic() + 60
    while True:
        batch = orjson.loads(invoke("batch", "status", batch_id, "--json").stdout)
        if done(batch):
            return batch
        assert time.monotonic() < deadline, batch
        time.sleep(0.1)


@pytest.mark.slow
def test_submit_wait_status_list_download(
    invoke: RunCli, start_server: StartServer, tmp_path: Path
):
    start_server()
    ids = write_requests(tmp_path / "in.jsonl", 30, rejected={4})
    (tmp_path / "bad.jsonl").write_text('{"custom_id": "x"}\n')

    submitted = invoke("batch", "submit", "in.jsonl", "--wait", "--metadata", "job=nightly")
    batch_id = submitted.stdout.strip()
    status = invoke("batch", "status", batch_id)
    as_json = invoke("batch", "status", batch_id, "--json")
    to_file = invoke("batch", "download", batch_id, "-o", "out.jsonl", "--errors", "err.jsonl")
    to_stdout = invoke("batch", "download", batch_id)
    invalid = invoke("batch", "submit", "bad.jsonl", "--wait")
    listed = invoke("batch", "list")
    unknown = invoke("batch", "status", "batch_nope")
    finished = invoke("batch", "cancel", batch_id)

    assert submitted.code == 1, submitted.stderr  # one request failed
    assert batch_id.startswith("batch_")
    assert "no worker is running" not in submitted.output
    assert f"{batch_id} completed: 29 succeeded, 1 failed of 30" in submitted.output
    assert status.code == 0
    assert f"{batch_id} completed: 29 succeeded, 1 failed of 30" in status.output
    assert "output file file-" in status.output
    batch = orjson.loads(as_json.stdout)
    assert (batch["id"], batch["object"], batch["status"]) == (batch_id, "batch", "completed")
    assert batch["request_counts"] == {"total": 30, "completed": 29, "failed": 1}
    assert batch["metadata"] == {"job": "nightly"}
    assert to_file.code == 0, to_file.stderr
    assert custom_id_counts(tmp_path / "out.jsonl", tmp_path / "err.jsonl") == dict.fromkeys(ids, 1)
    assert [line["custom_id"] for line in read_lines(tmp_path / "err.jsonl")] == ["r4"]
    assert to_stdout.stdout.encode() == (tmp_path / "out.jsonl").read_bytes()
    assert invalid.code == 3
    assert "line 1: [invalid_method]" in invalid.output
    assert listed.code == 0
    header, newest, older = listed.stdout.splitlines()
    assert header.split() == ["id", "status", "endpoint", "done", "failed", "total"]
    assert newest.split()[1] == "failed"
    assert older.split() == [batch_id, "completed", "/v1/chat/completions", "29", "1", "30"]
    assert unknown.code == 3
    assert "No such batch: batch_nope" in unknown.output
    assert finished.code == 3
    assert "is completed and can no longer be cancelled" in finished.output


@pytest.mark.slow
def test_cancel_a_running_batch(invoke: RunCli, start_server: StartServer, tmp_path: Path):
    write_config(
        tmp_path / "datamill.toml",
        # 200 calls two at a time take 20 s: the cancel comes long before, even under load.
        [{"name": "slow", "provider": "sim", "options": {"latency_ms": 200}}],
    )
    start_server(env={"DATAMILL_CONCURRENCY": "2"})
    write_requests(tmp_path / "in.jsonl", 200)

    batch_id = invoke("batch", "submit", "in.jsonl").stdout.strip()
    running = _wait_for(invoke, batch_id, lambda b: b["request_counts"]["completed"] >= 2)
    cancelled = invoke("batch", "cancel", batch_id)
    batch = _wait_for(invoke, batch_id, lambda b: b["status"] == "cancelled")
    downloaded = invoke("batch", "download", batch_id, "-o", "out.jsonl", "--errors", "err.jsonl")
    again = invoke("batch", "cancel", batch_id)

    assert running["status"] == "in_progress"
    assert cancelled.code == 0, cancelled.stderr
    assert f"{batch_id} cancel" in cancelled.output  # cancelling, or already cancelled
    assert batch["status"] == "cancelled"
    assert batch["request_counts"]["failed"] > 100  # most never ran
    assert downloaded.code == 0
    counts = custom_id_counts(tmp_path / "out.jsonl", tmp_path / "err.jsonl")
    assert len(counts) == 200
    assert set(counts.values()) == {1}
    codes = {line["error"]["code"] for line in read_lines(tmp_path / "err.jsonl")}
    assert codes == {"batch_cancelled"}
    assert again.code == 0  # cancelling twice is not an error


def test_submit_without_a_worker_says_how_to_start_one(invoke: RunCli, tmp_path: Path):
    write_requests(tmp_path / "in.jsonl", 2)

    done = invoke("batch", "submit", "in.jsonl")

    assert done.code == 0
    assert done.stdout.strip().startswith("batch_")
    assert "no worker is running" in done.output
    assert "datamill serve" in done.output
    assert "datamill worker" in done.output
    assert "datamill batch run" in done.output


def test_bad_metadata_is_refused_before_anything_is_uploaded(
    invoke: RunCli, tmp_path: Path, isolated_environment: Path
):
    write_requests(tmp_path / "in.jsonl", 2)

    no_value = invoke("batch", "submit", "in.jsonl", "--metadata", "nightly")
    long_key = invoke("batch", "submit", "in.jsonl", "--metadata", "k" * 65 + "=v")

    assert no_value.code == long_key.code == 2
    assert "'nightly' is not key=value" in no_value.output
    assert "is longer than" in long_key.output
    assert not isolated_environment.exists()  # the store was not even opened
