"""`--mode` on `batch submit` and `batch run`, and a native `batch run` killed with SIGKILL
while its upstream batch runs: the same command resumes it without resubmitting anything."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from datamill_testing.mock_process import MockProviderProcess
from tests.cli.conftest import CliEnv, RunCli, StartCli, custom_id_counts, write_requests


@pytest.fixture
def mock_env(mock_provider: MockProviderProcess, cli_env: CliEnv) -> MockProviderProcess:
    cli_env.update(
        OPENAI_BASE_URL=mock_provider.base_url,
        OPENAI_API_KEY="sk-test-not-a-key",
        DATAMILL_NATIVE_POLL_INTERVAL="0.1",
    )
    return mock_provider


def modes(batch: dict) -> tuple[str, str]:
    """The Batch object's mode and the mode asked for."""
    return batch["datamill"]["mode"], batch["datamill"]["requested_mode"]


def test_submit_records_the_mode(invoke: RunCli, mock_env: MockProviderProcess, tmp_path: Path):
    write_requests(tmp_path / "in.jsonl", 3)

    submitted = invoke("batch", "submit", "in.jsonl", "--mode", "native")
    batch_id = submitted.stdout.strip()
    shown = invoke("batch", "status", batch_id, "--json")
    bad = invoke("batch", "submit", "in.jsonl", "--mode", "cheap")

    assert submitted.code == 0, submitted.stderr
    assert modes(orjson.loads(shown.stdout)) == ("native", "native")
    assert "mode" in invoke("batch", "status", batch_id).stdout
    assert bad.code == 2
    assert "--mode" in bad.output


@pytest.mark.slow
def test_a_native_run_goes_through_the_batch_api(
    run_cli: RunCli, mock_env: MockProviderProcess, tmp_path: Path
):
    mock_env.control(batch_polls=3)
    ids = write_requests(tmp_path / "in.jsonl", 30, rejected={7})

    done = run_cli("batch", "run", "in.jsonl", "-o", "out.jsonl", "--mode", "native")

    assert done.code == 1, done.stderr  # one refused line
    assert custom_id_counts(tmp_path / "out.jsonl") == dict.fromkeys(ids, 1)
    stats = mock_env.stats()
    assert (stats["upstream_batches"], stats["batch_lines"], stats["total"]) == (1, 30, 0)
    assert "29 succeeded, 1 failed of 30" in done.output


@pytest.mark.slow
def test_a_killed_native_run_resumes_its_upstream_batch(
    run_cli: RunCli,
    start_cli: StartCli,
    mock_env: MockProviderProcess,
    tmp_path: Path,
):
    # Slow upstream: a tenth of the lines per poll, a poll every 0.1 s.
    mock_env.control(batch_polls=40)
    ids = write_requests(tmp_path / "in.jsonl", 200)
    command = ["batch", "run", "in.jsonl", "-o", "out.jsonl", "--mode", "native"]

    crashed = start_cli(*command)
    deadline = time.monotonic() + 60
    while mock_env.stats()["batch_lines"] < 20:
        assert crashed.process.poll() is None, crashed.stderr
        assert time.monotonic() < deadline, crashed.stderr
        time.sleep(0.05)
    crashed.kill()  # SIGKILL while the upstream batch runs

    resumed = run_cli(*command)

    assert resumed.code == 0, resumed.stderr
    assert "resuming" in resumed.output
    assert custom_id_counts(tmp_path / "out.jsonl") == dict.fromkeys(ids, 1)
    stats = mock_env.stats()
    # The job and its upstream id were stored: the resumed run polled the same upstream
    # batch instead of sending anything again.
    assert (stats["upstream_batches"], stats["batch_lines"], stats["ok_repeats"]) == (1, 200, 0)
