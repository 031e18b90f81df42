"""Per-call deadlines: one watcher cancels overrunning calls, and only those."""

from __future__ import annotations

import asyncio
import time

import pytest

from datamill.clock import SystemClock
from datamill.scheduler.deadlines import CallDeadlines


async def _call(deadlines: CallDeadlines, timeout: float, work: float) -> str:
    task = deadlines.start(timeout)
    try:
        await asyncio.sleep(work)
    except asyncio.CancelledError:
        if deadlines.finish(task):
            task.uncancel()
            return "timed out"
        raise
    deadlines.finish(task)
    return "answered"


async def test_a_call_past_its_deadline_is_cancelled_and_told_so():
    deadlines = CallDeadlines(SystemClock())
    start = time.monotonic()

    outcome = await _call(deadlines, 0.05, 10)

    assert outcome == "timed out"
    assert 0.04 <= time.monotonic() - start < 1


async def test_calls_within_their_deadline_are_left_alone():
    deadlines = CallDeadlines(SystemClock())

    outcomes = await asyncio.gather(*(_call(deadlines, 1.0, 0.01) for _ in range(50)))

    assert outcomes == ["answered"] * 50


async def test_an_earlier_deadline_wakes_the_watcher():
    deadlines = CallDeadlines(SystemClock())
    slow = asyncio.create_task(_call(deadlines, 30, 0.5))
    await asyncio.sleep(0.01)  # the watcher now sleeps until the 30 s deadline
    start = time.monotonic()

    assert await _call(deadlines, 0.05, 10) == "timed out"

    assert time.monotonic() - start < 1
    assert await slow == "answered"


async def test_a_cancel_from_outside_is_not_a_timeout():
    deadlines = CallDeadlines(SystemClock())
    task = asyncio.create_task(_call(deadlines, 10, 10))
    await asyncio.sleep(0.01)

    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_watcher_stops_when_no_call_is_out_and_restarts():
    deadlines = CallDeadlines(SystemClock())
    assert await _call(deadlines, 1.0, 0.01) == "answered"
    await asyncio.sleep(0.05)

    assert deadlines._watcher is None
    assert await _call(deadlines, 0.02, 10) == "timed out"
    await deadlines.aclose()
