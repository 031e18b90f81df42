"""A circuit breaker per deployment.

closed: calls flow; ``threshold`` consecutive unhealthy failures (server errors, timeouts,
connection failures) open it. open: calls wait for ``cooldown`` seconds (doubling on each
failed probe up to ``max_cooldown``). half-open: one probe call goes; success closes the
circuit, failure opens it again. Waiting calls do not spend retry attempts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from enum import StrEnum

from datamill.clock import Clock


class BreakerState(StrEnum):
    closed = "closed"  # calls flow
    open = "open"  # calls wait for the cooldown
    half_open = "half_open"  # one probe call is out


class CircuitBreaker:
    def __init__(
        self,
        clock: Clock,
        *,
        threshold: int = 5,
        cooldown: float = 2.0,
        max_cooldown: float = 60.0,
    ) -> None:
        self._clock = clock
        self.threshold = threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.state = BreakerState.closed
        self.failures = 0
        self.opened_at = 0.0
        self.cooldown = cooldown
        self.opens = 0
        self._changed = asyncio.Event()
        # Told of every change of state (the dashboard's deployment events); must not block.
        self.on_change: Callable[[BreakerState], None] | None = None

    def _set_state(self, state: BreakerState) -> None:
        self.state = state
        if self.on_change is not None:
            self.on_change(state)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def blocking(self) -> bool:
        """Whether a call would wait now: open and cooling down, or a probe out. Once the
        cooldown is over a call goes (as the probe), so a fallback never starves it."""
        if self.state is BreakerState.open:
            return self.opened_at + self.cooldown > self._clock.monotonic()
        return self.state is BreakerState.half_open

    async def wait_ready(self) -> bool:
        """Wait until a call may go. True when this caller is the half-open probe."""
        while True:
            if self.state is BreakerState.closed:
                return False
            if self.state is BreakerState.open:
                remaining = self.opened_at + self.cooldown - self._clock.monotonic()
                if remaining <= 0:
                    self._set_state(BreakerState.half_open)
                    return True
                await self._clock.sleep(remaining)
                continue
            # half-open: the probe is out; wait for its verdict.
            await self._changed.wait()

    def record_success(self) -> None:
        if self.state is not BreakerState.closed:
            self._set_state(BreakerState.closed)
            self.cooldown = self.base_cooldown
            self._notify()
        self.failures = 0

    def record_failure(self) -> None:
        self.failures += 1
        if self.state is BreakerState.half_open:
            self.cooldown = min(self.cooldown * 2, self.max_cooldown)
            self._open()
        elif self.state is BreakerState.closed and self.failures >= self.threshold:
            self._open()

    def record_probe_abandoned(self) -> None:
        """The probe never reached the provider (cancelled): let another caller probe."""
        if self.state is BreakerState.half_open:
            self.opened_at = self._clock.monotonic() - self.cooldown
            self._set_state(BreakerState.open)
            self._notify()

    def _open(self) -> None:
        self.opened_at = self._clock.monotonic()
        self.opens += 1
        self._set_state(BreakerState.open)
        self._notify()
