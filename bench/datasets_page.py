"""The dashboard's Datasets page on a 10,000-sample dataset, end to end.

    .venv/bin/python bench/datasets_page.py [--samples 10000] [--rounds 20]

Builds a SQLite dataset by an import (question/answer samples, as bench/exports.py makes
them), starts `datamill serve` on loopback, and times what opening the dataset's page costs
a browser: the page's HTML, then its two API calls (the dataset with its stats, and the
first page of samples), as the page makes them (the two at once). One line per view:
``datasets_page view=V samples=N p50_ms=... p95_ms=... max_ms=...``, over ``--rounds``
rounds after one warm-up; the target is 300 ms. The views: the first page, a page further
on (``after``), a search, a filter, and one sample with its history.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from exports import build  # bench/exports.py: the same samples

PAGE = 50  # the page's table size (static/js/pages/dataset.js)
TARGET_MS = 300


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(env: dict[str, str], home: Path, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "datamill.cli.main", "serve", "--port", str(port)]
    process = subprocess.Popen(
        command,
        cwd=home,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit("datamill serve did not start")
        time.sleep(0.1)


async def open_view(http: httpx.AsyncClient, page: str, calls: list[str]) -> float:
    """The page's HTML, then its API calls at once; returns the milliseconds taken."""
    started = time.perf_counter()
    (await http.get(page)).raise_for_status()
    answers = await asyncio.gather(*(http.get(call) for call in calls))
    for answer in answers:
        answer.raise_for_status()
    return (time.perf_counter() - started) * 1000


async def measure(base: str, dataset_id: str, rounds: int, samples: int) -> bool:
    api = f"/api/datasets/{dataset_id}"
    async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=30) as http:
        first = (await http.get(f"{api}/samples?limit={PAGE}")).json()
        sample_id = first["data"][0]["id"]
        # A cursor halfway through the dataset: page `after` a sample in its middle.
        half = sample_id
        for _ in range(samples // 2000):
            half = (await http.get(f"{api}/samples?limit=1000&after={half}")).json()["last_id"]
        views = {
            "first_page": (f"/datasets/{dataset_id}", [api, f"{api}/samples?limit={PAGE}"]),
            "middle_page": (
                f"/datasets/{dataset_id}?after={half}",
                [api, f"{api}/samples?limit={PAGE}&after={half}"],
            ),
            "search": (
                f"/datasets/{dataset_id}?q=river+-proof",
                [api, f"{api}/samples?limit={PAGE}&q=river+-proof"],
            ),
            "filter": (
                f"/datasets/{dataset_id}?topic=law&model=gpt-4o-mini",
                [api, f"{api}/samples?limit={PAGE}&topic=law&model=gpt-4o-mini"],
            ),
            "sample": (
                f"/datasets/{dataset_id}?sample={sample_id}",
                [
                    api,
                    f"{api}/samples?limit={PAGE}",
                    f"{api}/samples/{sample_id}",
                    f"{api}/samples/{sample_id}/history",
                ],
            ),
        }
        ok = True
        for name, (page, calls) in views.items():
            await open_view(http, page, calls)  # warm-up
            times = sorted([await open_view(http, page, calls) for _ in range(rounds)])
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            ok = ok and p95 < TARGET_MS
            print(
                f"datasets_page view={name} samples={samples} "
                f"p50_ms={statistics.median(times):.1f} p95_ms={p95:.1f} max_ms={times[-1]:.1f}",
                flush=True,
            )
        return ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = {
            "DATAMILL_HOME": tmp,
            "DATAMILL_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "DATAMILL_MAX_FILE_BYTES": str(1 << 30),
            "DATAMILL_AUTO_DEPLOYMENTS": "false",
            "DATAMILL_LOG_LEVEL": "warning",
        }
        dataset_id = asyncio.run(build(env, args.samples))
        port = free_port()
        server = start(env, home, port)
        try:
            ok = asyncio.run(
                measure(f"http://127.0.0.1:{port}", dataset_id, args.rounds, args.samples)
            )
        finally:
            server.terminate()
            server.wait(30)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
