"""What the engine's parts share: the store, the deployments, the settings, the clock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from datamill.clock import Clock, SystemClock, wait_event
from datamill.events.publisher import EventPublisher
from datamill.scheduler.router import Router
from datamill.settings import Settings
from datamill.storage.blobs import BlobStore
from datamill.storage.database import Database


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
