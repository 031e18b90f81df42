"""Small builders the tests share: JSONL inputs, uploads, running a worker until a batch ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import orjson

from datamill.engine.worker import Worker, WorkerOptions
from datamill.protocol.batches import BatchCreate
from datamill.runtime import Runtime
from datamill.storage.records import BatchRecord

CHAT = "/v1/chat/completions"


def chat_line(
    custom_id: str, *, model: str = "mock-model", text: str | None = None, **body: Any
) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": CHAT,
        "body": {
            "model": model,
            "messages": [{"role": "user", "content": text or f"question {custom_id}"}],
            **body,
        },
    }


def jsonl(lines: Iterable[dict[str, Any] | bytes | str]) -> bytes:
    out = bytearray()
    for line in lines:
        if isinstance(line, dict):
            out += orjson.dumps(line)
        elif isinstance(line, str):
            out += line.encode()
        else:
            out += line
        out += b"\n"
    return bytes(out)


async def stream(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def submit(
    runtime: Runtime, data: bytes, *, endpoint: str = CHAT, **options: Any
) -> BatchRecord:
    """Upload ``data`` and create a batch from it."""
    file = await runtime.files.upload(stream(data), filename="input.jsonl", purpose="batch")
    return await runtime.batches.create(
        BatchCreate(
            input_file_id=file.id,
            endpoint=endpoint,
            completion_window="24h",
            datamill=options or None,
        )
    )


@asynccontextmanager
async def running_worker(runtime: Runtime, **options: Any) -> AsyncIterator[Worker]:
    """A worker running in the background for the duration of the block."""
    defaults: dict[str, Any] = {"idle_poll": 0.05, "sweep_interval": 0.1, "drain_timeout": 1.0}
    worker = runtime.new_worker(WorkerOptions(**{**defaults, **options}))
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await task


async def read_all(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def output_lines(runtime: Runtime, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    _, chunks = await runtime.files.content(file_id)
    return [orjson.loads(line) for line in (await read_all(chunks)).splitlines()]


async def run_batch(
    runtime: Runtime,
    data: bytes,
    *,
    timeout: float = 60,
    worker: dict[str, Any] | None = None,
    **options: Any,
) -> tuple[BatchRecord, list[dict[str, Any]], list[dict[str, Any]]]:
    """Submit ``data``, run a worker until the batch ends; return (batch, outputs, errors)."""
    batch = await submit(runtime, data, **options)
    async with running_worker(runtime, **(worker or {})):
        batch = await runtime.batches.wait(batch.id, timeout=timeout, poll=0.05)
    return (
        batch,
        await output_lines(runtime, batch.output_file_id),
        await output_lines(runtime, batch.error_file_id),
    )
