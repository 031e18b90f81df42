"""The command-line contract every peer shares, in the standard library only.

Each peer is its own process so the harness can time it with ``run_process``:

    <python> bench/peers/<peer>.py --base-url http://127.0.0.1:PORT/v1 --input in.jsonl
        --output out.jsonl --concurrency C [--rpm R] [--max-retries N]

It reads OpenAI batch JSONL (``custom_id``, ``method``, ``url``, ``body``), sends every
``body`` as a chat completion, writes one line ``{"custom_id", "response", "error"}`` per
result as it arrives, and at exit prints one JSON line ``{"peer", "ok", "failed", "wall_s"}``.
This module imports nothing outside the standard library because the LiteLLM peer runs in
its own virtualenv, where datamill is not installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO


@dataclass(frozen=True, slots=True)
class PeerArgs:
    """The parsed command line; ``rpm`` and ``max_retries`` are ``None`` when not given."""

    base_url: str
    input: Path
    output: Path
    concurrency: int
    rpm: int | None
    max_retries: int | None


def parse_args(description: str, argv: list[str] | None = None) -> PeerArgs:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--base-url", required=True, help="OpenAI base URL, ending in /v1")
    parser.add_argument("--input", required=True, type=Path, help="OpenAI batch JSONL")
    parser.add_argument("--output", required=True, type=Path, help="result JSONL to write")
    parser.add_argument("--concurrency", required=True, type=_positive, help="requests in flight")
    parser.add_argument("--rpm", type=_positive, help="the rate limit told to the peer")
    parser.add_argument("--max-retries", type=_non_negative, help="default: the tool's own")
    args = parser.parse_args(argv)
    return PeerArgs(
        base_url=args.base_url.rstrip("/"),
        input=args.input,
        output=args.output,
        concurrency=args.concurrency,
        rpm=args.rpm,
        max_retries=args.max_retries,
    )


def read_requests(path: Path) -> Iterator[tuple[str, dict[str, object]]]:
    """(custom_id, body) for each non-blank line of a batch input, read lazily."""
    with path.open("rb") as handle:
        for raw in handle:
            if raw.strip():
                line = json.loads(raw)
                yield line["custom_id"], line["body"]


def first_model(path: Path) -> str:
    """The ``model`` of the first request: a LiteLLM deployment is declared before any call."""
    for _, body in read_requests(path):
        return str(body["model"])
    raise SystemExit(f"{path} holds no requests")


def print_summary(peer: str, *, ok: int, failed: int, wall_s: float) -> None:
    summary = {"peer": peer, "ok": ok, "failed": failed, "wall_s": round(wall_s, 3)}
    print(json.dumps(summary), flush=True)


class Results:
    """Result lines appended to the output file as they arrive, with ok/failed counts."""

    def __init__(self, handle: TextIO) -> None:
        self._handle = handle
        self.ok = 0
        self.failed = 0

    def record(self, custom_id: str, response: Any, error: str | None) -> None:
        if error is None:
            self.ok += 1
        else:
            self.failed += 1
        line = {"custom_id": custom_id, "response": response, "error": error}
        self._handle.write(json.dumps(line) + "\n")


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, not {value}")
    return value
