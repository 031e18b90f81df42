"""Overhead: 0 ms latency, so the engine, not the provider, is the limit.

    .venv/bin/python bench/overhead.py [--requests 20000] [--concurrency 256]
        [--only batch-run-sqlite,server-postgresql,...]

Runs, one after another on the same mock provider: the bare aiohttp loop (the ceiling), the
peers that are installed (bench/peers), then datamill through `datamill batch run` and
through `datamill serve` (upload, create, poll, download with the openai SDK), each on
SQLite and PostgreSQL. For every contender: requests/s (wall time of the whole run; for the
server, from the upload to the output file on disk, as the server is already up) and CPU
microseconds per request (the contender's processes, the whole client included; the mock's
CPU is not counted). The
line ends with datamill's ratios to the ceiling and to the SDK script.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from contenders import contenders
from harness import line, mock_provider, write_chat_input


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--only", default="", help="comma-separated contender names")
    args = parser.parse_args()
    n, c = args.requests, args.concurrency
    available = contenders(n, c)
    wanted = [name for name in args.only.split(",") if name] or list(available)
    figures: dict[str, object] = {"requests": n, "concurrency": c}
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, mock_provider() as mock:
        work = Path(tmp)
        write_chat_input(work / "in.jsonl", n)
        for name in wanted:
            result = available[name](mock, work)
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
