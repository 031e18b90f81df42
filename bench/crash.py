"""Crash: SIGKILL the worker at random points, again and again, during one batch.

    .venv/bin/python bench/crash.py [--mode batch-run|worker] [--requests 20000]
        [--kills 10] [--concurrency 256] [--latency-ms 20] [--seed 1]

``batch-run`` (SQLite): `datamill batch run` is killed and the same command started again.
``worker`` (PostgreSQL): `datamill serve --workers 0` holds the API while a standalone
`datamill worker` is killed and restarted; the batch goes in and its files come out through
the openai SDK. After the last restart the batch runs to its end. The line reports lost
results (custom ids missing from the output), duplicate lines, and the provider calls that
were answered twice, in total and the most after any one kill (the target: never more than
the requests the worker had sent and not recorded, bounded by the concurrency plus one
commit window: `WorkerOptions.max_unrecorded`).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson
from openai import OpenAI

from contenders import wait_ready
from datamill.engine.worker import WorkerOptions
from datamill_testing.mock_process import MockProviderProcess
from harness import datamill_command, datamill_env, line, mock_provider, store, write_chat_input


def _count_lines(*paths: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for path in paths:
        if path.exists():
            with path.open("rb") as handle:
                counts.update(orjson.loads(raw)["custom_id"] for raw in handle)
    return counts


def _finished_sqlite(home: Path) -> int:
    """Requests with a result so far (0 while the store is still being created)."""
    try:
        with sqlite3.connect(home / "datamill.db", timeout=5) as conn:
            query = "SELECT coalesce(sum(completed_count + failed_count), 0) FROM batches"
            return int(conn.execute(query).fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _start(command: list[str], env: dict[str, str], home: Path) -> subprocess.Popen[bytes]:
    """A datamill process in its own session (so `_kill` takes its children too), silent."""
    return subprocess.Popen(
        command,
        env=env,
        cwd=home,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kill(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def crash_batch_run(args: argparse.Namespace, mock: MockProviderProcess, work: Path) -> dict:
    rng = random.Random(args.seed)
    output = work / "out.jsonl"
    repeats: list[int] = []
    with store("sqlite") as (url, home):
        env = {
            **os.environ,
            **datamill_env(url, home, mock, DATAMILL_CONCURRENCY=str(args.concurrency)),
        }
        command = datamill_command("batch", "run", str(work / "in.jsonl"), "-o", str(output))
        for _ in range(args.kills):
            before = mock.stats()["ok_repeats"]
            process = _start(command, env, home)
            # Kill at a random point once the run has made some progress.
            target = _finished_sqlite(home) + rng.randint(200, args.requests // (args.kills + 2))
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and process.poll() is None:
                if _finished_sqlite(home) >= target:
                    break
                time.sleep(rng.uniform(0.01, 0.1))
            _kill(process)
            repeats.append(mock.stats()["ok_repeats"] - before)
        final = subprocess.run(
            command,
            env=env,
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        if final.returncode not in (0, 1):
            raise SystemExit(final.stderr.decode()[-2000:])
    return _report(args, mock, _count_lines(output), repeats)


def crash_worker(args: argparse.Namespace, mock: MockProviderProcess, work: Path) -> dict:
    rng = random.Random(args.seed)
    repeats: list[int] = []
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with store("postgresql") as (url, home):
        env = {
            **os.environ,
            **datamill_env(
                url,
                home,
                mock,
                DATAMILL_CONCURRENCY=str(args.concurrency),
                DATAMILL_WORKER_TTL="3",
                DATAMILL_HEARTBEAT_INTERVAL="0.5",
            ),
        }
        server = _start(datamill_command("serve", "--port", str(port), "--workers", "0"), env, home)
        try:
            _wait_ready_api(port, server)
            client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench")
            with (work / "in.jsonl").open("rb") as handle:
                upload = client.files.create(file=handle, purpose="batch")
            batch = client.batches.create(
                input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
            )

            def finished() -> int:
                counts = client.batches.retrieve(batch.id).request_counts
                return counts.completed + counts.failed if counts else 0

            for _ in range(args.kills):
                before = mock.stats()["ok_repeats"]
                worker = _start(datamill_command("worker"), env, home)
                target = finished() + rng.randint(200, args.requests // (args.kills + 2))
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline and finished() < target:
                    time.sleep(rng.uniform(0.01, 0.1))
                _kill(worker)
                repeats.append(mock.stats()["ok_repeats"] - before)
            worker = _start(datamill_command("worker"), env, home)
            try:
                done = client.batches.retrieve(batch.id)
                while done.status not in {"completed", "failed", "expired", "cancelled"}:
                    time.sleep(0.2)
                    done = client.batches.retrieve(batch.id)
            finally:
                _kill(worker)
            paths = []
            for kind, file_id in (("out", done.output_file_id), ("err", done.error_file_id)):
                if file_id:
                    path = work / f"{kind}.jsonl"
                    client.files.content(file_id).write_to_file(path)
                    paths.append(path)
        finally:
            _kill(server)
    return _report(args, mock, _count_lines(*paths), repeats)


def _wait_ready_api(port: int, server: subprocess.Popen[bytes]) -> None:
    # An API-only server is ready once a worker exists; /healthz is enough to submit.
    wait_ready(f"http://127.0.0.1:{port}/healthz", server, key="status", ready="ok")


def _report(
    args: argparse.Namespace, mock: MockProviderProcess, counts: Counter[str], repeats: list[int]
) -> dict:
    expected = {f"r{n}" for n in range(args.requests)}
    stats = mock.stats()
    return {
        "lost": len(expected - set(counts)),
        "duplicate_lines": sum(count - 1 for count in counts.values() if count > 1),
        "repeated_calls": stats["ok_repeats"],
        "max_repeated_per_kill": max(repeats, default=0),
        "in_flight_bound": WorkerOptions(concurrency=args.concurrency).max_unrecorded,
        "provider_calls": stats["total"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["batch-run", "worker"], default="batch-run")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, mock_provider(latency_ms=args.latency_ms) as mock:
        work = Path(tmp)
        write_chat_input(work / "in.jsonl", args.requests)
        run = crash_batch_run if args.mode == "batch-run" else crash_worker
        figures = run(args, mock, work)
    print(line("crash", mode=args.mode, requests=args.requests, kills=args.kills, **figures))


if __name__ == "__main__":
    main()
