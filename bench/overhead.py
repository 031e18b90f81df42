"""Overhead: 0 ms latency, so the engine, not the provider, is the limit.

    .venv/bin/python bench/overhead.py [--requests 20000] [--concurrency 256] [--repeats 1]
        [--only batch-run-sqlite,server-postgresql,...]

Runs, one after another on the same mock provider: the bare aiohttp loop (the ceiling), the
peers that are installed (bench/peers), then datamill through `datamill batch run` and
through `datamill serve` (upload, create, poll, download with the openai SDK), each on
SQLite and PostgreSQL. For every contender: requests/s (wall time of the whole run; for the
server, from the upload to the output file on disk, as the server is already up) and CPU
microseconds per request (the contender's processes, the whole client included; the mock's
CPU is not counted). The line ends with datamill's ratios to the ceiling and to the SDK
script.

With ``--repeats N`` every contender runs N times, interleaved (one round of every
contender, then the next round), so a slow spell of the machine touches them all alike.
Each figure is then given as its minimum, median and maximum (``_min``, ``_med``,
``_max``); a ratio's minimum is datamill's slowest run against the baseline's median of the
same sitting.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from contenders import contenders
from harness import line, mock_provider, write_chat_input


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each contender")
    parser.add_argument("--only", default="", help="comma-separated contender names")
    args = parser.parse_args()
    n, c = args.requests, args.concurrency
    available = contenders(n, c)
    wanted = [name for name in args.only.split(",") if name] or list(available)
    runs: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, mock_provider() as mock:
        work = Path(tmp)
        write_chat_input(work / "in.jsonl", n)
        for _ in range(args.repeats):
            for name in wanted:
                result = available[name](mock, work)
                if result is not None:
                    runs.setdefault(name, []).append(result)
    figures: dict[str, object] = {"requests": n, "concurrency": c, "repeats": args.repeats}
    figures.update(summarize(runs, repeats=args.repeats))
    print(line("overhead", **figures))


def summarize(runs: dict[str, list[dict[str, float]]], *, repeats: int) -> dict[str, float]:
    """Each contender's rps and CPU per request, and datamill's ratios to the baselines."""
    figures: dict[str, float] = {}
    for name, results in runs.items():
        for key in ("rps", "cpu_us"):
            values = [result[key] for result in results]
            if repeats == 1:
                figures[f"{name}_{key}"] = values[0]
            else:
                figures[f"{name}_{key}_min"] = min(values)
                figures[f"{name}_{key}_med"] = statistics.median(values)
                figures[f"{name}_{key}_max"] = max(values)
    for name, results in runs.items():
        if not name.startswith(("batch-run", "server")):
            continue
        rates = [result["rps"] for result in results]
        for base in ("ceiling", "sdk"):
            if base not in runs:
                continue
            base_rate = statistics.median(result["rps"] for result in runs[base])
            if repeats == 1:
                figures[f"{name}_vs_{base}"] = rates[0] / base_rate
            else:
                figures[f"{name}_vs_{base}_min"] = min(rates) / base_rate
                figures[f"{name}_vs_{base}_med"] = statistics.median(rates) / base_rate
    return figures


if __name__ == "__main__":
    main()
