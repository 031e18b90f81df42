"""What the engine's parts share: the store, the deployments, the settings, the clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from datamill.clock import Clock, SystemClock, wait_event
from datamill.events.publisher import EventPublisher
from datamill.scheduler.router import Router
from datamill.settings import Settings
from datamill.storage.blobs import BlobStore
from datamill.storage.database import Database
from datamill.storage.records import BatchRecord

# Run by the worker finalizing a batch, once its files are written and before its final
# status is: what it does is done before the batch is seen finished, and done again (so it
# must be idempotent) when a crash makes another worker finalize it.
FinishHook = Callable[[BatchRecord], Awaitable[Any]]


class WorkSignal:
    """Wakes idle workers in this process when work arrives (a new batch, a cancel).

    Workers in other processes notice within their poll interval instead."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._event = asyncio.Event()
        self._clock = clock or SystemClock()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        """Return on the next `notify()`, or after ``timeout`` seconds of the clock."""
        # Not asyncio.wait_for: on 3.11 it swallows a cancel that lands as the event is set
        # (stop() notifies, then cancels the sweep), and the sweep loop would never end.
        await wait_event(self._clock, self._event, timeout)


@dataclass(frozen=True, slots=True)
class EngineContext:
    database: Database
    blobs: BlobStore
    router: Router
    settings: Settings
    clock: Clock
    events: EventPublisher
    signal: WorkSignal = field(default_factory=WorkSignal)
    # What a batch's end brings outside the engine (a dataset import: `Runtime`).
    finish_hooks: list[FinishHook] = field(default_factory=list)
