"""Run the mock provider in a subprocess, with a small blocking client for its control API.

Blocking calls are fine even from async tests: they go to loopback and answer in about a
millisecond. Only the standard library is used on this side.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import IO, Any, Self

from datamill_testing.mock_provider import MockConfig

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
# Loopback never goes through a proxy, whatever the environment says.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_RUNNING: set[MockProviderProcess] = set()


class MockProviderProcess:
    """The mock provider (``datamill_testing.mock_provider``) in a child process.

    Guarantees: ``start()`` returns once the server listens; ``restart()`` comes back on the
    same port; the child never outlives this process (``stop()`` on exit and at interpreter
    exit, and the child itself exits when it loses its parent, even after a SIGKILL).
    """

    def __init__(
        self, port: int = 0, *, module: str = "datamill_testing.mock_provider", **config: Any
    ) -> None:
        MockConfig(**config)  # fail here, not in the child, on an unknown or invalid option
        self.port = port
        self.module = module  # the mock to run: OpenAI's, or another provider's on its core
        self.config = config
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """The server root, where ``/control``, ``/stats`` and ``/health`` live."""
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (what an OpenAI client takes as ``base_url``)."""
        return f"{self.url}/v1"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> Self:
        """Spawn the server and wait for ``READY``; a fixed port is waited for until free."""
        if self.running:
            raise RuntimeError("the mock provider is already running")
        deadline = time.monotonic() + START_TIMEOUT
        if self.port:
            _wait_port_free(self.port, deadline)
        self.port = self._spawn(deadline)
        _RUNNING.add(self)
        return self

    def kill(self) -> None:
        """SIGKILL the server, as a crash would: no graceful shutdown."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        self._release()

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the server, then SIGKILL it if it has not exited after ``timeout``."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._release()

    def restart(self) -> Self:
        """Start again on the same port (killing the server first if it still runs).

        The new process has fresh counters and the constructor's config.
        """
        if self.running:
            self.kill()
        return self.start()

    def control(self, **changes: Any) -> dict[str, Any]:
        """Change the runtime config (partial update); returns the full config."""
        return self._call("POST", "/control", changes)

    def stats(self, per_key: bool = False) -> dict[str, Any]:
        return self._call("GET", "/stats?per_key=1" if per_key else "/stats")

    def reset_stats(self) -> dict[str, Any]:
        return self._call("POST", "/stats/reset", {})

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self, deadline: float) -> int:
        command = [
            sys.executable,
            "-m",
            self.module,
            *("--host", HOST, "--port", str(self.port), "--parent-pid", str(os.getpid())),
            *_options(self.config),
        ]
        # stderr goes to a file: a pipe nobody drains could fill up and block the server.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in _release)
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,  # a Ctrl-C in the terminal is for the tests, not the server
        )
        try:
            return _read_ready(self._process, deadline)
        except (RuntimeError, TimeoutError) as exc:
            stderr = self._read_stderr()
            self.kill()
            raise RuntimeError(f"{exc}; its stderr:\n{stderr}") from None
        except BaseException:  # KeyboardInterrupt included: leave no server behind
            self.kill()
            raise

    def _read_stderr(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def _release(self) -> None:
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
        self._process = self._stderr = None
        _RUNNING.discard(self)

    def _call(self, method: str, path: str, payload: Any = None) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        try:
            with _OPENER.open(request, timeout=5) as response:
                answer: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                raise ValueError(f"mock provider answered {exc.code}: {exc.read()!r}") from None
        return answer


def _wait_port_free(port: int, deadline: float) -> None:
    """Wait until ``port`` can be bound: a killed server's listener may linger a moment."""
    while True:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((HOST, port))
            except OSError:
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"port {port} is still in use") from None
            else:
                return
        time.sleep(0.05)


def _options(config: dict[str, Any]) -> list[str]:
    options: list[str] = []
    for name, value in config.items():
        flag = name.replace("_", "-")
        if isinstance(value, bool):
            options.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            options += [f"--{flag}", "none" if value is None else str(value)]
    return options


def _read_ready(process: subprocess.Popen[bytes], deadline: float) -> int:
    """Read the ``READY port=<port>`` line, or raise with the server's stderr."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    output = b""
    while b"\n" not in output:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"the mock provider was not ready after {START_TIMEOUT} s")
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            code = process.wait(timeout=5)
            raise RuntimeError(f"the mock provider exited with code {code} before it was ready")
        output += chunk
    line = output.split(b"\n", 1)[0].decode()
    if not line.startswith("READY port="):
        raise RuntimeError(f"unexpected first line from the mock provider: {line!r}")
    return int(line.removeprefix("READY port="))


@atexit.register
def _stop_all() -> None:
    for process in list(_RUNNING):
        process.stop(timeout=1.0)
