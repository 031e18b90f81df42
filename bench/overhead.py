"""Overhead: 0 ms latency, so the engine, not the provider, is the limit.

    .venv/bin/python bench/overhead.py [--requests 20000] [--concurrency 256]
        [--only batch-run-sqlite,server-postgresql,...]

Runs, one after another on the same mock provider: the bare aiohttp loop (the ceiling), the
peers that are installed (bench/peers), then datamill through `datamill batch run` and
through `datamill serve` (upload, create, poll, download with the openai SDK), each on
SQLite and PostgreSQL. For every contender: requests/s (wall time of the whole run) and CPU
microseconds per request (the contender's processes; the mock's CPU is not counted). The
line ends with datamill's ratios to the ceiling and to the SDK script.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from datamill.testing.mock_process import MockProviderProcess
from harness import (
    PYTHON,
    ROOT,
    count_custom_ids,
    datamill_command,
    datamill_env,
    line,
    mock_provider,
    process_cpu,
    run_process,
    store,
    write_chat_input,
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
        [
            str(python),
            str(script),
            "--base-url",
            mock.base_url,
            "--input",
            str(work / "in.jsonl"),
            "--output",
            str(output),
            "--concurrency",
            str(concurrency),
        ]
    )
    if done.returncode != 0 or not _ok(requests, output):
        raise SystemExit(f"peer {name} failed ({done.returncode}):\n{done.output[-2000:]}")
    return {"rps": requests / done.wall, "cpu_us": done.per_request_us(requests)}


def run_batch_run(
    kind: str, mock: MockProviderProcess, work: Path, requests: int, concurrency: int
) -> dict[str, float]:
    with store(kind) as (url, home):
        env = datamill_env(url, home, mock, DATAMILL_CONCURRENCY=str(concurrency))
        output = work / f"batch-run-{kind}.jsonl"
        command = datamill_command("batch", "run", str(work / "in.jsonl"), "-o", str(output))
        done = run_process(command, env=env, cwd=home)
    if done.returncode != 0 or not _ok(requests, output):
        raise SystemExit(f"batch run on {kind} failed ({done.returncode}):\n{done.output[-2000:]}")
    return {"rps": requests / done.wall, "cpu_us": done.per_request_us(requests)}


def run_server(
    kind: str, mock: MockProviderProcess, work: Path, requests: int, concurrency: int
) -> dict[str, float]:
    port = _free_port()
    with store(kind) as (url, home):
        env = datamill_env(url, home, mock, DATAMILL_CONCURRENCY=str(concurrency))
        server = subprocess.Popen(
            datamill_command("serve", "--port", str(port)),
            env={**os.environ, **env},
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_ready(f"http://127.0.0.1:{port}/readyz", server)
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
                ]
            )
            server_cpu = process_cpu(server.pid) - before
        finally:
            server.terminate()
            server.wait(timeout=30)
    if client.returncode != 0 or not _ok(requests, output):
        raise SystemExit(f"server on {kind} failed:\n{client.output[-2000:]}")
    return {
        "rps": requests / client.wall,
        "cpu_us": (client.cpu + server_cpu) / requests * 1e6,
    }


def _wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"datamill serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if json.load(response)["status"] == "ready":
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("datamill serve did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--only", default="", help="comma-separated contender names")
    args = parser.parse_args()
    n, c = args.requests, args.concurrency
    contenders: dict[str, Callable[[MockProviderProcess, Path], dict[str, float] | None]] = {
        "ceiling": lambda m, w: run_peer("bare_loop", PYTHON, m, w, n, c),
        "sdk": lambda m, w: run_peer("sdk_script", PYTHON, m, w, n, c),
        "litellm": lambda m, w: run_peer("litellm_router", LITELLM_PYTHON, m, w, n, c),
        "batch-run-sqlite": lambda m, w: run_batch_run("sqlite", m, w, n, c),
        "batch-run-postgresql": lambda m, w: run_batch_run("postgresql", m, w, n, c),
        "server-sqlite": lambda m, w: run_server("sqlite", m, w, n, c),
        "server-postgresql": lambda m, w: run_server("postgresql", m, w, n, c),
    }
    wanted = [name for name in args.only.split(",") if name] or list(contenders)
    figures: dict[str, object] = {"requests": n, "concurrency": c}
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, mock_provider() as mock:
        work = Path(tmp)
        write_chat_input(work / "in.jsonl", n)
        for name in wanted:
            result = contenders[name](mock, work)
            if result is None:
                continue
            results[name] = result
            figures[f"{name}_rps"] = result["rps"]
            figures[f"{name}_cpu_us"] = result["cpu_us"]
    for name, result in results.items():
        if name.startswith(("batch-run", "server")):
            for base in ("ceiling", "sdk"):
                if base in results:
                    figures[f"{name}_vs_{base}"] = result["rps"] / results[base]["rps"]
    print(line("overhead", **figures))


if __name__ == "__main__":
    main()
