"""The engine's own throughput: one batch through a worker to the mock provider at 0 ms.

    .venv/bin/python bench/engine_throughput.py [--requests 20000] [--concurrency 256]
        [--store sqlite|postgresql]

Runs in one process (upload, validation, execution, durable recording, finalization) against
the mock provider in a subprocess. Prints one line:
``engine_throughput store=S requests=N concurrency=C validate_s=... run_s=... rps=...
cpu_us_per_request=...`` where ``run_s`` runs from ``in_progress`` to ``completed`` and the
CPU time is this process's (the mock's is excluded). The full benchmark suite, peers
included, belongs to the performance work; this probe keeps the figure reproducible.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack
from pathlib import Path

import orjson

from datamill.engine.worker import WorkerOptions
from datamill.protocol.batches import BatchCreate
from datamill.runtime import Runtime
from datamill.settings import load_settings
from datamill_testing.mock_process import MockProviderProcess
from datamill_testing.postgres import TemporaryPostgres

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is installed with uvicorn[standard]
    uvloop = None  # type: ignore[assignment]


def batch_input(requests: int) -> bytes:
    return b"".join(
        orjson.dumps(
            {
                "custom_id": f"r{n}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "m", "messages": [{"role": "user", "content": f"hello {n}"}]},
            }
        )
        + b"\n"
        for n in range(requests)
    )


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1 << 20):
        yield data[start : start + (1 << 20)]


async def measure(url: str, base_url: str, *, requests: int, concurrency: int) -> str:
    env = {
        "DATAMILL_DATABASE_URL": url,
        "DATAMILL_MAX_FILE_LINES": str(max(requests, 50_000)),
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": "bench",
    }
    runtime = await Runtime.open(load_settings(env))
    try:
        start = time.perf_counter()
        file = await runtime.files.upload(
            chunks(batch_input(requests)), filename="bench.jsonl", purpose="batch"
        )
        batch = await runtime.batches.create(
            BatchCreate(
                input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
        )
        worker = runtime.new_worker(
            WorkerOptions(concurrency=concurrency, idle_poll=0.02, sweep_interval=0.1)
        )
        task = asyncio.create_task(worker.run())
        while (await runtime.batches.get(batch.id)).status == "validating":  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        validated = time.perf_counter()
        cpu = time.process_time()
        batch = await runtime.batches.wait(batch.id, poll=0.02)
        run = time.perf_counter() - validated
        cpu_us = (time.process_time() - cpu) / requests * 1e6
        worker.stop()
        await task
    finally:
        await runtime.close()
    store = "sqlite" if url.startswith("sqlite") else "postgresql"
    return (
        f"engine_throughput store={store} requests={requests} concurrency={concurrency} "
        f"status={batch.status} validate_s={validated - start:.2f} run_s={run:.2f} "
        f"rps={requests / run:.0f} cpu_us_per_request={cpu_us:.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    with ExitStack() as stack:
        mock = stack.enter_context(MockProviderProcess())
        if args.store == "sqlite":
            home = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            url = f"sqlite+aiosqlite:///{home / 'bench.db'}"
        else:
            url = stack.enter_context(TemporaryPostgres()).url
        coroutine = measure(
            url, mock.base_url, requests=args.requests, concurrency=args.concurrency
        )
        line = uvloop.run(coroutine) if uvloop is not None else asyncio.run(coroutine)
    print(line)


if __name__ == "__main__":
    main()
