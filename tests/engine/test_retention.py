"""Retention, on both stores: what is old enough goes, what is young or still needed stays,
a finished batch reads the same afterwards, and a pass running beside a batch leaves it be."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from datamill.engine.retention import DAY, apply_retention
from datamill.errors import NotFound, StorageError
from datamill.protocol.batches import BatchCreate, BatchStatus
from datamill.render.batches import batch_object
from datamill.runtime import Runtime
from datamill.storage import files as file_repo
from datamill.storage.responses import StoredResponse, get_response, save_response
from datamill.storage.schema import DEFAULT_PROJECT_ID as PROJECT
from datamill.storage.schema import gateway_calls, requests, results
from datamill.storage.usage import GatewayCallRow, record_gateway_calls
from tests.engine.conftest import assert_each_once, wait_until
from tests.helpers import (
    CHAT,
    chat_line,
    jsonl,
    output_lines,
    read_all,
    run_batch,
    running_worker,
    stream,
    submit,
)

RETAINED = {
    "retention_files_days": 7,
    "retention_batch_requests_days": 7,
    "retention_call_logs_days": 7,
    "retention_responses_days": 7,
}
SIM = [{"name": "sim", "provider": "sim", "options": {"latency_ms": 0}}]


def lines(n: int, prefix: str = "r") -> bytes:
    return jsonl(chat_line(f"{prefix}{i}") for i in range(n))


async def count_rows(runtime: Runtime, table, batch_id: str) -> int:
    async with runtime.database.read() as conn:
        query = select(func.count()).select_from(table).where(table.c.batch_id == batch_id)
        return int(await conn.scalar(query) or 0)


async def blob_exists(runtime: Runtime, file_id: str) -> bool:
    try:
        await read_all(runtime.blobs.read(file_id))
    except StorageError:
        return False
    return True


def call_row(created_at: float) -> GatewayCallRow:
    return GatewayCallRow(
        project_id=PROJECT,
        model="m",
        deployment="sim",
        endpoint="/v1/chat/completions",
        stream=False,
        ok=True,
        error_code=None,
        input_tokens=1,
        cached_tokens=0,
        output_tokens=1,
        reasoning_tokens=0,
        cost=0.0,
        latency_ms=1.0,
        first_token_ms=None,
        created_at=created_at,
    )


def response(response_id: str, created_at: float) -> StoredResponse:
    return StoredResponse(
        id=response_id,
        project_id=PROJECT,
        model="m",
        deployment="sim",
        body=b"{}",
        input=b"[]",
        created_at=created_at,
    )


async def test_old_things_go_young_and_needed_things_stay(make_runtime, offset_clock):
    runtime = await make_runtime(SIM, clock=offset_clock, **RETAINED)
    db = runtime.database
    done, outputs, _ = await run_batch(runtime, lines(20))
    assert done.status == "completed"
    before = batch_object(done).model_dump()
    # Two uploads old enough to go; one will be the input of a batch not validated yet when
    # retention runs (no worker runs): an unfinished batch's file stays, whatever its age.
    old_upload = await runtime.files.upload(stream(b"x\n"), filename="o.jsonl", purpose="batch")
    old_input = await runtime.files.upload(
        stream(lines(5, "w")), filename="w.jsonl", purpose="batch"
    )
    now = offset_clock.now()
    await record_gateway_calls(db, [call_row(now), call_row(now + 6 * DAY)])
    await save_response(db, response("resp_old", now))
    offset_clock.jump(8 * DAY)
    now = offset_clock.now()
    young = await runtime.files.upload(stream(b"y\n"), filename="y.jsonl", purpose="batch")
    waiting = await runtime.batches.create(
        BatchCreate(input_file_id=old_input.id, endpoint=CHAT, completion_window="24h")
    )
    await save_response(db, response("resp_young", now))

    retained = await apply_retention(runtime.engine, now=now)

    assert (retained.files, retained.batch_requests, retained.call_logs) == (2, 20, 1)
    assert (retained.responses, retained.more) == (1, False)
    # The finished batch: its input file and request rows are gone; the batch reads the
    # same (status, counts, file ids), and its output file is still served.
    for gone in (done.input_file_id, old_upload.id):
        assert await file_repo.get_file(db, gone, project_id=PROJECT) is None
        assert not await blob_exists(runtime, gone)
        with pytest.raises(NotFound):
            await runtime.files.get(gone)
    assert await count_rows(runtime, requests, done.id) == 0
    assert await count_rows(runtime, results, done.id) == 0
    after = await runtime.batches.get(done.id)
    assert batch_object(after).model_dump() == before
    assert before["request_counts"] == {"total": 20, "completed": 20, "failed": 0}
    assert await output_lines(runtime, after.output_file_id) == outputs
    _, served = await runtime.batches.results(done.id, ok=True)
    assert len((await read_all(served)).splitlines()) == 20
    # Young and needed things stay.
    assert (await runtime.files.get(young.id)).id == young.id
    assert (await runtime.files.get(waiting.input_file_id)).id == waiting.input_file_id
    assert await get_response(db, "resp_young", project_id=PROJECT) is not None
    assert await get_response(db, "resp_old", project_id=PROJECT) is None
    async with db.read() as conn:
        assert await conn.scalar(select(func.count()).select_from(gateway_calls)) == 1
    # A second pass finds nothing more, and the waiting batch still runs to its end.
    assert (await apply_retention(runtime.engine, now=now)).files == 0
    async with running_worker(runtime):
        finished = await runtime.batches.wait(waiting.id, timeout=60, poll=0.05)
    assert finished.status == "completed"
    assert_each_once(
        await output_lines(runtime, finished.output_file_id),
        await output_lines(runtime, finished.error_file_id),
        [f"w{i}" for i in range(5)],
    )


async def test_nothing_goes_while_retention_is_off(make_runtime, offset_clock):
    runtime = await make_runtime(SIM, clock=offset_clock)
    done, _, _ = await run_batch(runtime, lines(3))
    await record_gateway_calls(runtime.database, [call_row(offset_clock.now())])
    offset_clock.jump(20 * DAY)  # a batch file expires after 30 days, retention or not

    retained = await apply_retention(runtime.engine, now=offset_clock.now())

    assert (retained.files, retained.batch_requests, retained.call_logs) == (0, 0, 0)
    assert await count_rows(runtime, requests, done.id) == 3
    assert (await runtime.files.get(done.input_file_id)).id == done.input_file_id


async def test_a_pass_stops_at_its_bound_and_the_next_goes_on(
    make_runtime, offset_clock, monkeypatch
):
    monkeypatch.setattr("datamill.engine.retention.MAX_ROWS", 4)
    runtime = await make_runtime(SIM, clock=offset_clock, **RETAINED)
    first, _, _ = await run_batch(runtime, lines(6))
    second, _, _ = await run_batch(runtime, lines(6, "s"))
    offset_clock.jump(8 * DAY)
    now = offset_clock.now()

    passes = []
    while not passes or passes[-1].more:
        passes.append(await apply_retention(runtime.engine, now=now))

    # A pass stops once past its bound (after a whole chunk: here a batch's 6 rows).
    assert [p.batch_requests for p in passes] == [6, 6]
    assert passes[0].more
    for batch in (first, second):
        assert await count_rows(runtime, requests, batch.id) == 0
        assert (await runtime.batches.get(batch.id)).completed_count == 6


async def test_passes_beside_a_running_batch_leave_it_be(make_runtime):
    # Retention that lets everything go at once: only what a batch still needs is kept.
    runtime = await make_runtime(
        [{"name": "sim", "provider": "sim", "options": {"latency_ms": 20}}],
        **dict.fromkeys(RETAINED, 1e-9),
    )
    ids = [f"r{i}" for i in range(200)]
    batch = await submit(runtime, jsonl(chat_line(custom_id) for custom_id in ids))
    overlapped = 0
    async with running_worker(runtime, concurrency=4):
        while True:
            status = (await runtime.batches.get(batch.id)).status
            if BatchStatus(status).terminal:
                break
            await apply_retention(runtime.engine, now=runtime.clock.now())
            after = (await runtime.batches.get(batch.id)).status
            overlapped += status == after == "in_progress"
            await asyncio.sleep(0.01)
    done = await runtime.batches.get(batch.id)

    assert overlapped >= 1
    assert done.status == "completed"
    assert (done.completed_count, done.failed_count) == (200, 0)
    outputs = await output_lines(runtime, done.output_file_id)
    assert_each_once(outputs, await output_lines(runtime, done.error_file_id), ids)
    # Finished, it goes like any other: its rows and input, never its output or counts.
    await wait_until(lambda: _pruned(runtime, done.id, done.input_file_id), timeout=60, poll=0.05)
    assert (await runtime.batches.get(done.id)).completed_count == 200
    assert await output_lines(runtime, done.output_file_id) == outputs


async def _pruned(runtime: Runtime, batch_id: str, input_file_id: str) -> bool:
    await apply_retention(runtime.engine, now=runtime.clock.now())
    if await count_rows(runtime, requests, batch_id):
        return False
    return await file_repo.get_file(runtime.database, input_file_id, project_id=PROJECT) is None


async def test_the_workers_sweep_applies_retention(make_runtime, offset_clock):
    runtime = await make_runtime(SIM, clock=offset_clock, **RETAINED)
    done, _, _ = await run_batch(runtime, lines(4))
    offset_clock.jump(8 * DAY)

    async def swept() -> bool:
        if await count_rows(runtime, requests, done.id):
            return False
        return not await blob_exists(runtime, done.input_file_id)

    async with running_worker(runtime):
        await wait_until(swept)

    assert (await runtime.batches.get(done.id)).completed_count == 4
