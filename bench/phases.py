"""Where the wall time of `datamill batch run` goes: imports, opening the store, creating the
batch, validation, the calls, finalization, writing the output.

    .venv/bin/python bench/phases.py [--requests 20000] [--latency-ms 200]

Runs one `batch run` (SQLite, the deployment told 256 calls in flight) against a fresh mock
in a child process that times each phase from its own start, and prints one line:
``phases imports_s=... open_s=... create_s=... validate_s=... first_call_s=...
calls_s=... finalize_s=... write_s=... wall_s=...``. A profile of the phases, not a target:
the latency bench (`bench/latency.py`) times the whole process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import (
    PYTHON,
    datamill_env,
    line,
    mock_provider,
    sqlite_url,
    told_env,
    write_chat_input,
)

# The child: wraps the phases of `batch run` with timers, then runs the command as the CLI does.
_CHILD = r"""
import json, sys, time
T0 = time.monotonic()
marks = {}
import datamill.cli.main as cli_main
marks["imports"] = time.monotonic() - T0
import datamill.cli.run as run
import datamill.engine.maintenance as maintenance
import datamill.providers.openai as openai_provider
import datamill.runtime as runtime_module

def timed(module, name, label):
    original = getattr(module, name)
    async def wrapper(*args, **kwargs):
        start = time.monotonic()
        try:
            return await original(*args, **kwargs)
        finally:
            marks[label] = time.monotonic() - start
            marks[label + "_end"] = time.monotonic() - T0
    setattr(module, name, wrapper)

timed(run, "_find_or_create", "create")
timed(run, "_write_outputs", "write")
timed(maintenance, "validate_batch", "validate")
timed(maintenance, "finalize_batch", "finalize")
original_open = runtime_module.Runtime.open.__func__
async def open_timed(cls, *args, **kwargs):
    start = time.monotonic()
    opened = await original_open(cls, *args, **kwargs)
    marks["open"] = time.monotonic() - start
    return opened
runtime_module.Runtime.open = classmethod(open_timed)
send = openai_provider.OpenAIProvider._send
async def send_timed(self, call):
    marks.setdefault("first_call", time.monotonic() - T0)
    answer = await send(self, call)
    marks["last_answer"] = time.monotonic() - T0
    return answer
openai_provider.OpenAIProvider._send = send_timed
sys.argv = ["datamill", *sys.argv[1:]]
try:
    cli_main.app()
except SystemExit:
    pass
marks["exit"] = time.monotonic() - T0
print("PHASES " + json.dumps(marks), file=sys.stderr)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="datamill-bench-") as tmp,
        mock_provider(latency_ms=args.latency_ms) as mock,
    ):
        home = Path(tmp)
        source = write_chat_input(home / "in.jsonl", args.requests)
        env = datamill_env(
            sqlite_url(home), home, mock, **told_env(home, mock, max_concurrency=256)
        )
        started = time.monotonic()
        done = subprocess.run(
            [PYTHON, "-c", _CHILD, "batch", "run", str(source), "-o", str(home / "out.jsonl")],
            env=env,
            cwd=home,
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - started
    marks = next(
        (json.loads(text[7:]) for text in done.stderr.splitlines() if text.startswith("PHASES ")),
        None,
    )
    if done.returncode != 0 or marks is None:
        sys.exit(f"batch run failed:\n{done.stderr[-3000:]}")
    print(
        line(
            "phases",
            requests=args.requests,
            imports_s=marks["imports"],
            open_s=marks["open"],
            create_s=marks["create"],
            validate_s=marks["validate"],
            first_call_s=marks["first_call"],
            calls_s=marks["last_answer"] - marks["first_call"],
            finalize_s=marks["finalize"],
            write_s=marks["write"],
            exit_s=marks["exit"],
            wall_s=wall,
        )
    )


if __name__ == "__main__":
    main()
