"""Rate and concurrency primitives, driven by an injectable clock.

`TokenBucket.reserve` books capacity and says how long to wait for it, so callers queue in
arrival order and the rate is smooth, with no thundering herd when a window resets.
"""

from __future__ import annotations

import asyncio
from collections import deque


class TokenBucket:
    """``rate`` tokens per second, holding at most ``capacity`` (the burst)."""

    def __init__(self, rate: float, capacity: float, *, now: float) -> None:
        self.rate = rate
        self.capacity = max(capacity, 1.0)
        self._tokens = self.capacity
        self._stamp = now

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def reserve(self, amount: float, *, now: float) -> float:
        """Take ``amount`` tokens (possibly going into debt); return seconds to wait."""
        self._refill(now)
        self._tokens -= amount
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate

    def refund(self, amount: float) -> None:
        """Give back tokens reserved for a call that was never sent."""
        self._tokens = min(self.capacity, self._tokens + amount)

    def set_rate(self, rate: float, *, now: float) -> None:
        self._refill(now)
        self.rate = rate


class AdjustableLimit:
    """A semaphore whose size can change while tasks hold or wait for it."""

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._held = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def held(self) -> int:
        return self._held

    def set_limit(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._wake()

    async def acquire(self) -> None:
        if self._held < self._limit and not self._waiters:
            self._held += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                # Granted and cancelled at once: pass the slot on.
                self._held -= 1
                self._wake()
            else:
                self._waiters.remove(future)
            raise

    def release(self) -> None:
        self._held -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._held < self._limit:
            future = self._waiters.popleft()
            if not future.done():
                self._held += 1
                future.set_result(None)
