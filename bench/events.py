"""Event stream: what 50 open dashboards cost the engine.

    .venv/bin/python bench/events.py [--requests 20000] [--clients 50] [--repeats 3]
        [--store sqlite|postgresql]

The same batch as bench/overhead.py's server contender (0 ms latency, `datamill serve`
already running, the openai SDK uploading, creating, polling every 0.05 s and downloading),
on a fresh server and store each time, with no client on `GET /api/events` and with
``--clients`` clients following it (bench/event_clients.py, one process, every event
consumed), interleaved in one run (0, N, N, 0, ... so drift hits both alike), several
times. Prints requests/s of each run and their medians, the slowdown (median without over
median with: the target is at most 1.05) and the median of each repeat's own ratio (its two
runs ran back to back: steadier on a shared machine), the server's CPU per request,
events delivered per client, and the events the server wrote during the batch and the
transactions that wrote them (a few a second, whatever the load).

``--fan-out EVENTS`` measures the stream's own cost instead, with no batch running: the
clients follow an idle server while another process writes EVENTS batch events to its
SQLite store (``--chunk`` of them every 0.5 s, read by the server's hub as a worker's
would be: a batch's own server writes about 4 a second, one at a time); prints the
server's CPU per delivered event (one event to one client), its idle CPU subtracted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import statistics
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from contenders import _client_wall, _free_port, _ok, wait_ready
from datamill_testing.mock_process import MockProviderProcess
from harness import (
    PYTHON,
    ROOT,
    datamill_command,
    datamill_env,
    line,
    machine,
    mock_provider,
    process_cpu,
    run_process,
    store,
    write_chat_input,
)


def run_once(
    kind: str,
    mock: MockProviderProcess,
    work: Path,
    *,
    requests: int,
    concurrency: int,
    clients: int,
) -> dict[str, float]:
    with (
        store(kind) as (database_url, home),
        _serving(
            datamill_env(database_url, home, mock, DATAMILL_CONCURRENCY=str(concurrency)),
            home,
            clients,
        ) as (url, server, listeners),
    ):
        before = process_cpu(server.pid)
        events_before = _get_json(f"{url}/api/info")["events"]
        output = work / f"events-{kind}-{clients}.jsonl"
        client = run_process(
            [
                PYTHON,
                str(ROOT / "bench" / "server_client.py"),
                "--base-url",
                f"{url}/v1",
                "--input",
                str(work / "in.jsonl"),
                "--output",
                str(output),
                "--poll",
                "0.05",
            ]
        )
        server_cpu = process_cpu(server.pid) - before
        events_after = _get_json(f"{url}/api/info")["events"]
        # The last events (the batch's end, the deployment going quiet) reach the clients.
        time.sleep(1.5 if clients else 0)
        delivered = _stop_listeners(listeners) if listeners else None
    if client.returncode != 0 or not _ok(requests, output):
        raise SystemExit(f"the batch failed with {clients} clients:\n{client.output[-2000:]}")
    wall = _client_wall(client.output)
    result = {
        "rps": requests / wall,
        "wall_s": wall,
        "server_cpu_us": server_cpu / requests * 1e6,
        # During the batch: events stored by the server, and the transactions storing them.
        "events_written": events_after["written"] - events_before["written"],
        "event_writes": events_after["writes"] - events_before["writes"],
    }
    if delivered is not None:
        counts = delivered["events"]
        result |= {
            "events_per_client_min": min(counts),
            "events_per_client_max": max(counts),
            "clients_ended_early": delivered["ended"],
        }
    return result


@contextlib.contextmanager
def _serving(
    env: dict[str, str], home: Path, clients: int
) -> Iterator[tuple[str, subprocess.Popen[bytes], subprocess.Popen[str] | None]]:
    """`datamill serve` on a free port, ready, with ``clients`` following its event stream
    (none for 0): (its URL, its process, the clients' process)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        datamill_command("serve", "--port", str(port)),
        # Every client gets a place, however many are asked for.
        env={**os.environ, **env, "DATAMILL_EVENTS_MAX_SUBSCRIBERS": str(max(clients, 100))},
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    listeners = None
    try:
        wait_ready(f"{url}/readyz", server)
        listeners = _start_listeners(url, clients) if clients else None
        yield url, server, listeners
    finally:
        if listeners is not None and listeners.poll() is None:
            listeners.kill()
        server.terminate()
        server.wait(timeout=30)


def _start_listeners(url: str, clients: int) -> subprocess.Popen[str]:
    listeners = subprocess.Popen(
        [PYTHON, str(ROOT / "bench" / "event_clients.py"), "--url", url, "--clients", str(clients)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert listeners.stdout is not None
    ready = listeners.stdout.readline().strip()
    if ready != "ready":
        raise SystemExit(f"event clients did not subscribe: {ready!r}")
    return listeners


def _stop_listeners(listeners: subprocess.Popen[str]) -> dict[str, Any]:
    listeners.terminate()
    out, _ = listeners.communicate(timeout=30)
    return json.loads(out.strip().splitlines()[-1])


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        result: dict[str, Any] = json.load(response)
    return result


def fan_out(events: int, clients: int, chunk: int) -> None:
    """The server's CPU per event delivered to one client, with nothing else running."""
    payload = json.dumps({"object": "batch", "status": "in_progress", "pad": "x" * 600})
    with (
        mock_provider() as mock,
        store("sqlite") as (database_url, home),
        _serving(datamill_env(database_url, home, mock), home, clients) as (_, server, listeners),
    ):
        assert listeners is not None
        idle_start, idle_cpu = time.monotonic(), process_cpu(server.pid)
        time.sleep(5)
        idle_per_s = (process_cpu(server.pid) - idle_cpu) / (time.monotonic() - idle_start)
        start, before = time.monotonic(), process_cpu(server.pid)
        with sqlite3.connect(home / "datamill.db") as db:
            for _ in range(0, events, chunk):
                db.executemany(
                    "INSERT INTO events (topic, batch_id, payload, created_at)"
                    " VALUES ('batch', 'batch_bench', ?, ?)",
                    [(payload, time.time())] * chunk,
                )
                db.commit()
                time.sleep(0.5)
        time.sleep(2)  # the last events reach the clients
        cpu = process_cpu(server.pid) - before - idle_per_s * (time.monotonic() - start)
        delivered = _stop_listeners(listeners)
    deliveries = sum(delivered["events"])
    print(
        line(
            "events_fan_out",
            events=events,
            chunk=chunk,
            clients=clients,
            machine=machine().replace(" ", "_"),
            deliveries=deliveries,
            server_cpu_s=round(cpu, 3),
            idle_cpu_per_s=round(idle_per_s, 4),
            us_per_delivery=round(cpu / max(1, deliveries) * 1e6, 2),
            clients_ended_early=delivered["ended"],
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--fan-out", type=int, metavar="EVENTS", default=0)
    parser.add_argument("--chunk", type=int, default=50, help="--fan-out: events per write")
    args = parser.parse_args()
    if args.fan_out:
        fan_out(args.fan_out, args.clients, args.chunk)
        return
    n, kind = args.requests, args.store
    runs: dict[int, list[dict[str, float]]] = {0: [], args.clients: []}
    with tempfile.TemporaryDirectory() as tmp, mock_provider() as mock:
        work = Path(tmp)
        write_chat_input(work / "in.jsonl", n)
        for repeat in range(args.repeats):
            order = [0, args.clients] if repeat % 2 == 0 else [args.clients, 0]
            for clients in order:
                runs[clients].append(
                    run_once(
                        kind,
                        mock,
                        work,
                        requests=n,
                        concurrency=args.concurrency,
                        clients=clients,
                    )
                )
    quiet, watched = runs[0], runs[args.clients]
    quiet_rps = statistics.median(r["rps"] for r in quiet)
    watched_rps = statistics.median(r["rps"] for r in watched)
    # Each repeat's two runs ran back to back, under about the same background load: their
    # ratio is the steadier figure on a shared machine.
    pairs = [q["rps"] / w["rps"] for q, w in zip(quiet, watched, strict=True)]
    cpu_pairs = [
        w["server_cpu_us"] / q["server_cpu_us"] for q, w in zip(quiet, watched, strict=True)
    ]
    print(
        line(
            "events",
            store=kind,
            requests=n,
            clients=args.clients,
            repeats=args.repeats,
            machine=machine().replace(" ", "_"),
            rps_0=quiet_rps,
            rps_clients=watched_rps,
            slowdown=round(quiet_rps / watched_rps, 3),
            slowdown_paired=round(statistics.median(pairs), 3),
            slowdown_pairs="/".join(f"{ratio:.2f}" for ratio in pairs),
            server_cpu_paired=round(statistics.median(cpu_pairs), 3),
            rps_0_runs="/".join(f"{r['rps']:.0f}" for r in quiet),
            rps_clients_runs="/".join(f"{r['rps']:.0f}" for r in watched),
            server_cpu_us_0=statistics.median(r["server_cpu_us"] for r in quiet),
            server_cpu_us_clients=statistics.median(r["server_cpu_us"] for r in watched),
            server_cpu_us_0_runs="/".join(f"{r['server_cpu_us']:.0f}" for r in quiet),
            server_cpu_us_clients_runs="/".join(f"{r['server_cpu_us']:.0f}" for r in watched),
            events_per_client=statistics.median(r["events_per_client_min"] for r in watched),
            events_per_client_max=max(r["events_per_client_max"] for r in watched),
            clients_ended_early=sum(r["clients_ended_early"] for r in watched),
            events_written=statistics.median(r["events_written"] for r in quiet + watched),
            event_writes=statistics.median(r["event_writes"] for r in quiet + watched),
            event_writes_per_s=statistics.median(
                r["event_writes"] / r["wall_s"] for r in quiet + watched
            ),
        )
    )


if __name__ == "__main__":
    main()
