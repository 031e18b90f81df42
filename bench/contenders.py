"""The contenders every throughput benchmark runs on the same mock provider: the bare loop
(the ceiling), the peers in bench/peers, `datamill batch run` and `datamill serve` with the
openai SDK as client. Each returns requests/s over its whole run and CPU microseconds per
request of its own processes (the mock's CPU is never counted)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from datamill_testing.mock_process import MockProviderProcess
from harness import (
    PYTHON,
    ROOT,
    count_custom_ids,
    datamill_command,
    datamill_env,
    process_cpu,
    run_process,
    store,
    told_env,
)

PEERS = ROOT / "bench" / "peers"
LITELLM_PYTHON = ROOT / "bench" / ".venvs" / "litellm" / "bin" / "python"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ok(requests: int, *outputs: Path) -> bool:
    lines, distinct = count_custom_ids(*outputs)
    return lines == distinct == requests


def peer_command(
    python: Path | str,
    script: str,
    *,
    base_url: str,
    source: Path,
    output: Path,
    concurrency: int,
    rpm: int | None = None,
) -> list[str]:
    """The command line every peer takes (bench/peers/peer_cli.py)."""
    command = [
        str(python),
        str(PEERS / script),
        "--base-url",
        base_url,
        "--input",
        str(source),
        "--output",
        str(output),
        "--concurrency",
        str(concurrency),
    ]
    if rpm is not None:
        command += ["--rpm", str(rpm)]
    return command


def run_peer(
    name: str,
    python: Path | str,
    mock: MockProviderProcess,
    work: Path,
    requests: int,
    concurrency: int,
) -> dict[str, float] | None:
    script = PEERS / f"{name}.py"
    if not script.exists() or not Path(python).exists():
        return None
    output = work / f"{name}.jsonl"
    done = run_process(
        peer_command(
            python,
            script.name,
            base_url=mock.base_url,
            source=work / "in.jsonl",
            output=output,
            concurrency=concurrency,
        )
    )
    if done.returncode != 0 or not _ok(requests, output):
        raise SystemExit(f"peer {name} failed ({done.returncode}):\n{done.output[-2000:]}")
    return {"rps": requests / done.wall, "cpu_us": done.per_request_us(requests)}


def run_batch_run(
    kind: str,
    mock: MockProviderProcess,
    work: Path,
    requests: int,
    concurrency: int,
    *,
    tell: bool = False,
) -> dict[str, float]:
    with store(kind) as (url, home):
        env = _env(url, home, mock, concurrency, tell=tell)
        output = work / f"batch-run-{kind}.jsonl"
        command = datamill_command("batch", "run", str(work / "in.jsonl"), "-o", str(output))
        done = run_process(command, env=env, cwd=home)
    if done.returncode != 0 or not _ok(requests, output):
        raise SystemExit(f"batch run on {kind} failed ({done.returncode}):\n{done.output[-2000:]}")
    return {"rps": requests / done.wall, "cpu_us": done.per_request_us(requests)}


def run_server(
    kind: str,
    mock: MockProviderProcess,
    work: Path,
    requests: int,
    concurrency: int,
    *,
    tell: bool = False,
) -> dict[str, float]:
    port = _free_port()
    with store(kind) as (url, home):
        env = _env(url, home, mock, concurrency, tell=tell)
        server = subprocess.Popen(
            datamill_command("serve", "--port", str(port)),
            env={**os.environ, **env},
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(f"http://127.0.0.1:{port}/readyz", server)
            before = process_cpu(server.pid)
            output = work / f"server-{kind}.jsonl"
            client = run_process(
                [
                    PYTHON,
                    str(ROOT / "bench" / "server_client.py"),
                    "--base-url",
                    f"http://127.0.0.1:{port}/v1",
                    "--input",
                    str(work / "in.jsonl"),
                    "--output",
                    str(output),
                    "--poll",
                    "0.05",
                ]
            )
            server_cpu = process_cpu(server.pid) - before
        finally:
            server.terminate()
            server.wait(timeout=30)
    if client.returncode != 0 or not _ok(requests, output):
        raise SystemExit(f"server on {kind} failed:\n{client.output[-2000:]}")
    # From the upload to the output file on disk, as the client timed it: the server was
    # already up, and the client's own start (importing the openai SDK, 0.5 s) is not the
    # server's work. Its CPU is counted all the same.
    return {
        "rps": requests / _client_wall(client.output),
        "cpu_us": (client.cpu + server_cpu) / requests * 1e6,
    }


def _env(
    url: str, home: Path, mock: MockProviderProcess, concurrency: int, *, tell: bool
) -> dict[str, str]:
    """datamill's environment; ``tell``: the deployment's max_concurrency is configured."""
    told = told_env(home, mock, max_concurrency=concurrency) if tell else {}
    return datamill_env(url, home, mock, DATAMILL_CONCURRENCY=str(concurrency), **told)


def _client_wall(output: str) -> float:
    """The ``wall_s`` of server_client.py's report line."""
    for text in reversed(output.splitlines()):
        if text.startswith("{") and '"wall_s"' in text:
            return float(json.loads(text)["wall_s"])
    raise SystemExit(f"server_client.py printed no report:\n{output[-2000:]}")


def wait_ready(
    url: str,
    server: subprocess.Popen[bytes],
    *,
    key: str = "status",
    ready: str = "ready",
    timeout: float = 60,
) -> None:
    """Poll ``url`` until its JSON says ``key == ready``; fail if the server exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"datamill serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if json.load(response)[key] == ready:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("datamill serve did not become ready")


Contender = Callable[[MockProviderProcess, Path], "dict[str, float] | None"]


def contenders(requests: int, concurrency: int, *, tell: bool = False) -> dict[str, Contender]:
    """Every contender by name; ``work`` holds ``in.jsonl`` and receives the outputs.

    ``tell``: datamill's deployment is configured with ``max_concurrency = concurrency``, as
    the peers are given their concurrency."""
    n, c, t = requests, concurrency, tell
    return {
        "ceiling": lambda m, w: run_peer("bare_loop", PYTHON, m, w, n, c),
        "sdk": lambda m, w: run_peer("sdk_script", PYTHON, m, w, n, c),
        "litellm": lambda m, w: run_peer("litellm_router", LITELLM_PYTHON, m, w, n, c),
        "batch-run-sqlite": lambda m, w: run_batch_run("sqlite", m, w, n, c, tell=t),
        "batch-run-postgresql": lambda m, w: run_batch_run("postgresql", m, w, n, c, tell=t),
        "server-sqlite": lambda m, w: run_server("sqlite", m, w, n, c, tell=t),
        "server-postgresql": lambda m, w: run_server("postgresql", m, w, n, c, tell=t),
    }
