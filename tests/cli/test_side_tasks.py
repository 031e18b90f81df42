"""A critical side task that fails stops the command with its message and exit status 3,
whichever command runs it: `batch run`, `generate`, `datamill worker` and `datamill serve`.

The failure is made in this process (typer's runner), by breaking the result writer: the
worker's critical side task, so the worker stops and the command's supervisor fails."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from datamill.engine.writer import ResultWriter
from tests.cli.conftest import RunCli, write_requests
from tests.cli.test_generate import small_example


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def broken_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(self: ResultWriter) -> None:
        raise OSError("the writer broke")

    monkeypatch.setattr(ResultWriter, "run", broken)


def test_batch_run_stops_when_its_worker_fails(invoke: RunCli, tmp_path: Path, broken_writer: None):
    write_requests(tmp_path / "in.jsonl", 5, model="gpt-4o-mini")  # the built-in sim

    done = invoke("batch", "run", "in.jsonl", "-o", "out.jsonl")

    assert done.code == 3, done.output
    assert "side task 'worker_" in done.output
    assert "stopped: side task 'writer' failed: OSError: the writer broke" in done.output
    assert not (tmp_path / "out.jsonl").exists()


def test_generate_stops_when_its_worker_fails(invoke: RunCli, tmp_path: Path, broken_writer: None):
    small_example(tmp_path / "legal.yaml", topics=1, target={"per_cell": 1})

    done = invoke("generate", "legal.yaml")

    assert done.code == 3, done.output
    assert "stopped: side task 'writer' failed: OSError: the writer broke" in done.output


def test_a_standalone_worker_stops_when_a_critical_side_task_fails(
    invoke: RunCli, broken_writer: None
):
    assert invoke("migrate").code == 0

    done = invoke("worker")

    assert done.code == 3, done.output
    assert "side task 'writer' failed: OSError: the writer broke" in done.output


def test_serve_stops_when_an_in_process_worker_fails(invoke: RunCli, broken_writer: None):
    done = invoke("serve", "--port", str(free_port()), "--workers", "1")

    assert done.code == 3, done.output
    assert "side task 'worker_" in done.output
    assert "stopped: side task 'writer' failed: OSError: the writer broke" in done.output
