"""Output drafts: a running batch's files are written as their lines become final, and
finalization only adds the rest. The files must come out byte for byte as a finalization
from scratch writes them, whoever drafted, took over or crashed on the way."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from datamill.engine.finalize import extend_drafts, finalize_batch, render_results
from datamill.engine.validation import validate_batch
from datamill.storage import drafts
from datamill.storage.batches import release_claims
from datamill.storage.leasing import lease_requests
from datamill.storage.records import RequestResult
from datamill.storage.results import record_results
from datamill.storage.schema import output_drafts
from tests.conftest import mock_deployment
from tests.engine.conftest import wait_until
from tests.helpers import chat_line, jsonl, read_all, running_worker, submit

NOW = 1_700_000_000.0


async def from_scratch(runtime, batch_id: str, *, ok: bool) -> bytes:
    return b"".join([chunk async for chunk in render_results(runtime.database, batch_id, ok=ok)])


async def file_bytes(runtime, file_id: str | None) -> bytes:
    if file_id is None:
        return b""
    _, chunks = await runtime.files.content(file_id)
    return await read_all(chunks)


def result_for(request, *, ok: bool, rng: random.Random) -> RequestResult:
    # Bodies of varied length, so chunk boundaries fall inside lines.
    body = b'{"text": "%s"}' % (b"x" * rng.randrange(1, 300))
    return RequestResult(
        request_id=request.id,
        batch_id=request.batch_id,
        line=request.line,
        custom_id=request.custom_id,
        ok=ok,
        status_code=200 if ok else 500,
        body=body,
        provider_request_id=f"req_{request.line}",
        error_code=None if ok else "server_error",
        error_message=None if ok else "boom",
        deployment="d",
        attempts=1,
        input_tokens=1,
        cached_tokens=0,
        output_tokens=1,
        reasoning_tokens=0,
        finished_at=NOW,
    )


async def test_drafted_files_equal_files_written_from_scratch(make_runtime, mock_provider):
    runtime = await make_runtime([mock_deployment(mock_provider)])
    runtime.blobs.chunk_size = 1024  # many chunks from a small batch
    database = runtime.database
    batch = await submit(runtime, jsonl([chat_line(f"r{i}") for i in range(400)]))
    await validate_batch(runtime.engine, batch, worker_id="w1")
    rng = random.Random(7)

    leased = await lease_requests(database, batch_id=batch.id, worker_id="w1", limit=400, now=NOW)
    order = list(leased)
    rng.shuffle(order)
    # Results arrive in a random order, a fifth of them failures; drafts are extended as
    # they do, by the worker that leases, while some results are still missing.
    for start in range(0, 300, 50):
        done = [result_for(r, ok=rng.random() > 0.2, rng=rng) for r in order[start : start + 50]]
        await record_results(database, done, now=NOW)
        await extend_drafts(database, runtime.blobs, batch, owner="w1", now=NOW)
    # Every request below line 200 finishes: the prefix is final, the drafts grow past it.
    below = [r for r in order[300:] if r.line < 200]
    await record_results(database, [result_for(r, ok=True, rng=rng) for r in below], now=NOW)
    await extend_drafts(database, runtime.blobs, batch, owner="w1", now=NOW)
    output_draft = await drafts.get_draft(database, batch.id, "output")
    assert output_draft is not None
    assert output_draft.chunks > 0
    assert output_draft.through_line >= 199
    # Another worker does not touch a draft it does not own.
    await extend_drafts(database, runtime.blobs, batch, owner="w2", now=NOW)
    assert await drafts.get_draft(database, batch.id, "output") == output_draft

    rest = [r for r in order[300:] if r.line >= 200]
    await record_results(database, [result_for(r, ok=False, rng=rng) for r in rest], now=NOW)
    record = await runtime.batches.get(batch.id)
    assert await finalize_batch(database, runtime.blobs, runtime.clock, record, worker_id="f")

    record = await runtime.batches.get(batch.id)
    assert record.status == "completed"
    assert await file_bytes(runtime, record.output_file_id) == await from_scratch(
        runtime, batch.id, ok=True
    )
    assert await file_bytes(runtime, record.error_file_id) == await from_scratch(
        runtime, batch.id, ok=False
    )
    output = await runtime.files.get(record.output_file_id)
    assert output.lines == len((await from_scratch(runtime, batch.id, ok=True)).splitlines())
    async with database.read() as conn:
        assert (await conn.execute(select(output_drafts))).all() == []


async def test_a_finalization_that_failed_midway_is_redone_from_the_draft(
    make_runtime, mock_provider, monkeypatch
):
    runtime = await make_runtime([mock_deployment(mock_provider)])
    runtime.blobs.chunk_size = 512
    database = runtime.database
    batch = await submit(runtime, jsonl([chat_line(f"r{i}") for i in range(120)]))
    await validate_batch(runtime.engine, batch, worker_id="w1")
    rng = random.Random(11)
    leased = await lease_requests(database, batch_id=batch.id, worker_id="w1", limit=120, now=NOW)
    await record_results(database, [result_for(r, ok=True, rng=rng) for r in leased[:100]], now=NOW)
    await extend_drafts(database, runtime.blobs, batch, owner="w1", now=NOW)
    assert (await drafts.get_draft(database, batch.id, "output")).chunks > 0
    await record_results(database, [result_for(r, ok=True, rng=rng) for r in leased[100:]], now=NOW)

    # The first finalizer dies after writing part of the tail.
    original = runtime.blobs.append
    calls = 0

    async def dying_append(blob_id, data, *, first_seq, offset):
        nonlocal calls
        calls += 1

        async def cut():
            sent = 0
            async for piece in data:
                yield piece
                sent += len(piece)
                if sent > 600:
                    raise RuntimeError("killed mid-write")

        return await original(blob_id, cut(), first_seq=first_seq, offset=offset)

    monkeypatch.setattr(runtime.blobs, "append", dying_append)
    record = await runtime.batches.get(batch.id)
    with pytest.raises(RuntimeError, match="killed mid-write"):
        await finalize_batch(database, runtime.blobs, runtime.clock, record, worker_id="f1")
    assert calls == 1
    monkeypatch.setattr(runtime.blobs, "append", original)
    await release_claims(database, "f1", batch_id=batch.id)

    record = await runtime.batches.get(batch.id)
    assert await finalize_batch(database, runtime.blobs, runtime.clock, record, worker_id="f2")
    record = await runtime.batches.get(batch.id)
    assert await file_bytes(runtime, record.output_file_id) == await from_scratch(
        runtime, batch.id, ok=True
    )


async def test_a_running_batch_drafts_its_output_before_it_ends(make_runtime, make_mock):
    mock = make_mock(latency_ms=20)
    runtime = await make_runtime([mock_deployment(mock)])
    runtime.blobs.chunk_size = 2048
    lines = [chat_line(f"r{i}") for i in range(600)]
    lines[50] = chat_line("r50", model="reject-me")  # one failure, in the error file
    batch = await submit(runtime, jsonl(lines))
    drafted_while_running = False

    async def drafted() -> bool:
        nonlocal drafted_while_running
        record = await runtime.batches.get(batch.id)
        draft = await drafts.get_draft(runtime.database, batch.id, "output")
        if record.status == "in_progress" and draft is not None and draft.chunks >= 2:
            drafted_while_running = True
        return drafted_while_running or record.status == "completed"

    async with running_worker(runtime, concurrency=16, sweep_interval=0.05):
        await wait_until(drafted)
        record = await runtime.batches.wait(batch.id, timeout=60, poll=0.05)

    assert drafted_while_running
    assert record.status == "completed"
    assert (record.completed_count, record.failed_count) == (599, 1)
    output = await file_bytes(runtime, record.output_file_id)
    assert output == await from_scratch(runtime, batch.id, ok=True)
    assert len(output.splitlines()) == 599
    errors = await file_bytes(runtime, record.error_file_id)
    assert errors == await from_scratch(runtime, batch.id, ok=False)
    assert b'"custom_id":"r50"' in errors
