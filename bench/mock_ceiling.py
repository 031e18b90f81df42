"""The mock provider's own ceiling: requests/s through it from one bare aiohttp client process.

    .venv/bin/python bench/mock_ceiling.py [--requests 20000] [--concurrency 64]

Prints one line: ``mock_ceiling requests=N concurrency=C wall_s=... rps=...``.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp
import orjson

from datamill_testing.mock_process import MockProviderProcess

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is installed with the dev extras
    uvloop = None  # type: ignore[assignment]

WARM_UP = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "warm up"}]})


async def drive(url: str, *, requests: int, concurrency: int) -> float:
    """Send ``requests`` chat completions, ``concurrency`` at a time; return the wall time."""
    headers = {"Content-Type": "application/json"}
    failures = 0

    async def send(session: aiohttp.ClientSession, body: bytes) -> None:
        nonlocal failures
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            failures += response.status != 200

    bodies = (
        orjson.dumps({"model": "m", "messages": [{"role": "user", "content": f"prompt {n}"}]})
        for n in range(requests)
    )

    async def worker(session: aiohttp.ClientSession) -> None:
        for body in bodies:  # one generator shared by every worker: each body is sent once
            await send(session, body)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Open the connections before the clock starts.
        await asyncio.gather(*(send(session, WARM_UP) for _ in range(concurrency)))
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{failures} requests failed")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with MockProviderProcess(latency_ms=0) as mock:
        coro = drive(
            f"{mock.base_url}/chat/completions",
            requests=args.requests,
            concurrency=args.concurrency,
        )
        wall = uvloop.run(coro) if uvloop is not None else asyncio.run(coro)
        assert mock.stats()["by_status"]["200"] == args.requests + args.concurrency
    print(
        f"mock_ceiling requests={args.requests} concurrency={args.concurrency} "
        f"wall_s={wall:.3f} rps={args.requests / wall:.0f}"
    )


if __name__ == "__main__":
    main()
