"""Rate and concurrency primitives, driven by times the caller passes in.

`TokenBucket` only counts; `scheduler.pacing.Pacer` decides who waits for it, so a bucket
never books future capacity for a caller that may change its mind.
"""

from __future__ import annotations

import asyncio
from collections import deque


class TokenBucket:
    """``rate`` tokens per second, holding at most ``capacity`` (the burst).

    The level may go below zero: a call larger than the capacity is let through when the
    bucket is full and the calls after it wait for the debt to be paid back.
    """

    def __init__(self, rate: float, capacity: float, *, now: float, full: bool = True) -> None:
        self.rate = rate
        self.capacity = max(capacity, 1.0)
        self._tokens = self.capacity if full else 0.0
        self._stamp = now

    def level(self, now: float) -> float:
        self._refill(now)
        return self._tokens

    def _refill(self, now: float) -> None:
        # Before ``_stamp`` (a hold) nothing accrues; above the capacity (a `raise_to`)
        # nothing accrues either, and nothing is taken away.
        if now > self._stamp:
            if self._tokens < self.capacity:
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def wait_time(self, amount: float, *, now: float) -> float:
        """Seconds until ``amount`` tokens (at most a full bucket) are there; 0.0 if now."""
        self._refill(now)
        missing = min(amount, self.capacity) - self._tokens
        if missing <= 0:
            return 0.0
        return max(0.0, self._stamp - now) + missing / self.rate

    def take(self, amount: float, *, now: float) -> None:
        self._refill(now)
        self._tokens -= amount

    def refund(self, amount: float) -> None:
        """Give back tokens taken for a call that was never sent (negative: charge more)."""
        self._tokens = min(self.capacity, self._tokens + amount)

    def set_rate(self, rate: float, *, now: float, capacity: float | None = None) -> None:
        """Change the rate (and the burst); what accrued at the old rate is kept."""
        self._refill(now)
        self.rate = rate
        if capacity is not None:
            self.capacity = max(capacity, 1.0)
            self._tokens = min(self._tokens, self.capacity)

    def raise_to(self, level: float, *, now: float) -> None:
        """Hold at least ``level`` tokens: what the far end says is left, when that is more
        than this bucket holds (it may be more than the capacity: the far end's burst is
        larger); never lowers the level, and never ends a hold early."""
        self._refill(now)
        if now >= self._stamp and level > self._tokens:
            self._tokens = level

    def hold_until(self, moment: float) -> None:
        """Empty the bucket and accrue nothing before ``moment`` (a Retry-After pause):
        when the pause ends calls leave at the rate, not as one burst."""
        self._tokens = min(self._tokens, 0.0)
        self._stamp = max(self._stamp, moment)


class AdjustableLimit:
    """A semaphore whose size can change while tasks hold or wait for it. Waiters that ask
    to go ``first`` (interactive calls) are served before the others, in their own order."""

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._held = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._first: deque[asyncio.Future[None]] = deque()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def held(self) -> int:
        return self._held

    @property
    def waiting(self) -> int:
        return len(self._waiters) + len(self._first)

    def set_limit(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._wake()

    async def acquire(self, *, first: bool = False) -> None:
        if self._held < self._limit and not self._waiters and not self._first:
            self._held += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        line = self._first if first else self._waiters
        line.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                # Granted and cancelled at once: pass the slot on.
                self._held -= 1
                self._wake()
            else:
                line.remove(future)
            raise

    def release(self) -> None:
        self._held -= 1
        self._wake()

    def _wake(self) -> None:
        for line in (self._first, self._waiters):
            while line and self._held < self._limit:
                future = line.popleft()
                if not future.done():
                    self._held += 1
                    future.set_result(None)
