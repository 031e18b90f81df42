"""`Pacer`: calls leave one at a time, in arrival order, when the buckets hold their share.

Only the call at the head of the line sleeps; the others wait for their turn. Nobody books
capacity ahead, so a new rate or a pause applies at once to every waiting call, and when a
pause ends the line drains at the rate instead of all at once (a thundering herd of calls
released together is what a provider answers with a storm of 429s). Interactive calls (the
gateway's) join the line ahead of batch calls, right behind its head.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from datamill.clock import Clock
from datamill.scheduler.limits import TokenBucket

# Waits shorter than this are rounding (float time), not a token still to come.
EPSILON = 1e-6
# The head of the line wakes at least this often to call ``on_wait``: a rate learned from
# 429s grows while calls wait for it, whatever the answers do.
TICK = 1.0


class Pacer:
    """Requests per second and tokens per second for one deployment, and its pause.

    ``requests`` and ``tokens`` are None while there is no such limit; the gate sets and
    retunes them as it learns. ``on_wait`` is called with the time whenever the head of the
    line checks the buckets (at least every `TICK` seconds while it waits).
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.requests: TokenBucket | None = None
        self.tokens: TokenBucket | None = None
        self.paused_until = float("-inf")
        self._line: deque[asyncio.Future[None]] = deque()
        self._first: set[asyncio.Future[None]] = set()  # interactive calls in the line
        self.on_wait: Callable[[float], None] | None = None

    @property
    def waiting(self) -> int:
        """Calls in line for their turn (the head included)."""
        return len(self._line)

    def pause_until(self, moment: float) -> None:
        """Nobody leaves before ``moment``; a later pause never shortens an earlier one."""
        if moment <= self.paused_until:
            return
        self.paused_until = moment
        if self.requests is not None:
            self.requests.hold_until(moment)

    def _delay(self, tokens: int, now: float) -> float:
        delay = self.paused_until - now
        if self.requests is not None:
            delay = max(delay, self.requests.wait_time(1, now=now))
        if self.tokens is not None and tokens > 0:
            delay = max(delay, self.tokens.wait_time(tokens, now=now))
        return delay

    def _take(self, tokens: int, now: float) -> None:
        if self.requests is not None:
            self.requests.take(1, now=now)
        if self.tokens is not None:
            self.tokens.take(tokens, now=now)

    async def admit(self, tokens: int, *, first: bool = False) -> float:
        """Wait for this call's turn and its share of every bucket, then take it; returns
        the (monotonic) time it was let through. A ``first`` call (interactive) joins the
        line right behind the head and the ``first`` calls already there."""
        clock = self._clock
        now = clock.monotonic()
        if not self._line and self._delay(tokens, now) <= EPSILON:
            self._take(tokens, now)
            return now
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if first and self._line:
            position = 1
            while position < len(self._line) and self._line[position] in self._first:
                position += 1
            self._line.insert(position, future)
            self._first.add(future)
        else:
            self._line.append(future)
        try:
            if self._line[0] is not future:
                await future  # set when the call ahead leaves the line
            while True:
                # Again after every sleep: the rate or the pause may have changed meanwhile.
                now = clock.monotonic()
                if self.on_wait is not None:
                    self.on_wait(now)
                delay = self._delay(tokens, now)
                if delay <= EPSILON:
                    break
                await clock.sleep(min(delay, TICK))
            self._take(tokens, now)
        finally:
            self._leave(future)
        return now

    def _leave(self, future: asyncio.Future[None]) -> None:
        was_head = self._line[0] is future
        self._line.remove(future)
        self._first.discard(future)
        if was_head and self._line and not self._line[0].done():
            self._line[0].set_result(None)

    def refund(self, tokens: int) -> None:
        """Give back what a call took and never used (it was not sent)."""
        if self.requests is not None:
            self.requests.refund(1)
        if self.tokens is not None:
            self.tokens.refund(tokens)
