"""What a failed call does next: the one retry decision of batch and gateway calls.

A call walks its plan's deployments (`router.Attempts`). After a failure `RetryDecision`
says, from the `ProviderError`, the tries so far and the policy (``max_retries``):

- ``set_aside``: the deployment cannot be reached as configured (``network_setup``); the
  plan's next deployment now, the failed one dropped from the plan, spending no retry;
- ``retry``: a retryable failure (429, 5xx, timeout, connection); the plan's next
  deployment now;
- ``back_off``: the same, but every deployment failed this round: wait `delay()` seconds
  (the server's ``Retry-After`` obeyed up to `MAX_PAUSE`, or jittered exponential backoff),
  then the plan's next round;
- ``give_up``: the failure is final (not retryable, the last deployment set aside, or more
  than ``max_retries`` failures; a 429 spends no retry).

An interactive call (the gateway's, ``max_retries=None``) makes one round over its plan and
never backs off: a client waits for it.
"""

from __future__ import annotations

import random
from enum import Enum

from datamill.errors import ErrorCategory, ProviderError
from datamill.scheduler.gate import MAX_PAUSE
from datamill.scheduler.router import Attempts

BASE_DELAY = 0.5
MAX_DELAY = 30.0


class RetryAction(Enum):
    set_aside = "set_aside"  # now, at the plan's next deployment; the failed one dropped
    retry = "retry"  # now, at the plan's next deployment
    back_off = "back_off"  # after `RetryDecision.delay()` seconds, the plan's next round
    give_up = "give_up"  # the failure is the call's final answer


class RetryDecision:
    """One call's retries across its failures (made at its first failure, so a call that
    succeeds at once costs nothing here). `after()` moves ``attempts`` to the deployment
    the next try goes to."""

    __slots__ = ("_attempts", "_error", "_max_retries", "_rng", "_tries", "failures")

    def __init__(self, attempts: Attempts, *, max_retries: int | None, rng: random.Random) -> None:
        self._attempts = attempts
        self._max_retries = max_retries
        self._rng = rng
        self._error: ProviderError | None = None
        self._tries = 0
        self.failures = 0  # those that spent a retry

    def after(self, error: ProviderError, *, tries: int) -> RetryAction:
        """What the call does after ``error``, its ``tries``-th call."""
        self._error, self._tries = error, tries
        category = error.category
        attempts = self._attempts
        if category is ErrorCategory.network_setup and attempts.drop():
            return RetryAction.set_aside
        if not category.retryable:
            return RetryAction.give_up
        if self._max_retries is None:
            return RetryAction.retry if attempts.advance() else RetryAction.give_up
        # A 429 says "later", not "failed": like a wait at an open circuit, it spends no
        # retry. A batch's completion window bounds how long its requests wait.
        if category is not ErrorCategory.rate_limited:
            self.failures += 1
            if self.failures > self._max_retries:
                return RetryAction.give_up
        return RetryAction.retry if attempts.advance() else RetryAction.back_off

    def delay(self) -> float:
        """Seconds to wait before the next round, after ``back_off``."""
        retry_after = self._error.retry_after if self._error is not None else None
        return backoff_delay(self._tries, retry_after=retry_after, rng=self._rng)


def backoff_delay(retry: int, *, retry_after: float | None, rng: random.Random) -> float:
    """Seconds before retry number ``retry`` (1 for the first retry).

    A server hint (``Retry-After``) is obeyed up to `MAX_PAUSE`, with a little jitter on top
    so a crowd of waiting calls does not return in the same millisecond; otherwise
    exponential backoff with full jitter, capped at `MAX_DELAY`.
    """
    if retry_after is not None and retry_after > 0:
        hint = min(retry_after, MAX_PAUSE)
        return hint + rng.uniform(0, min(1.0, hint * 0.1))
    ceiling = min(MAX_DELAY, BASE_DELAY * 2 ** (retry - 1))
    return rng.uniform(ceiling / 2, ceiling)
