"""Peer ``bare_loop``: the ceiling, what Python can do here with no engine at all.

One ``aiohttp.ClientSession`` on uvloop, ``C`` requests in flight at most, orjson, no retries,
no rate limiter, no durability: each result is appended to a buffered file as it arrives.
Every other contender's figures read as a fraction of this one. ``--rpm`` and
``--max-retries`` are accepted for the shared interface and ignored (with a warning).

    .venv/bin/python bench/peers/bare_loop.py --base-url URL --input in.jsonl
        --output out.jsonl --concurrency C
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import aiohttp
import orjson
import uvloop
from peer_cli import PeerArgs, parse_args, print_summary, warn

PEER = "bare_loop"
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer bench"}


def read_bodies(path: Path) -> Iterator[tuple[str, bytes]]:
    """(custom_id, encoded body) per input line, read lazily."""
    with path.open("rb") as handle:
        for raw in handle:
            if raw.strip():
                line = orjson.loads(raw)
                yield line["custom_id"], orjson.dumps(line["body"])


class Results:
    """Result lines appended to a buffered file as they arrive, with ok/failed counts."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.ok = 0
        self.failed = 0

    def record(self, custom_id: str, response: object, error: str | None) -> None:
        if error is None:
            self.ok += 1
        else:
            self.failed += 1
        line = {"custom_id": custom_id, "response": response, "error": error}
        self._handle.write(orjson.dumps(line) + b"\n")


async def send(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[object, str | None]:
    """One attempt: (response body, None) on a 200, else (None, what went wrong)."""
    try:
        async with session.post(url, data=body, headers=HEADERS) as response:
            payload = await response.read()
            if response.status == 200:
                return orjson.loads(payload), None
            return None, f"HTTP {response.status}: {payload.decode(errors='replace')}"
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


async def run(args: PeerArgs, results: Results) -> None:
    url = f"{args.base_url}/chat/completions"
    semaphore = asyncio.Semaphore(args.concurrency)
    running: set[asyncio.Task[None]] = set()

    async def complete(session: aiohttp.ClientSession, custom_id: str, body: bytes) -> None:
        try:
            response, error = await send(session, url, body)
            results.record(custom_id, response, error)
        finally:
            semaphore.release()

    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=None)  # the ceiling waits as long as the server takes
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for custom_id, body in read_bodies(args.input):
            # Acquired before the task exists: at most C tasks alive, whatever the input's size.
            await semaphore.acquire()
            task = asyncio.create_task(complete(session, custom_id, body))
            running.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(running.discard)
        await asyncio.gather(*running)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    if args.rpm is not None or args.max_retries:
        warn("bare_loop has no rate limiter and no retries: --rpm and --max-retries are ignored")
    started = time.perf_counter()
    with args.output.open("wb") as handle:
        results = Results(handle)
        uvloop.run(run(args, results))
    print_summary(PEER, ok=results.ok, failed=results.failed, wall_s=time.perf_counter() - started)


if __name__ == "__main__":
    main()
