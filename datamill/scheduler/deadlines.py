"""Per-call timeouts without a timer per call.

`asyncio.timeout` schedules and cancels a timer handle for every provider call, a few percent
of the engine's CPU at thousands of calls per second. `CallDeadlines` keeps the deadlines in a
dict instead and one watcher task cancels the calls that overrun. The watcher runs only while
some call is out, sleeps until the earliest deadline, and is woken when an earlier one
arrives.

A call is cancelled only while it is registered, that is while it awaits the provider: the
caller registers just before the call and unregisters synchronously after it, so the cancel
can never land anywhere else.
"""

from __future__ import annotations

import asyncio
import contextlib

from datamill.clock import Clock, wait_event


class CallDeadlines:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._deadlines: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._earliest = float("inf")
        self._changed = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None

    def start(self, seconds: float) -> asyncio.Task[object]:
        """Register the current task's call; it is cancelled if still out in ``seconds``."""
        task = asyncio.current_task()
        assert task is not None
        deadline = self._clock.monotonic() + seconds
        self._deadlines[task] = deadline
        if self._watcher is None:
            self._earliest = deadline
            self._watcher = asyncio.create_task(self._watch(), name="call-deadlines")
        elif deadline < self._earliest:
            self._earliest = deadline
            self._changed.set()
        return task

    def finish(self, task: asyncio.Task[object]) -> bool:
        """Unregister the call; True when it was cancelled because its deadline passed."""
        self._deadlines.pop(task, None)
        if not self._deadlines and self._watcher is not None:
            self._changed.set()  # nothing is out: let the watcher end now
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    async def _watch(self) -> None:
        try:
            while self._deadlines:
                now = self._clock.monotonic()
                self._earliest = min(self._deadlines.values())
                if self._earliest > now:
                    self._changed.clear()
                    await wait_event(self._clock, self._changed, self._earliest - now)
                    continue
                for task, deadline in list(self._deadlines.items()):
                    if deadline <= now:
                        del self._deadlines[task]
                        self._expired.add(task)
                        task.cancel()
        finally:
            self._watcher = None

    async def aclose(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
