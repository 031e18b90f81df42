"""`datamill batch run`: a one-shot local run, its exit codes, and resuming after a crash."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest

from datamill.cli.run import local_limits
from datamill.engine.worker import WorkerOptions
from datamill.settings import load_settings
from datamill_testing.mock_process import MockProviderProcess
from tests.cli.conftest import (
    CliEnv,
    RunCli,
    Running,
    StartCli,
    custom_id_counts,
    read_lines,
    write_requests,
)
from tests.conftest import write_config
from tests.helpers import chat_line, jsonl


@pytest.fixture
def mock_env(mock_provider: MockProviderProcess, cli_env: CliEnv) -> MockProviderProcess:
    """The commands of this test talk to the mock provider, as the openai SDK would."""
    cli_env.update(OPENAI_BASE_URL=mock_provider.base_url, OPENAI_API_KEY="sk-test-not-a-key")
    return mock_provider


@pytest.mark.slow
def test_all_succeed_against_the_mock(
    run_cli: RunCli, mock_env: MockProviderProcess, tmp_path: Path
):
    ids = write_requests(tmp_path / "in.jsonl", 40)

    done = run_cli("batch", "run", "in.jsonl", "-o", "out.jsonl")

    assert done.code == 0, done.stderr
    assert custom_id_counts(tmp_path / "out.jsonl") == dict.fromkeys(ids, 1)
    line = read_lines(tmp_path / "out.jsonl")[0]
    assert line["response"]["status_code"] == 200
    assert line["response"]["body"]["choices"][0]["message"]["content"].startswith("mock answer")
    assert line["error"] is None
    assert mock_env.stats()["total"] == 40
    assert "40 succeeded, 0 failed of 40" in done.output


@pytest.mark.slow
def test_some_fail_exit_1_with_failures_in_output_or_errors(
    invoke: RunCli, mock_env: MockProviderProcess, tmp_path: Path
):
    ids = write_requests(tmp_path / "in.jsonl", 30, rejected={3, 17})

    together = invoke("batch", "run", "in.jsonl", "-o", "all.jsonl")
    # Same input: the finished batch is found again, nothing is sent twice.
    split = invoke("batch", "run", "in.jsonl", "-o", "ok.jsonl", "--errors", "failed.jsonl")

    assert together.code == split.code == 1, together.stderr + split.stderr
    assert custom_id_counts(tmp_path / "all.jsonl") == dict.fromkeys(ids, 1)
    failed = read_lines(tmp_path / "failed.jsonl")
    assert sorted(line["custom_id"] for line in failed) == ["r17", "r3"]
    assert {line["datamill_category"] for line in failed} == {"bad_request"}
    assert {line["error"] for line in failed} == {None}
    assert {line["response"]["status_code"] for line in failed} == {400}
    assert custom_id_counts(tmp_path / "ok.jsonl", tmp_path / "failed.jsonl") == dict.fromkeys(
        ids, 1
    )
    assert mock_env.stats()["total"] == 30
    assert "28 succeeded, 2 failed of 30" in split.output


@pytest.mark.slow
def test_a_given_concurrency_is_used_from_the_first_call(
    run_cli: RunCli, mock_env: MockProviderProcess, tmp_path: Path
):
    # Answers slow enough that the first round is still out when the next would be sent: with
    # a slow start (64, doubling per round trip) the provider would never see 100 at once.
    mock_env.control(latency_ms=1500)
    write_requests(tmp_path / "in.jsonl", 100)

    done = run_cli("batch", "run", "in.jsonl", "-o", "out.jsonl", "--concurrency", "100")

    assert done.code == 0, done.stderr
    assert mock_env.stats()["peak_in_flight"] == 100


def test_builtin_sim_with_nothing_configured(invoke: RunCli, tmp_path: Path):
    ids = write_requests(tmp_path / "in.jsonl", 20, rejected={5}, model="gpt-4o-mini")

    done = invoke("batch", "run", "in.jsonl", "-o", "out.jsonl", "--errors", "err.jsonl")

    assert done.code == 1, done.stderr
    assert custom_id_counts(tmp_path / "out.jsonl", tmp_path / "err.jsonl") == dict.fromkeys(ids, 1)
    answer = read_lines(tmp_path / "out.jsonl")[0]["response"]["body"]
    assert answer["model"] == "gpt-4o-mini"
    assert answer["choices"][0]["message"]["content"].startswith("Simulated answer")
    [failed] = read_lines(tmp_path / "err.jsonl")
    assert (failed["custom_id"], failed["datamill_category"]) == ("r5", "bad_request")


def test_invalid_input_exits_3_naming_the_lines(invoke: RunCli, tmp_path: Path):
    (tmp_path / "in.jsonl").write_bytes(
        jsonl(
            [
                chat_line("a"),
                b"{not json",
                {**chat_line("b"), "method": "GET"},
                chat_line("a"),
            ]
        )
    )

    done = invoke("batch", "run", "in.jsonl", "-o", "out.jsonl")

    assert done.code == 3
    assert "failed validation" in done.output
    assert "line 2: [invalid_json_line]" in done.output
    assert "line 3: [invalid_method]" in done.output
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.slow
def test_invalid_configuration_exits_3_naming_the_key(run_cli: RunCli, tmp_path: Path):
    write_requests(tmp_path / "in.jsonl", 2)
    write_config(tmp_path / "datamill.toml", [{"name": "local", "provider": "sim", "rmp": 5}])

    from_file = run_cli("batch", "run", "in.jsonl", "-o", "out.jsonl")
    from_env = run_cli(
        "batch", "run", "in.jsonl", "-o", "out.jsonl", env={"DATAMILL_WORKER_TTL": "soon"}
    )

    assert from_file.code == 3
    assert "deployments.local.rmp: unknown key" in from_file.output
    assert from_env.code == 3
    assert "DATAMILL_WORKER_TTL" in from_env.output
    assert "Traceback" not in from_file.stderr + from_env.stderr


@pytest.mark.slow
def test_options_reach_the_engine(invoke: RunCli, mock_env: MockProviderProcess, tmp_path: Path):
    ids = write_requests(tmp_path / "in.jsonl", 6)
    mock_env.control(hang_rate=1.0, hang_seconds=30)

    done = invoke(
        "batch",
        "run",
        "in.jsonl",
        "-o",
        "out.jsonl",
        "--concurrency",
        "2",
        "--max-retries",
        "0",
        "--timeout",
        "0.3",
    )

    assert done.code == 1, done.stderr
    lines = read_lines(tmp_path / "out.jsonl")
    assert sorted(line["custom_id"] for line in lines) == sorted(ids)
    assert {line["error"]["code"] for line in lines} == {"timeout"}
    stats = mock_env.stats()
    assert stats["total"] == 6  # --max-retries 0: each request was sent once
    assert stats["peak_in_flight"] <= 2  # --concurrency 2


def test_embeddings_endpoint_is_detected_or_given(invoke: RunCli, tmp_path: Path):
    line = {
        "custom_id": "e1",
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": "text-embedding-3-small", "input": "hello"},
    }
    (tmp_path / "in.jsonl").write_bytes(jsonl([line]))

    detected = invoke("batch", "run", "in.jsonl", "-o", "out.jsonl")
    wrong = invoke(
        "batch", "run", "in.jsonl", "-o", "x.jsonl", "--endpoint", "/v1/chat/completions"
    )

    assert detected.code == 0, detected.stderr
    [out] = read_lines(tmp_path / "out.jsonl")
    assert out["response"]["body"]["object"] == "list"
    assert wrong.code == 3
    assert "[invalid_url]" in wrong.output


@pytest.mark.slow
def test_a_finished_run_is_not_sent_again_and_fresh_starts_over(
    invoke: RunCli, mock_env: MockProviderProcess, tmp_path: Path
):
    ids = write_requests(tmp_path / "in.jsonl", 25)

    first = invoke("batch", "run", "in.jsonl", "-o", "first.jsonl")
    again = invoke("batch", "run", "in.jsonl", "-o", "again.jsonl")
    calls_before_fresh = mock_env.stats()["total"]
    fresh = invoke("batch", "run", "in.jsonl", "-o", "fresh.jsonl", "--fresh")

    assert first.code == again.code == fresh.code == 0
    assert calls_before_fresh == 25
    assert (tmp_path / "again.jsonl").read_bytes() == (tmp_path / "first.jsonl").read_bytes()
    assert "already ran" in again.output
    assert mock_env.stats()["total"] == 50
    assert custom_id_counts(tmp_path / "fresh.jsonl") == dict.fromkeys(ids, 1)
    first_batch = read_lines(tmp_path / "first.jsonl")[0]["id"]
    assert read_lines(tmp_path / "fresh.jsonl")[0]["id"] != first_batch


def test_failed_validation_is_checked_again_after_a_config_fix(invoke: RunCli, tmp_path: Path):
    write_requests(tmp_path / "in.jsonl", 3, model="my-model")
    config = tmp_path / "datamill.toml"
    write_config(config, [{"name": "local", "provider": "sim", "model": "other-model"}])

    refused = invoke("batch", "run", "in.jsonl", "-o", "out.jsonl")
    write_config(config, [{"name": "local", "provider": "sim", "model": "my-model"}])
    fixed = invoke("batch", "run", "in.jsonl", "-o", "out.jsonl")

    assert refused.code == 3
    assert "[model_not_found]" in refused.output
    assert fixed.code == 0, fixed.stderr
    assert len(read_lines(tmp_path / "out.jsonl")) == 3


# -- crashes and interruptions --------------------------------------------------------------

CONCURRENCY = 16


def _finished_requests(home: Path) -> int:
    """Results recorded so far, read from the run's SQLite store."""
    try:
        with sqlite3.connect(f"file:{home / 'datamill.db'}?mode=ro", uri=True) as conn:
            row = conn.execute(
                "SELECT COALESCE(SUM(completed_count + failed_count), 0) FROM batches"
            )
            return int(row.fetchone()[0])
    except sqlite3.Error:  # not created yet, or mid-migration
        return 0


