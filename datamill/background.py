"""A background writer: what a process queues in memory, written to the store in batches by
one background task, so that whoever queues never waits for a write nor fails with one.

The event publisher (`events.publisher`) and the gateway's call log (`gateway.accounting`)
are built on it. The batch engine's result writer (`engine.writer`) is not: a result must be
committed before its request counts as done; it is the durability guarantee, where these
are best effort (a process killed between a queue and its write loses what was queued).

A subclass queues with `_enqueue()` (beyond ``max_pending`` waiting items the oldest is
dropped, with a warning: a store that is down must never hold the process back), says what a
write is (`_write`: what `_take()` hands it, put back with `_put_back()` when the store
refuses it), and calls `_wake()` (write now) or `_start()` (the task runs, writing every
``interval`` seconds). A failed write is retried after a growing pause, nothing lost, and
`aclose()` stops the task and writes what is left.

In a process the task is a side task of the runtime's supervisor (`supervise`), by the
writer's name; a writer nobody supervises (a test's) starts its own task on first use.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

from datamill.clock import Clock, wait_event
from datamill.supervisor import Supervisor


@dataclass(frozen=True, slots=True)
class WriterTiming:
    """When a background writer writes: woken, or every ``interval`` seconds (None: only
    when woken); then at least ``min_gap`` seconds pass before the next write, so writes
    arriving meanwhile go together; a failed write is retried after ``retry_first``
    seconds, doubling up to ``retry_most``."""

    interval: float | None = None
    min_gap: float = 0.0
    retry_first: float = 0.1
    retry_most: float = 5.0


Item = TypeVar("Item")


class BackgroundWriter(ABC, Generic[Item]):
    def __init__(
        self,
        clock: Clock,
        timing: WriterTiming,
        *,
        name: str,
        items: str,
        log: logging.Logger,
        max_pending: int,
    ) -> None:
        self._clock = clock
        self._timing = timing
        self._name = name  # the task's name
        self._items = items  # what is queued, for the log: "events", "gateway calls"
        self._log = log
        self._queue: deque[Item] = deque(maxlen=max_pending)
        self._wake_event = asyncio.Event()
        # One write at a time: items are stored in the order they were queued.
        self._writing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._supervisor: Supervisor | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        """How many items wait to be written."""
        return len(self._queue)

    @abstractmethod
    async def _write(self) -> None:
        """Write everything queued; on failure put it back (`_put_back`) and raise."""

    def _before_close(self) -> None:
        """Called by `aclose()` before the last write (a subclass queues what it held back)."""
        return

    # -- queueing -----------------------------------------------------------------------------

    def _enqueue(self, item: Item) -> None:
        """Queue an item (the caller then wakes or starts the task)."""
        if len(self._queue) == self._queue.maxlen:
            self._log.warning("%s are not being written: dropping the oldest", self._items)
        self._queue.append(item)

    def _take(self, limit: int | None = None) -> list[Item]:
        """The oldest items queued (all, or at most ``limit``), out of the queue."""
        count = len(self._queue) if limit is None else min(limit, len(self._queue))
        return [self._queue.popleft() for _ in range(count)]

    def _put_back(self, items: list[Item]) -> None:
        """Items a write could not store, back at the front, in their order."""
        self._queue.extendleft(reversed(items))

    def supervise(self, supervisor: Supervisor) -> None:
        """Run the writing task now, as ``supervisor``'s side task named after this writer
        (restarted if it ever fails); `aclose()` then stops it there."""
        if self._supervisor is None and self._task is None and not self._closed:
            self._supervisor = supervisor
            supervisor.start(self._name, self.run, stop=self._finish)

    def _start(self) -> None:
        """Make sure the background task runs (unsupervised: started on first use, in the
        running loop)."""
        if self._supervisor is None and self._task is None and not self._closed:
            self._task = asyncio.create_task(self.run(), name=self._name)

    def _finish(self) -> None:
        """Ask the writing task to end after its current write."""
        self._closed = True
        self._wake_event.set()

    def _wake(self) -> None:
        """Write at the next opportunity (at once when idle, else after ``min_gap``)."""
        self._wake_event.set()
        self._start()

    # -- writing ------------------------------------------------------------------------------

    async def flush(self) -> None:
        """Write everything queued now (raises when the store refuses it; nothing is lost)."""
        async with self._writing:
            await self._write()

    async def run(self) -> None:
        """The writing task: write when woken or every ``interval``, until closed."""
        timing = self._timing
        delay = timing.retry_first
        while not self._closed:
            await wait_event(self._clock, self._wake_event, timing.interval)
            self._wake_event.clear()
            try:
                await self.flush()
                delay = timing.retry_first
            except Exception:
                self._log.exception(
                    "could not write %d %s; retrying in %.1f s", self.pending, self._items, delay
                )
                await self._clock.sleep(delay)
                delay = min(delay * 2, timing.retry_most)
                self._wake_event.set()
                continue
            if timing.min_gap > 0:
                await self._clock.sleep(timing.min_gap)

    async def aclose(self) -> None:
        """Stop the background task and write what is left (logged when the store refuses)."""
        self._closed = True
        self._before_close()
        if self._supervisor is not None:
            await self._supervisor.stop(self._name)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self.flush()
        except Exception:
            self._log.exception("could not write the last %d %s", self.pending, self._items)
