"""Latency hiding: a provider that takes 200 ms per call, so concurrency decides the time.

    .venv/bin/python bench/latency.py [--case large|small|both] [--repeats 1]
        [--requests N --concurrency C] [--latency-ms 200] [--only batch-run-sqlite,...]

Two cases by default: ``large``, 20,000 requests at concurrency 256, and ``small``, 2,000
requests at concurrency 100, where start-up and the time from the last answer to the
output file count for much more (4 s of ideal time). ``--requests`` and ``--concurrency``
run one case of your own.

The ideal wall time is N x latency / concurrency. For every contender the line gives its
wall time, its ratio to the ideal and to the bare loop of the same sitting (the ceiling:
its own start-up and client included). datamill's targets: 1.10x the ideal on the large
case, 1.15x the ceiling on the small one, start-up included. Every contender is told the
concurrency: the peers by their flag, datamill by the deployment's ``max_concurrency``.
``--untold`` configures no ``max_concurrency``; `DATAMILL_CONCURRENCY` still gives it, and a
concurrency given is used from the first call. With ``--repeats N`` each figure is the
median of N interleaved runs, with the slowest run's ratio beside it (``_worst``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from contenders import contenders
from harness import line, mock_provider, write_chat_input

DEFAULT_CONTENDERS = (
    "ceiling,sdk,litellm,batch-run-sqlite,batch-run-postgresql,server-sqlite,server-postgresql"
)
CASES = {"large": (20_000, 256), "small": (2_000, 100)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=[*CASES, "both"], default="both")
    parser.add_argument("--requests", type=int, help="with --concurrency: a case of your own")
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--only", default=DEFAULT_CONTENDERS)
    parser.add_argument("--untold", action="store_true", help="no max_concurrency configured")
    args = parser.parse_args()
    if args.requests or args.concurrency:
        cases = [(args.requests or 20_000, args.concurrency or 256)]
    else:
        cases = [CASES[name] for name in (CASES if args.case == "both" else [args.case])]
    for n, c in cases:
        run_case(n, c, args)


def run_case(n: int, c: int, args: argparse.Namespace) -> None:
    ideal = n * args.latency_ms / 1000 / c
    available = contenders(n, c, tell=not args.untold)
    names = [name for name in args.only.split(",") if name]
    walls: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, mock_provider(latency_ms=args.latency_ms) as mock:
        work = Path(tmp)
        write_chat_input(work / "in.jsonl", n)
        for _ in range(args.repeats):
            for name in names:
                result = available[name](mock, work)
                if result is not None:
                    walls.setdefault(name, []).append(n / result["rps"])
    figures: dict[str, object] = {
        "requests": n,
        "concurrency": c,
        "latency_ms": args.latency_ms,
        "ideal_s": ideal,
        "concurrency_told": not args.untold,
        "repeats": args.repeats,
    }
    ceiling = statistics.median(walls["ceiling"]) if "ceiling" in walls else None
    for name, values in walls.items():
        wall = statistics.median(values)
        figures[f"{name}_wall_s"] = wall
        figures[f"{name}_vs_ideal"] = wall / ideal
        if ceiling is not None and name != "ceiling":
            figures[f"{name}_vs_ceiling"] = wall / ceiling
            if args.repeats > 1:
                figures[f"{name}_vs_ceiling_worst"] = max(values) / ceiling
    print(line("latency", **figures))


if __name__ == "__main__":
    main()