def _wait_for_progress(home: Path, at_least: int, process: Running, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while (done := _finished_requests(home)) < at_least:
        assert process.process.poll() is None, f"the run ended early:\n{process.stderr}"
        assert time.monotonic() < deadline, f"no progress:\n{process.stderr}"
        time.sleep(0.05)
    return done


@pytest.mark.slow
def test_resume_after_sigkill_sends_only_what_had_not_finished(
    run_cli: RunCli,
    start_cli: StartCli,
    mock_env: MockProviderProcess,
    tmp_path: Path,
    isolated_environment: Path,
):
    ids = write_requests(tmp_path / "in.jsonl", 2000)
    mock_env.control(latency_ms=30)
    command = ["batch", "run", "in.jsonl", "-o", "out.jsonl", "--concurrency", str(CONCURRENCY)]

    crashed = start_cli(*command)
    _wait_for_progress(isolated_environment, at_least=300, process=crashed)
    crashed.kill()  # SIGKILL: no cleanup, leases and buffered results are lost
    recorded = _finished_requests(isolated_environment)
    sent_before = mock_env.stats(per_key=True)["per_key"]

    resumed = run_cli(*command)

    assert resumed.code == 0, resumed.stderr
    assert "resuming" in resumed.output
    assert custom_id_counts(tmp_path / "out.jsonl") == dict.fromkeys(ids, 1)
    stats = mock_env.stats(per_key=True)
    assert stats["completed_keys"] == 2000
    assert recorded < 2000
    # Whatever was recorded before the kill is never sent again: at most the requests the
    # dead run held (leased, in flight or answered but not yet written) are sent twice.
    repeated = [key for key, calls in stats["per_key"].items() if calls > 1]
    assert len(repeated) <= len(sent_before) - recorded
    # Requests sent and not recorded are bounded (the concurrency plus one commit window):
    # the provider sees at most that many again.
    assert stats["ok_repeats"] <= WorkerOptions(concurrency=CONCURRENCY).max_unrecorded


@pytest.mark.slow
def test_ctrl_c_exits_130_and_the_same_command_resumes(
    run_cli: RunCli,
    start_cli: StartCli,
    mock_env: MockProviderProcess,
    tmp_path: Path,
    isolated_environment: Path,
):
    ids = write_requests(tmp_path / "in.jsonl", 600)
    mock_env.control(latency_ms=30)
    command = ["batch", "run", "in.jsonl", "-o", "out.jsonl", "--concurrency", str(CONCURRENCY)]

    interrupted = start_cli(*command)
    _wait_for_progress(isolated_environment, at_least=50, process=interrupted)
    interrupted.signal(signal.SIGINT)
    stopped = interrupted.wait()
    sent_before = mock_env.stats()["total"]
    wrote_output = (tmp_path / "out.jsonl").exists()

    resumed = run_cli(*command)

    assert stopped.code == 130, stopped.stderr
    assert "run the same command again to resume" in stopped.output
    assert not wrote_output
    assert sent_before < 600
    assert resumed.code == 0, resumed.stderr
    assert custom_id_counts(tmp_path / "out.jsonl") == dict.fromkeys(ids, 1)
    stats = mock_env.stats()
    # A graceful stop records every answer it got: nothing is sent twice.
    assert stats["ok_repeats"] == 0
    assert stats["completed_keys"] == 600


@pytest.mark.slow
def test_a_log_gets_plain_progress_lines(
    run_cli: RunCli, mock_env: MockProviderProcess, tmp_path: Path
):
    # 40 calls of 300 ms, 4 at a time: at least 3 s, so several lines at 0.5 s apart.
    mock_env.control(latency_ms=300)
    write_requests(tmp_path / "in.jsonl", 40)

    done = run_cli(
        "batch",
        "run",
        "in.jsonl",
        "-o",
        "out.jsonl",
        "--concurrency",
        "4",
        env={"DATAMILL_PROGRESS_INTERVAL": "0.5"},
    )

    assert done.code == 0, done.stderr
    lines = done.stderr.splitlines()
    running = [line for line in lines if line.startswith("in_progress: ")]
    assert len(running) >= 2, done.stderr
    assert all("/40 done" in line and "req/s" in line for line in running)
    assert any(line.startswith("completed: 40/40 done, 0 failed") for line in lines)
    assert "━" not in done.stderr  # no progress bar drawn into a log


def test_a_local_file_is_not_held_to_upload_limits_unless_they_are_set(
    invoke: RunCli, tmp_path: Path
):
    write_requests(tmp_path / "in.jsonl", 20, model="gpt-4o-mini")
    defaults = local_limits(load_settings({}))
    assert defaults.max_file_lines > 1_000_000_000
    assert defaults.max_file_bytes > 1024**4

    told = invoke(
        "batch", "run", "in.jsonl", "-o", "out.jsonl", env={"DATAMILL_MAX_FILE_LINES": "10"}
    )
    assert told.code == 3, told.output
    assert "at most 10 (DATAMILL_MAX_FILE_LINES)" in told.output

    untold = invoke("batch", "run", "in.jsonl", "-o", "out.jsonl", "--fresh")
    assert untold.code == 0, untold.output
