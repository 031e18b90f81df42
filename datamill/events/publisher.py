"""Publishing events: the one way the engine tells the event stream that something changed.

`EventPublisher.publish()` never blocks and never fails: the event waits in memory and a
background task (`background.BackgroundWriter`) writes what piled up in one transaction, at
once when idle and then at most every ``min_gap`` seconds, so a burst of events costs one
commit. A batch's events are rendered inside that write (`storage.events.write_events`),
from the batch row as it is then: `batch_changed` (a status change) queues one at once,
`batch_moved` (its counts moved) at most every ``progress_interval`` seconds per batch, so a
batch of a million results makes a few events a second, never one per result, and the
result flushes never wait for them.

Events are notifications of changes already committed: a process killed between a change
and its event's write loses that event (the next event of the same batch carries its whole
state). A store that is down delays the writes; beyond ``max_pending`` waiting events the
oldest are dropped with a warning, so publishing can never hold the engine back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from datamill.background import BackgroundWriter, WriterTiming
from datamill.clock import Clock
from datamill.events.topics import Topic
from datamill.render.batches import batch_event
from datamill.storage.database import Database
from datamill.storage.events import NewEvent, write_events

log = logging.getLogger("datamill.events")

_STALE_ENTRIES = 1024  # progress times kept before the expired ones are dropped


class EventPublisher(BackgroundWriter[NewEvent]):
    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        min_gap: float = 0.05,
        progress_interval: float = 0.5,
        max_pending: int = 10_000,
    ) -> None:
        # Written when woken (each publish), then at most every min_gap seconds.
        timing = WriterTiming(min_gap=min_gap, retry_first=0.1, retry_most=5.0)
        super().__init__(
            clock, timing, name="event-publisher", items="events", log=log, max_pending=max_pending
        )
        self._database = database
        self._progress_interval = progress_interval
        self._batches: dict[str, None] = {}  # batches to render at the next write, in order
        self._last_progress: dict[str, float] = {}  # loop time each batch was last queued
        self._timers: dict[str, asyncio.TimerHandle] = {}
        # Called after each write (this process's hub reads at once instead of polling).
        self.on_written: Callable[[], None] | None = None
        self.written = 0  # events stored
        self.writes = 0  # transactions that stored them

    # -- publishing ---------------------------------------------------------------------------

    def publish(
        self,
        topic: Topic | str,
        payload: Mapping[str, Any],
        *,
        batch_id: str | None = None,
        project_id: str | None = None,
    ) -> None:
        """Queue an event; its payload is serialised now, so later changes to it do not
        leak in. Only ``project_id``'s subscribers see it (with a ``batch_id`` and no
        project: that batch's project's); with neither, every project's."""
        self._enqueue(NewEvent(str(topic), orjson.dumps(payload).decode(), batch_id, project_id))
        self._wake()

    def batch_changed(self, batch_id: str) -> None:
        """A batch's status changed: its event goes in the next write."""
        timer = self._timers.pop(batch_id, None)
        if timer is not None:
            timer.cancel()
        self._queue_batch(batch_id)

    def batch_moved(self, batch_id: str) -> None:
        """A batch's counts moved: an event now, or when ``progress_interval`` has passed
        since its last one."""
        if batch_id in self._batches or batch_id in self._timers:
            return  # one is coming and will show this move too
        loop = asyncio.get_running_loop()
        due = self._last_progress.get(batch_id, float("-inf")) + self._progress_interval
        wait = due - loop.time()
        if wait <= 0:
            self._queue_batch(batch_id)
        else:
            self._timers[batch_id] = loop.call_later(wait, self._progress_due, batch_id)

    def _progress_due(self, batch_id: str) -> None:
        self._timers.pop(batch_id, None)
        self._queue_batch(batch_id)

    def _queue_batch(self, batch_id: str) -> None:
        now = asyncio.get_running_loop().time()
        if len(self._last_progress) >= _STALE_ENTRIES:
            # Entries whose interval has passed decide nothing any more.
            cutoff = now - self._progress_interval
            self._last_progress = {b: t for b, t in self._last_progress.items() if t > cutoff}
        self._last_progress[batch_id] = now
        self._batches[batch_id] = None
        self._wake()

    # -- writing ------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return super().pending + len(self._batches)

    async def _write(self) -> None:
        if not self.pending:
            return
        new = self._take()
        batch_ids = list(self._batches)
        self._batches.clear()
        try:
            written = await write_events(
                self._database,
                new,
                batch_ids=batch_ids,
                render_batch=batch_event,
                now=self._clock.now(),
            )
        except BaseException:
            self._put_back(new)
            self._batches = dict.fromkeys(batch_ids) | self._batches
            raise
        self.written += written
        self.writes += 1
        if self.on_written is not None:
            self.on_written()

    def _before_close(self) -> None:
        # Progress waiting for its interval goes in the last write.
        for batch_id, timer in list(self._timers.items()):
            timer.cancel()
            self._batches[batch_id] = None
        self._timers.clear()
