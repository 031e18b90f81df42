"""Fixtures for the CLI tests: `datamill` as a real process, request files, a running server.

Every process starts in its own session (a Ctrl-C in the terminal is for pytest) and is
killed at the end of the test, whatever happens. Output goes to files, not pipes, so a
chatty process never blocks on a full pipe.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from datamill.cli.main import app
from datamill_testing.postgres import TemporaryPostgres
from tests.conftest import fresh_postgres_database
from tests.helpers import chat_line, jsonl

COMMAND = [sys.executable, "-m", "datamill.cli.main"]
# Generous: two cores shared with other test runs; a healthy command takes about a second.
DEADLINE = 60.0
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Finished:
    """A command that ran to its end."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr, with rich's line breaks undone, for 'message names X' checks."""
        return " ".join((self.stdout + "\n" + self.stderr).split())


class Running:
    """A `datamill` process still running; `stop()` or the fixture's teardown ends it."""

    def __init__(self, process: subprocess.Popen[bytes], out: Path, err: Path) -> None:
        self.process = process
        self._out = out
        self._err = err

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def stdout(self) -> str:
        return self._out.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self._err.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = DEADLINE) -> Finished:
        code = self.process.wait(timeout)
        return Finished(code, self.stdout, self.stderr)

    def wait_for_output(self, text: str, timeout: float = DEADLINE) -> None:
        """Wait until ``text`` appears on stdout or stderr; fail if the process ends first."""
        deadline = time.monotonic() + timeout
        while text not in self.stdout + self.stderr:
            if self.process.poll() is not None:
                pytest.fail(
                    f"exited with {self.process.returncode} before {text!r}:\n{self.stderr}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"no {text!r} after {timeout} s:\n{self.stderr}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process.poll() is None:
            # The whole session: a command's own children (none today) go with it.
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


CliEnv = dict[str, str]
RunCli = Callable[..., Finished]
StartCli = Callable[..., Running]


@pytest.fixture
def cli_env() -> CliEnv:
    """Extra environment for the commands of this test (on top of the isolated one)."""
    return {}


def _environment(extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **extra}
    env.pop("COLUMNS", None)  # rich's width must not depend on the terminal pytest runs in
    return env


@pytest.fixture
def run_cli(cli_env: CliEnv, tmp_path: Path) -> RunCli:
    """Run ``datamill ARGS...`` to its end in the test's directory (``env=`` adds variables)."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = DEADLINE) -> Finished:
        done = subprocess.run(
            [*COMMAND, *args],
            env=_environment({**cli_env, **(env or {})}),
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            start_new_session=True,
            check=False,
        )
        return Finished(
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )

    return run


@pytest.fixture
def invoke(cli_env: CliEnv) -> RunCli:
    """Run ``datamill ARGS...`` in this process with typer's CliRunner: for the commands that
    need no process of their own (no signals, no crash). Same result shape as `run_cli`."""
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None) -> Finished:
        result = runner.invoke(app, list(args), env={**cli_env, **(env or {})})
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Finished(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture
def start_cli(cli_env: CliEnv, tmp_path: Path) -> Iterator[StartCli]:
    """Start ``datamill ARGS...`` in the background; every process is killed at teardown."""
    started: list[Running] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Running:
        n = len(started)
        out, err = tmp_path / f"process-{n}.out", tmp_path / f"process-{n}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                [*COMMAND, *args],
                env=_environment({**cli_env, **(env or {})}),
                cwd=tmp_path,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        running = Running(process, out, err)
        started.append(running)
        return running

    yield start
    for running in started:
        running.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(
    url: str, timeout: float = 5.0, *, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    try:
        request = urllib.request.Request(url, headers=headers or {})
        with _NO_PROXY.open(request, timeout=timeout) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, orjson.loads(exc.read())


def wait_until_healthy(server: Running, url: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            pytest.fail(f"the server exited with {server.process.returncode}:\n{server.stderr}")
        try:
            if http_get(f"{url}/healthz", timeout=1.0)[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the server did not answer /healthz in {timeout} s:\n{server.stderr}")
        time.sleep(0.1)


@dataclass
class Server:
    process: Running
    url: str
    port: int


StartServer = Callable[..., Server]


@pytest.fixture
def start_server(start_cli: StartCli) -> StartServer:
    """`datamill serve` on a free port of 127.0.0.1, answering /healthz."""

    def start(*args: str, env: dict[str, str] | None = None) -> Server:
        port = free_port()
        process = start_cli("serve", "--port", str(port), *args, env=env)
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(process, url)
        return Server(process, url, port)

    return start


# -- request files --------------------------------------------------------------------------


def write_requests(
    path: Path, count: int, *, rejected: Iterable[int] = (), model: str = "mock-model"
) -> list[str]:
    """A chat batch file of ``count`` lines (``r0``...); lines in ``rejected`` ask for the
    model ``reject-me``, which the mock provider and the sim both refuse. Returns the ids."""
    refused = set(rejected)
    lines = [chat_line(f"r{i}", model="reject-me" if i in refused else model) for i in range(count)]
    path.write_bytes(jsonl(lines))
    return [line["custom_id"] for line in lines]


def read_lines(*paths: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for path in paths for line in path.read_bytes().splitlines()]


def custom_id_counts(*paths: Path) -> Counter[str]:
    return Counter(line["custom_id"] for line in read_lines(*paths))


# -- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture
def empty_postgres_url(postgres_server: TemporaryPostgres) -> Iterator[str]:
    """An empty database (not cloned from the migrated template), dropped at the end."""
    url, drop = fresh_postgres_database(postgres_server, migrated=False)
    try:
        yield url
    finally:
        drop()
