"""Calls waiting before they are sent (at a deployment's gate behind a ``Retry-After`` pause,
in a backoff between tries) end as soon as their batch is cancelled or their worker stops,
instead of when the pause ends."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from datamill.engine.waits import CallWaits
from datamill.engine.worker import Worker
from datamill.runtime import Runtime
from datamill.storage import events as event_repo
from datamill_testing.mock_process import MockProviderProcess
from tests.conftest import mock_deployment
from tests.engine.conftest import assert_each_once, error_codes, wait_until
from tests.helpers import chat_line, jsonl, output_lines, running_worker, submit

# A provider taking one request a minute: its first answer succeeds, every other call
# meets a 429 with `Retry-After: 60`.
PAUSE = 60


async def paused(runtime: Runtime, mock: MockProviderProcess, worker: Worker) -> None:
    """Wait until the first wave was answered (one success, three 429s) and seven calls
    wait: three in their backoff, four at the gate's pause."""
    gate = runtime.router.handles[0].gate

    async def waiting() -> bool:
        return worker.waiting == 7

    await wait_until(waiting)
    stats = mock.stats()
    assert stats["total"] == 4
    assert stats["by_status"] == {"200": 1, "429": 3}
    assert gate.paused_until - time.monotonic() > PAUSE / 2


async def test_a_cancel_ends_the_calls_waiting_out_a_retry_after_pause(make_runtime, make_mock):
    mock = make_mock(rpm=1)
    runtime = await make_runtime([mock_deployment(mock)])
    ids = [f"r{i}" for i in range(20)]
    batch = await submit(runtime, jsonl(chat_line(i) for i in ids))
    async with running_worker(runtime, concurrency=4) as worker:
        await paused(runtime, mock, worker)

        start = time.monotonic()
        await runtime.batches.cancel(batch.id)
        batch = await runtime.batches.wait(batch.id, timeout=PAUSE / 2, poll=0.02)
        elapsed = time.monotonic() - start
        assert worker.waiting == 0

    assert batch.status == "cancelled"
    assert elapsed < PAUSE / 6  # about 0.2 s here; the pause had a minute left
    outputs = await output_lines(runtime, batch.output_file_id)
    errors = await output_lines(runtime, batch.error_file_id)
    assert_each_once(outputs, errors, ids)
    assert len(outputs) == 1
    assert error_codes(errors) == {"batch_cancelled": 19}
    assert (batch.completed_count, batch.failed_count) == (1, 19)
    # Nothing was sent after the first wave: the waiting calls ended unsent.
    assert mock.stats()["total"] == 4
    # What the batch's watchers were told: cancelling, then cancelled with every request.
    await runtime.events.flush()
    rows = await event_repo.read_events(
        runtime.database, after=0, topics=["batch"], batch_ids=[batch.id], limit=1000
    )
    published = [orjson.loads(row.payload) for row in rows]
    statuses = [event["status"] for event in published]
    assert "cancelling" in statuses
    assert statuses[-1] == "cancelled"
    assert published[-1]["request_counts"] == {"total": 20, "completed": 1, "failed": 19}


async def test_a_stopping_worker_ends_its_waiting_calls_and_gives_them_back(
    make_runtime, make_mock
):
    mock = make_mock(rpm=1)
    runtime = await make_runtime([mock_deployment(mock)])
    ids = [f"r{i}" for i in range(20)]
    batch = await submit(runtime, jsonl(chat_line(i) for i in ids))
    async with running_worker(runtime, concurrency=4, drain_timeout=PAUSE) as worker:
        await paused(runtime, mock, worker)
        start = time.monotonic()
    # Leaving the block stopped the worker and waited for it: no drain behind the pause.
    elapsed = time.monotonic() - start

    assert elapsed < PAUSE / 6
    batch = await runtime.batches.get(batch.id)
    assert batch.status == "in_progress"
    # The answered request is recorded; the 19 others went back to pending, unsent.
    assert (batch.completed_count, batch.failed_count) == (1, 0)
    assert mock.stats()["total"] == 4

    # Another worker takes them over: each ends once (cancelled here, to end quickly).
    await runtime.batches.cancel(batch.id)
    async with running_worker(runtime, concurrency=4):
        batch = await runtime.batches.wait(batch.id, timeout=PAUSE / 2, poll=0.02)
    assert batch.status == "cancelled"
    outputs = await output_lines(runtime, batch.output_file_id)
    errors = await output_lines(runtime, batch.error_file_id)
    assert_each_once(outputs, errors, ids)
    assert error_codes(errors) == {"batch_cancelled": 19}


async def test_a_cancel_ends_a_call_waiting_for_a_slow_rate_and_those_behind_it(
    make_runtime, make_mock
):
    # One call slot: after the first answer (which announces one request a minute), the next
    # call waits a minute for its turn at the gate and the calls behind it queue for the slot.
    mock = make_mock(rpm=1)
    runtime = await make_runtime([mock_deployment(mock)])
    ids = [f"r{i}" for i in range(6)]
    batch = await submit(runtime, jsonl(chat_line(i) for i in ids))
    async with running_worker(runtime, concurrency=1) as worker:

        async def one_waits() -> bool:
            return mock.stats()["total"] >= 1 and worker.waiting == 1

        await wait_until(one_waits)
        gate = runtime.router.handles[0].gate
        # A slow rate, not a pause: the call waits for its turn in the pacer's line.
        assert gate.snapshot()["paused_for"] == 0.0
        assert gate.pacer.waiting == 1
        assert gate.snapshot()["admitted_rpm"] == 1.0
        sent = mock.stats()["total"]
        await runtime.batches.cancel(batch.id)
        batch = await runtime.batches.wait(batch.id, timeout=PAUSE / 2, poll=0.02)

    assert batch.status == "cancelled"
    assert (batch.completed_count, batch.failed_count) == (1, 5)
    assert mock.stats()["total"] == sent


async def test_a_closing_batch_ends_its_own_waits_and_a_stop_ends_every_one():
    waits = CallWaits()
    ended: dict[str, bool] = {}

    async def wait(batch_id: str) -> None:
        try:
            slept = await waits.wait(batch_id, lambda: asyncio.sleep(3600, result="slept"))
        except asyncio.CancelledError:
            ended[batch_id] = False
            raise
        ended[batch_id] = slept is None  # None: ended because the batch closed

    cancelled, running = asyncio.create_task(wait("a")), asyncio.create_task(wait("b"))
    await asyncio.sleep(0)
    assert waits.waiting == 2

    waits.close(lambda batch_id: "batch_cancelled" if batch_id == "a" else None)
    await cancelled  # ended as closed: the cancel withdrawn, the task goes on
    assert ended == {"a": True}
    assert not running.done()

    waits.stop()
    with pytest.raises(asyncio.CancelledError):
        await running  # a stop stays a cancel: the lease goes back
    assert ended == {"a": True, "b": False}
    assert waits.waiting == 0
    started = []
    with pytest.raises(asyncio.CancelledError):
        await waits.wait("c", lambda: started.append("c") or asyncio.sleep(0))
    assert started == []  # no wait begins once stopped
