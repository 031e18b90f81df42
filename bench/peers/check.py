"""Run the peers through the shared harness and print one line of figures per run.

    .venv/bin/python bench/peers/check.py [--requests 5000] [--concurrency 64,256]
        [--peers bare_loop,sdk_script,litellm_router] [--ratelimit-requests 2000]

Throughput: each peer at each concurrency against one mock provider at 0 ms latency, with
requests/s (the process's whole wall time, start-up included), CPU microseconds per request
(the peer process's own user + system time from ``wait4``; the mock is not counted), and
the output's line count and distinct custom ids, which must both equal the input's.
Rate limit, told: the mock at 3,000 rpm with 5% injected 500s, ``--rpm 3000`` given to the
peers that apply a limit, with the requests that ended failed, the 429s the mock answered,
and the wall time against the ideal N / rate. A peer that is not installed is skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for the harness

from datamill_testing.mock_process import MockProviderProcess
from harness import PYTHON, ROOT, count_custom_ids, line, run_process, write_chat_input

PEERS = ROOT / "bench" / "peers"
PYTHONS = {
    "bare_loop": Path(PYTHON),
    "sdk_script": Path(PYTHON),
    "litellm_router": ROOT / "bench" / ".venvs" / "litellm" / "bin" / "python",
}
RATE_LIMITED = ("sdk_script", "litellm_router")  # the bare loop has no limiter and no retries
RPM = 3000
ERROR_RATE = 0.05


@dataclass(frozen=True, slots=True)
class PeerRun:
    """One peer process run to its end, with what it wrote and what the mock saw."""

    returncode: int
    wall: float
    cpu: float
    lines: int
    distinct: int
    summary: dict[str, object]
    by_status: dict[str, int]
    tail: str


def run_peer(
    name: str, mock: MockProviderProcess, work: Path, *, concurrency: int, rpm: int | None = None
) -> PeerRun:
    output = work / f"{name}-{concurrency}.jsonl"
    command = [str(PYTHONS[name]), str(PEERS / f"{name}.py"), "--base-url", mock.base_url]
    command += ["--input", str(work / "in.jsonl"), "--output", str(output)]
    command += ["--concurrency", str(concurrency)]
    if rpm is not None:
        command += ["--rpm", str(rpm)]
    mock.reset_stats()
    done = run_process(command, timeout=900)
    lines, distinct = count_custom_ids(output)
    return PeerRun(
        returncode=done.returncode,
        wall=done.wall,
        cpu=done.cpu,
        lines=lines,
        distinct=distinct,
        summary=last_json_line(done.output),
        by_status=mock.stats()["by_status"],
        tail=done.output[-2000:],
    )


def last_json_line(output: str) -> dict[str, object]:
    """The peer's summary: the last line of its output that parses as a JSON object."""
    for text in reversed(output.strip().splitlines()):
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {}


def check_throughput(peers: list[str], concurrencies: list[int], requests: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, MockProviderProcess(latency_ms=0) as mock:
        work = Path(tmp)
        write_chat_input(work / "in.jsonl", requests)
        for name in peers:
            for concurrency in concurrencies:
                run = run_peer(name, mock, work, concurrency=concurrency)
                report(f"peer_throughput peer={name}", run, requests, concurrency=concurrency)


def check_rate_limit(peers: list[str], requests: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, MockProviderProcess(latency_ms=0) as mock:
        work = Path(tmp)
        write_chat_input(work / "in.jsonl", requests)
        for name in peers:
            mock.control(rpm=RPM, error_rate=ERROR_RATE)  # a full bucket for every peer
            run = run_peer(name, mock, work, concurrency=concurrency, rpm=RPM)
            calls = sum(run.by_status.values())
            report(
                f"peer_ratelimit peer={name}",
                run,
                requests,
                concurrency=concurrency,
                failed=run.summary.get("failed"),
                calls=calls,
                http_429=run.by_status.get("429", 0),
                share_429=run.by_status.get("429", 0) / max(1, calls),
                http_500=run.by_status.get("500", 0),
                vs_ideal=run.wall / (requests / (RPM / 60)),
            )


def report(name: str, run: PeerRun, requests: int, **extra: object) -> None:
    figures: dict[str, object] = {
        "requests": requests,
        "rc": run.returncode,
        "wall_s": run.wall,
        "rps": requests / run.wall,
        "cpu_us_per_request": run.cpu / requests * 1e6,
        "peer_wall_s": run.summary.get("wall_s"),
        "lines": run.lines,
        "distinct": run.distinct,
        **extra,
    }
    print(line(name, **figures), flush=True)
    if run.returncode != 0 or not run.lines == run.distinct == requests:
        print(run.tail, file=sys.stderr)


def installed(names: list[str]) -> list[str]:
    return [name for name in names if PYTHONS[name].exists()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", default="64,256")
    parser.add_argument("--peers", default=",".join(PYTHONS))
    parser.add_argument("--ratelimit-requests", type=int, default=2000, help="0 skips it")
    parser.add_argument("--ratelimit-concurrency", type=int, default=64)
    args = parser.parse_args()
    peers = installed(args.peers.split(","))
    concurrencies = [int(c) for c in args.concurrency.split(",") if c]
    if args.requests and concurrencies:
        check_throughput(peers, concurrencies, args.requests)
    if args.ratelimit_requests:
        limited = [name for name in peers if name in RATE_LIMITED]
        check_rate_limit(limited, args.ratelimit_requests, args.ratelimit_concurrency)


if __name__ == "__main__":
    main()
