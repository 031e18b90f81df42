"""The side-task supervisor: restarts a failing task with backoff, fails loudly when a
critical task (or one that keeps failing) fails, and stops tasks by name in the order given.

Time is the test's: `sleep` on the clock returns at once and is recorded, so a backoff of
30 s costs nothing and the delays can be checked."""

from __future__ import annotations

import asyncio
import logging

import pytest

from datamill.clock import wait_done, wait_event
from datamill.errors import SideTaskFailed
from datamill.supervisor import RestartPolicy, Supervisor


class InstantClock:
    """Sleeps return at once (after one turn of the loop) and move time forward."""

    def __init__(self) -> None:
        self.elapsed = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return 1_700_000_000.0 + self.elapsed

    def monotonic(self) -> float:
        return self.elapsed

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)
        self.elapsed += seconds


class HeldClock(InstantClock):
    """Sleeps wait until the test calls `release()`: time passes only when told."""

    def __init__(self) -> None:
        super().__init__()
        self._release = asyncio.Event()

    def release(self) -> None:
        self._release.set()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await self._release.wait()
        self.elapsed += seconds


async def test_a_failing_side_task_is_restarted_with_backoff_and_logged_by_name(caplog):
    clock = InstantClock()
    supervisor = Supervisor(clock, owner="test")
    runs = 0
    steady = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 3:
            raise RuntimeError(f"boom {runs}")
        steady.set()
        await asyncio.Event().wait()  # runs until stopped

    with caplog.at_level(logging.ERROR, logger="datamill.supervisor"):
        supervisor.start("sweep", flaky)
        await asyncio.wait_for(steady.wait(), timeout=10)
    assert runs == 4
    assert clock.sleeps == [0.5, 1.0, 2.0]  # doubling from RestartPolicy.backoff
    failures = [r for r in caplog.records if "side task sweep failed" in r.getMessage()]
    assert len(failures) == 3
    assert "restarting in 0.5 s" in failures[0].getMessage()
    assert failures[0].exc_info is not None  # the traceback is logged
    assert supervisor.failure is None
    assert supervisor.running("sweep")
    await supervisor.stop_all()
    assert not supervisor.names


async def test_a_critical_side_task_that_fails_stops_its_owner_with_a_clear_message():
    seen: list[SideTaskFailed] = []
    supervisor = Supervisor(InstantClock(), owner="test", on_failure=seen.append)
    starts = 0

    async def writer() -> None:
        nonlocal starts
        starts += 1
        raise OSError("disk full")

    async def heartbeat() -> None:
        await asyncio.Event().wait()

    supervisor.start("heartbeat", heartbeat)
    supervisor.start("writer", writer, critical=True)
    failure = await asyncio.wait_for(supervisor.wait_failed(), timeout=10)
    assert starts == 1  # a critical task is not restarted
    assert seen == [failure]
    assert failure.name == "writer"
    assert isinstance(failure.cause, OSError)
    assert str(failure) == "side task 'writer' failed: OSError: disk full"
    assert supervisor.running("heartbeat")  # the owner decides what stops, and in what order
    await supervisor.stop_all()


async def test_a_side_task_that_keeps_failing_fails_its_owner_after_the_limit():
    clock = InstantClock()
    supervisor = Supervisor(clock, policy=RestartPolicy(limit=3, backoff=1.0, max_backoff=1.5))
    starts = 0

    async def broken() -> None:
        nonlocal starts
        starts += 1
        raise ValueError("still broken")

    supervisor.start("monitor", broken)
    failure = await asyncio.wait_for(supervisor.wait_failed(), timeout=10)
    assert starts == 3
    assert clock.sleeps == [1.0, 1.5]  # capped at max_backoff
    assert failure.failures == 3
    assert str(failure) == "side task 'monitor' failed 3 times in a row: ValueError: still broken"


