"""The gate every call to one deployment passes: circuit breaker, Retry-After pause,
concurrency, requests and tokens per minute, and adaptive slow-down on 429.

Adaptation is AIMD: a 429 cuts the admitted rate (or, with no rpm configured, the
concurrency) by 30%, at most once a second; calls that succeed win it back step by step.
A ``Retry-After`` pauses the whole deployment until it passes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from datamill.clock import Clock
from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.base import RateLimitHints, Usage
from datamill.scheduler.breaker import CircuitBreaker
from datamill.scheduler.limits import AdjustableLimit, TokenBucket
from datamill.settings import DeploymentConfig

_DECREASE = 0.7
_MIN_RATE_FACTOR = 0.05
# The longest server hint (Retry-After) obeyed; a longer one is treated as this long.
MAX_PAUSE = 300.0


@dataclass(slots=True)
class Permit:
    """Held for the duration of one call; handed back to `DeploymentGate.release`."""

    tokens: int
    probe: bool


class DeploymentGate:
    def __init__(
        self,
        config: DeploymentConfig,
        clock: Clock,
        *,
        default_concurrency: int,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 2.0,
    ) -> None:
        self._clock = clock
        now = clock.monotonic()
        self.max_concurrency = config.max_concurrency or default_concurrency
        self.concurrency = AdjustableLimit(self.max_concurrency)
        self.base_rpm = config.rpm
        # One second of burst: a full minute at once would trip per-second enforcement.
        self.rpm = TokenBucket(config.rpm / 60, config.rpm / 60, now=now) if config.rpm else None
        self.tpm = TokenBucket(config.tpm / 60, config.tpm / 60, now=now) if config.tpm else None
        self.breaker = CircuitBreaker(clock, threshold=breaker_threshold, cooldown=breaker_cooldown)
        self.paused_until = 0.0
        self.rate_factor = 1.0
        self._last_decrease = float("-inf")
        self._last_increase = now
        self._successes = 0
        self.rate_limited = 0

    async def acquire(self, tokens: int) -> Permit:
        """Wait until a call with about ``tokens`` tokens may go to this deployment."""
        clock = self._clock
        while True:
            probe = await self.breaker.wait_ready()
            pause = self.paused_until - clock.monotonic()
            if pause <= 0:
                break
            if probe:
                self.breaker.record_probe_abandoned()
            await clock.sleep(pause)
        try:
            await self.concurrency.acquire()
        except asyncio.CancelledError:
            if probe:
                self.breaker.record_probe_abandoned()
            raise
        delay = 0.0
        now = clock.monotonic()
        if self.rpm is not None:
            delay = self.rpm.reserve(1, now=now)
        if self.tpm is not None:
            delay = max(delay, self.tpm.reserve(tokens, now=now))
        if delay > 0:
            try:
                await clock.sleep(delay)
            except asyncio.CancelledError:
                self._give_back(tokens, probe)
                raise
        return Permit(tokens=tokens, probe=probe)

    def _give_back(self, tokens: int, probe: bool) -> None:
        self.concurrency.release()
        if self.rpm is not None:
            self.rpm.refund(1)
        if self.tpm is not None:
            self.tpm.refund(tokens)
        if probe:
            self.breaker.record_probe_abandoned()

    def abandon(self, permit: Permit) -> None:
        """The call was never sent (the task was cancelled)."""
        self._give_back(permit.tokens, permit.probe)

    def release(
        self,
        permit: Permit,
        *,
        error: ProviderError | None,
        usage: Usage | None = None,
        hints: RateLimitHints | None = None,
    ) -> None:
        """Hand back a permit with the call's outcome (``hints``: the provider's rate-limit
        headers, when it sent them)."""
        if self.tpm is not None and usage is not None:
            # Settle the estimate against what was really used.
            self.tpm.refund(permit.tokens - usage.total_tokens)
        if error is None:
            self.breaker.record_success()
            self._on_success()
        elif error.category is ErrorCategory.rate_limited:
            self.rate_limited += 1
            # A 429 proves the deployment is up; it is not a breaker failure.
            self.breaker.record_success()
            self._on_rate_limited(error.retry_after)
        elif error.category.trips_breaker:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()
        # Last: a 429 cuts concurrency from the calls in flight when it came, this one included.
        self.concurrency.release()

    def _on_rate_limited(self, retry_after: float | None) -> None:
        now = self._clock.monotonic()
        if retry_after:
            self.paused_until = max(self.paused_until, now + min(retry_after, MAX_PAUSE))
        if now - self._last_decrease < 1.0:
            return
        self._last_decrease = now
        self._last_increase = now
        if self.rpm is not None and self.base_rpm is not None:
            self.rate_factor = max(_MIN_RATE_FACTOR, self.rate_factor * _DECREASE)
            self.rpm.set_rate(self.base_rpm / 60 * self.rate_factor, now=now)
        else:
            in_use = min(self.concurrency.limit, max(self.concurrency.held, 1))
            self.concurrency.set_limit(int(in_use * _DECREASE))

    def _on_success(self) -> None:
        if self.rpm is not None and self.base_rpm is not None:
            if self.rate_factor < 1.0:
                now = self._clock.monotonic()
                if now - self._last_increase >= 1.0:
                    self._last_increase = now
                    self.rate_factor = min(1.0, self.rate_factor + 0.05)
                    self.rpm.set_rate(self.base_rpm / 60 * self.rate_factor, now=now)
            return
        if self.concurrency.limit < self.max_concurrency:
            self._successes += 1
            if self._successes >= self.concurrency.limit:
                self._successes = 0
                self.concurrency.set_limit(self.concurrency.limit + 1)

    def snapshot(self) -> dict[str, Any]:
        """Live state for /api/info and the dashboard."""
        now = self._clock.monotonic()
        return {
            "circuit": self.breaker.state.value,
            "in_flight": self.concurrency.held,
            "concurrency_limit": self.concurrency.limit,
            "admitted_rpm": round(self.base_rpm * self.rate_factor, 1) if self.base_rpm else None,
            "paused_for": round(max(0.0, self.paused_until - now), 3),
            "rate_limited": self.rate_limited,
            "breaker_opens": self.breaker.opens,
        }
