"""Command-line usage in this process: help, version, and bad arguments (exit status 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from datamill import __version__
from datamill.cli.common import ExitCode
from tests.cli.conftest import RunCli, write_requests


def test_help_lists_every_command(invoke: RunCli):
    top = invoke("--help")
    batch = invoke("batch", "--help")

    assert top.code == batch.code == 0
    for command in ("serve", "worker", "migrate", "batch", "version"):
        assert command in top.stdout
    for command in ("submit", "status", "list", "cancel", "download", "run"):
        assert command in batch.stdout


def test_version(invoke: RunCli):
    done = invoke("version")

    assert (done.code, done.stdout.strip()) == (0, __version__)


def test_exit_codes_are_distinct():
    assert [int(code) for code in ExitCode] == [0, 1, 2, 3, 130]


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["batch", "run", "in.jsonl"], "Missing option '-o' / '--output'"),
        (["batch", "run", "nowhere.jsonl", "-o", "out.jsonl"], "does not exist"),
        (["batch", "run", "in.jsonl", "-o", "out.jsonl", "--concurrency", "0"], "--concurrency"),
        (["batch", "run", "in.jsonl", "-o", "out.jsonl", "--timeout", "0"], "--timeout"),
        (["batch", "run", "in.jsonl", "-o", "o.jsonl", "--endpoint", "/v1/images"], "--endpoint"),
        (["batch", "submit", "in.jsonl", "--endpoint", "/v1/audio"], "--endpoint"),
        (["batch", "list", "--limit", "101"], "--limit"),
        (["serve", "--port", "http"], "--port"),
        (["batch", "frobnicate"], "No such command"),
    ],
)
def test_bad_usage_exits_2_naming_the_problem(
    invoke: RunCli, tmp_path: Path, isolated_environment: Path, args: list[str], complaint: str
):
    write_requests(tmp_path / "in.jsonl", 1)

    done = invoke(*args)

    assert done.code == ExitCode.usage
    assert complaint in done.output
    assert not isolated_environment.exists()  # refused before the store was opened
