"""Latency hiding: a provider that takes 200 ms per call, so concurrency decides the time.

    .venv/bin/python bench/latency.py [--requests 20000] [--concurrency 256]
        [--latency-ms 200] [--only batch-run-sqlite,...]

The ideal wall time is N x latency / concurrency. For every contender the line gives its
wall time and its ratio to the ideal (1.00 is perfect; datamill's target is 1.10 or less).
Every contender is told the concurrency: the peers by their flag, datamill by the
deployment's ``max_concurrency`` (so it starts there). ``--untold`` leaves datamill's
deployment unconfigured: its limit then slow-starts from 64, doubling each round trip.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from contenders import contenders
from harness import line, mock_provider, write_chat_input

DEFAULT_CONTENDERS = (
    "ceiling,sdk,litellm,batch-run-sqlite,batch-run-postgresql,server-sqlite,server-postgresql"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--only", default=DEFAULT_CONTENDERS)
    parser.add_argument("--untold", action="store_true", help="no max_concurrency configured")
    args = parser.parse_args()
    n, c = args.requests, args.concurrency
    ideal = n * args.latency_ms / 1000 / c
    available = contenders(n, c, tell=not args.untold)
    figures: dict[str, object] = {
        "requests": n,
        "concurrency": c,
        "latency_ms": args.latency_ms,
        "ideal_s": ideal,
        "concurrency_told": not args.untold,
    }
    with tempfile.TemporaryDirectory() as tmp, mock_provider(latency_ms=args.latency_ms) as mock:
        work = Path(tmp)
        write_chat_input(work / "in.jsonl", n)
        for name in [name for name in args.only.split(",") if name]:
            result = available[name](mock, work)
            if result is None:
                continue
            wall = n / result["rps"]
            figures[f"{name}_wall_s"] = wall
            figures[f"{name}_vs_ideal"] = wall / ideal
    print(line("latency", **figures))


if __name__ == "__main__":
    main()