async def test_a_long_healthy_run_forgets_earlier_failures():
    clock = InstantClock()
    supervisor = Supervisor(clock, policy=RestartPolicy(limit=2, healthy_after=60.0))
    starts = 0
    third = asyncio.Event()

    async def sometimes() -> None:
        nonlocal starts
        starts += 1
        if starts == 2:
            clock.elapsed += 120.0  # this run was healthy for two minutes, then failed
        if starts == 3:
            third.set()
            await asyncio.Event().wait()
        raise RuntimeError("again")

    supervisor.start("native", sometimes)
    await asyncio.wait_for(third.wait(), timeout=10)
    # Two failures, but not in a row: the second came after a healthy run.
    assert supervisor.failure is None
    assert clock.sleeps == [0.5, 0.5]
    await supervisor.stop_all()


async def test_side_tasks_stop_by_name_in_the_order_given_then_the_rest_last_started_first():
    supervisor = Supervisor(InstantClock())
    ended: list[str] = []

    def loop(name: str):
        async def run() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                ended.append(name)

        return run

    for name in ("writer", "heartbeat", "native", "sweep"):
        supervisor.start(name, loop(name))
    await asyncio.sleep(0)
    await supervisor.stop("sweep")
    await supervisor.stop("native")
    assert ended == ["sweep", "native"]
    assert supervisor.names == ["writer", "heartbeat"]
    await supervisor.stop_all()
    assert ended == ["sweep", "native", "heartbeat", "writer"]
    await supervisor.stop("sweep")  # stopping one already stopped is harmless


async def test_a_stop_asks_first_and_cancels_after_the_grace_period():
    clock = HeldClock()
    supervisor = Supervisor(clock)
    polite_done = asyncio.Event()
    stubborn_cancelled = asyncio.Event()

    async def polite() -> None:
        await polite_done.wait()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()  # ignores its stop
        except asyncio.CancelledError:
            stubborn_cancelled.set()
            raise

    supervisor.start("writer", polite, stop=polite_done.set)
    assert await supervisor.stop("writer", grace=30) is True  # ended when asked

    supervisor.start("stubborn", stubborn, stop=lambda: None)
    stopping = asyncio.create_task(supervisor.stop("stubborn", grace=30))
    await asyncio.sleep(0.01)
    assert not stopping.done()  # waiting out its grace, on the test's clock
    assert clock.sleeps[-1] == 30
    clock.release()
    assert await asyncio.wait_for(stopping, timeout=10) is False
    assert stubborn_cancelled.is_set()


async def test_a_name_runs_once():
    supervisor = Supervisor(InstantClock(), owner="worker w1")

    async def idle() -> None:
        await asyncio.Event().wait()

    supervisor.start("sweep", idle)
    with pytest.raises(ValueError, match="worker w1 already runs a side task named 'sweep'"):
        supervisor.start("sweep", idle)
    await supervisor.stop_all()


async def test_a_side_task_that_returns_has_ended_and_is_not_restarted():
    supervisor = Supervisor(InstantClock())
    starts = 0

    async def once() -> None:
        nonlocal starts
        starts += 1

    supervisor.start("validation", once)
    await asyncio.wait_for(supervisor.wait("validation"), timeout=10)
    assert starts == 1
    assert not supervisor.running("validation")
    assert supervisor.failure is None
    await supervisor.stop_all()


async def test_timed_waits_follow_the_clock():
    clock = HeldClock()
    event = asyncio.Event()
    waiting = asyncio.create_task(wait_event(clock, event, 5.0))
    await asyncio.sleep(0.01)
    assert not waiting.done()  # five seconds have not passed on this clock
    clock.release()
    assert await asyncio.wait_for(waiting, timeout=10) is False

    event.set()
    assert await wait_event(clock, event, 5.0) is True
    never = asyncio.get_running_loop().create_future()
    assert await asyncio.wait_for(wait_done(clock, [never], 5.0), timeout=10) is False
    assert not never.cancelled()  # waiting for it never cancels it
    never.cancel()
