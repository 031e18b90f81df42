"""An injectable clock, so tests can move time instead of sleeping.

Every sleep and every timed wait in datamill goes through a `Clock`: `clock.sleep()`, or
`wait_event()` and `wait_done()` below for "until this happens, at most that long". A test
passes a clock whose `sleep` it controls, and every interval, poll and timeout follows it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any, Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch (stored timestamps)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin (intervals, rate limits)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def wait_event(clock: Clock, event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until ``event`` is set, at most ``timeout`` seconds of ``clock``; True if set.

    The system clock waits with asyncio's own timer (no task per wait: some waits are on
    the hot path); any other clock races its `sleep`, so the test decides when time is up."""
    if event.is_set():
        return True
    if timeout is None:
        await event.wait()
        return True
    if type(clock).sleep is SystemClock.sleep:
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return False
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        await _race(clock, {waiter}, timeout)
    finally:
        waiter.cancel()
    return event.is_set()


async def wait_done(
    clock: Clock, futures: Iterable[asyncio.Future[Any]], timeout: float | None
) -> bool:
    """Wait until every one of ``futures`` is done, at most ``timeout`` seconds of
    ``clock``; True if all are. Like `asyncio.wait`, it never cancels them."""
    pending = {future for future in futures if not future.done()}
    if not pending:
        return True
    if timeout is None:
        await asyncio.wait(pending)
        return True
    if type(clock).sleep is SystemClock.sleep:
        _, left = await asyncio.wait(pending, timeout=timeout)
        return not left
    return await _race(clock, pending, timeout)


async def _race(clock: Clock, pending: set[asyncio.Future[Any]], timeout: float) -> bool:
    """Wait for all of ``pending`` or for ``clock.sleep(timeout)``; True if all ended."""
    sleeper = asyncio.ensure_future(clock.sleep(timeout))
    try:
        while pending and not sleeper.done():
            done, _ = await asyncio.wait({*pending, sleeper}, return_when=asyncio.FIRST_COMPLETED)
            pending -= done
    finally:
        sleeper.cancel()
    return not pending
