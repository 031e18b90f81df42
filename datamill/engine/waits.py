"""Ending the waits of a closed batch's calls at once.

A batch call waits before it is sent: at its deployment's gate (an open circuit, a
``Retry-After`` pause, a slow rate) and in a backoff between two tries. Such a wait can last
minutes, and a batch's cancel (or expiry, or spent budget) or its worker's stop must not
wait for it to end. `CallWaits` knows which calls wait, by batch, and cancels the waits of
a batch that closed, or every wait when the worker stops.

As with `scheduler/deadlines.py`, a wait is cancelled only while it is registered:
`CallWaits.wait` registers just before it and unregisters synchronously after it, so the
cancel never lands on a call out at a provider or on a result being recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class CallWaits:
    def __init__(self) -> None:
        self._waiting: dict[asyncio.Task[object], str] = {}
        self._closed: set[asyncio.Task[object]] = set()
        self._stopped = False

    @property
    def waiting(self) -> int:
        """How many calls wait now."""
        return len(self._waiting)

    async def wait(
        self,
        batch_id: str,
        start: Callable[[], Awaitable[T]],
        *,
        discard: Callable[[T], None] | None = None,
    ) -> T | None:
        """What ``start()`` gives, awaited as a wait of a call of ``batch_id``; None when the
        batch closed first (a result that came in that same instant goes to ``discard``).
        A worker's stop cancels it, and no wait begins once the worker stopped: both raise
        `asyncio.CancelledError`."""
        task = self._enter(batch_id)
        try:
            result = await start()
        except asyncio.CancelledError:
            if not self._leave(task) or task.cancelling():
                raise
            return None
        if self._leave(task):
            if discard is not None:
                discard(result)
            return None
        return result

    def _enter(self, batch_id: str) -> asyncio.Task[object]:
        """Register the current task's wait for a call of ``batch_id``."""
        if self._stopped:
            raise asyncio.CancelledError
        task = asyncio.current_task()
        assert task is not None
        self._waiting[task] = batch_id
        return task

    def _leave(self, task: asyncio.Task[object]) -> bool:
        """Unregister the wait; True when it was ended because its batch closed (that
        cancel is then withdrawn: the caller records the request as closed). A wait ended
        by the worker's stop stays cancelled."""
        self._waiting.pop(task, None)
        if task in self._closed:
            self._closed.discard(task)
            task.uncancel()
            return True
        return False

    def close(self, closing: Callable[[str], str | None]) -> None:
        """End the waits of every batch that ``closing`` gives a closing code."""
        for task, batch_id in list(self._waiting.items()):
            if closing(batch_id) is not None:
                del self._waiting[task]
                self._closed.add(task)
                task.cancel()

    def stop(self) -> None:
        """End every wait, and let no new one begin: the worker stops, and the requests
        whose calls were not sent go back to pending with its leases."""
        self._stopped = True
        for task in self._waiting:
            task.cancel()
        self._waiting.clear()
