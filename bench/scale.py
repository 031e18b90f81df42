"""Scale: a million requests through upload, validation and execution at 0 ms.

    .venv/bin/python bench/scale.py [--requests 1000000] [--compare 100000]
        [--concurrency 256]

Runs `datamill batch run` on SQLite with inputs of about 250 bytes a line (the default is
about 250 MB). While it runs, the store is read from outside to time validation (created to
in_progress) and the requests finished over time. The line gives, for each size: validation
seconds, requests/s over each tenth of the requests and the last tenth's over the first's (a
slowdown shows as a falling ratio), the whole run's requests/s and the process's peak RSS
(flat in N is the target).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import orjson

from datamill_testing.mock_process import MockProviderProcess
from harness import datamill_command, datamill_env, line, mock_provider, store

_PADDING = "Summarise the case and its outcome in two sentences, citing the statute."


def write_input(path: Path, requests: int) -> int:
    """About 250 bytes a line; returns the file size."""
    with path.open("wb") as handle:
        for n in range(requests):
            body = {
                "model": "mock-model",
                "messages": [{"role": "user", "content": f"{_PADDING} Case {n}: {_PADDING}"}],
                "max_tokens": 64,
            }
            item = {"custom_id": f"r{n}", "method": "POST", "url": "/v1/chat/completions"}
            handle.write(orjson.dumps({**item, "body": body}) + b"\n")
    return path.stat().st_size


def _poll(home: Path, samples: list[tuple[float, str, int]], stop: threading.Event) -> None:
    """Sample (time, status, finished requests) from the store until told to stop."""
    start = time.monotonic()
    while not stop.is_set():
        try:
            with sqlite3.connect(home / "datamill.db", timeout=5) as conn:
                row = conn.execute(
                    "SELECT status, completed_count + failed_count FROM batches"
                ).fetchone()
            if row:
                samples.append((time.monotonic() - start, row[0], int(row[1])))
        except sqlite3.OperationalError:
            pass
        stop.wait(0.5)


def _rate(samples: list[tuple[float, str, int]], low: int, high: int) -> float:
    """Requests/s while the finished count went from ``low`` to ``high`` (validation, which
    finishes none, is left out)."""
    inside = [(t, n) for t, status, n in samples if low <= n <= high and status != "validating"]
    if len(inside) < 2:
        return 0.0
    t0, n0 = inside[0]
    # The first sample at the window's highest count: later ones only watch finalization.
    t1, n1 = next((t, n) for t, n in inside if n == inside[-1][1])
    return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


def measure(requests: int, concurrency: int, mock: MockProviderProcess, work: Path) -> dict:
    size = write_input(work / "in.jsonl", requests)
    with store("sqlite") as (url, home):
        env = {
            **os.environ,
            **datamill_env(url, home, mock, DATAMILL_CONCURRENCY=str(concurrency)),
        }
        samples: list[tuple[float, str, int]] = []
        stop = threading.Event()
        poller = threading.Thread(target=_poll, args=(home, samples, stop), daemon=True)
        command = datamill_command(
            "batch", "run", str(work / "in.jsonl"), "-o", str(work / "out.jsonl")
        )
        start = time.monotonic()
        # A file, not a pipe: the progress output would fill a pipe nobody reads and block.
        with (work / "run.log").open("w+b") as log:
            process = subprocess.Popen(
                command, env=env, cwd=home, stdout=subprocess.DEVNULL, stderr=log
            )
            poller.start()
            _, status, usage = os.wait4(process.pid, 0)
            wall = time.monotonic() - start
            stop.set()
            poller.join()
            if os.waitstatus_to_exitcode(status) != 0:
                log.seek(0)
                raise SystemExit(log.read().decode(errors="replace")[-2000:])
    validating = [t for t, s, _ in samples if s == "validating"]
    running = [t for t, s, _ in samples if s != "validating"]
    tenth = requests // 10
    deciles = [_rate(samples, k * tenth, (k + 1) * tenth) for k in range(10)]
    first, last = deciles[0], deciles[-1]
    return {
        "input_mb": size / 1024**2,
        "validate_s": (running[0] - validating[0]) if validating and running else 0.0,
        "first_rps": first,
        "last_rps": last,
        "last_vs_first": last / first if first else 0.0,
        # Requests/s over time: each tenth of the requests, in order.
        "rps_by_tenth": "/".join(f"{rate:.0f}" for rate in deciles),
        "rps": requests / wall,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--compare", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=256)
    args = parser.parse_args()
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp, mock_provider() as mock:
        for n in (args.compare, args.requests):
            for key, value in measure(n, args.concurrency, mock, Path(tmp)).items():
                figures[f"n{n}_{key}"] = value
    print(line("scale", **figures))


if __name__ == "__main__":
    main()
