"""The gate every call to one deployment passes: circuit breaker, Retry-After pause,
concurrency, requests and tokens per minute, each learned when it is not configured.

A call goes through, in order: the breaker (`breaker.py`), a ``Retry-After`` pause, a
concurrency slot (`concurrency.LatencyLimit`: slow start, then cut when latency says the
server queues), and its turn in the `pacing.Pacer` line, paced at the admitted request rate
(`rate.AdmittedRate`: configured, announced in ``x-ratelimit-*`` headers, or learned from
429s) and the tokens-per-minute budget (configured or announced).

The rate is learned by what the provider takes, not by what it answers: a call counts from
the moment it is sent, and a 429 takes it back off. 429s come back at once while successes
take their time; counted by answers, the first 429 would read as "the provider takes
nothing". The rate grows while calls wait for it (the pacer ticks the gate), never only on
answers it lets through. Without an announced per-minute limit, an answer saying the
provider's bucket is empty (``x-ratelimit-remaining-requests`` of 0, a live level whatever
its reset) cuts the rate as a 429 would, before any 429 comes.

A deployment whose network setup failed (``network_setup``) is set aside for a while: the
router sends calls that have another deployment to go to there, and nothing waits for it.

Every token a call reserved comes back unless its usage settles it (a 400, a timeout, an
exception, a cancel), and no call reserves more than a minute of the token budget (what
the provider's own bucket holds): an estimate of 10^15 tokens waits for a full bucket and
leaves at most a minute of debt, it does not hold the budget for good.

Pacing holds half a second of burst. A provider's bucket and ours refill at the same rate;
with a burst no larger than the provider's, ours empties first and the provider keeps the
difference as a cushion, so a call that reaches it a little early (network, event loop)
still finds a token. A 429'd call spent one of our tokens but none of the provider's, so
each 429 widens the cushion too.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from datamill.clock import Clock
from datamill.errors import ErrorCategory, ProviderError
from datamill.metrics.calls import DeploymentMetrics
from datamill.providers.types import Usage
from datamill.ratelimit_hints import RateLimitHints
from datamill.scheduler.breaker import BreakerState, CircuitBreaker
from datamill.scheduler.concurrency import INITIAL, LatencyLimit
from datamill.scheduler.headers import read_limits
from datamill.scheduler.limits import AdjustableLimit, TokenBucket
from datamill.scheduler.pacing import EPSILON, Pacer
from datamill.scheduler.pricing import online_prices
from datamill.scheduler.rate import AdmittedRate
from datamill.scheduler.stats import CallStats
from datamill.settings import DeploymentConfig

# The longest server hint (Retry-After) obeyed; a longer one is treated as this long.
MAX_PAUSE = 300.0
# How long a deployment that failed its network setup (an untrusted certificate, an unknown
# host, a refusing proxy) is set aside: a misconfiguration does not mend itself in seconds.
SET_ASIDE_SECONDS = 60.0
BURST_SECONDS = 0.5
# Calls kept in the provider's bucket when catching up to its announced remaining count,
# and the most burst a catch-up grants: providers announce a minute's budget but may enforce
# it per second (OpenAI documents such quantization), so more than a second's worth at once
# would meet 429s.
_REMAINING_MARGIN = 2
# An answer with no more than this left in the provider's bucket says it is empty.
_EMPTY = 0
_CATCH_UP_SECONDS = 1.0
# Providers whose token budget is charged the request's max_tokens when it is admitted
# (OpenAI, Azure OpenAI, Cerebras): unused output tokens never come back to the budget.
_CHARGES_OUTPUT_BUDGET = ("api.openai.com", "openai.azure.com", "api.cerebras.ai")


@dataclass(slots=True)
class Permit:
    """Held for the duration of one call; handed back to `DeploymentGate.release`."""

    tokens: int
    probe: bool
    sent_at: float
    admitted: int  # how many calls the gate had let through before this one


def charges_output_budget(config: DeploymentConfig) -> bool:
    host = urlsplit(config.base_url or "").hostname or ""
    return host.endswith(_CHARGES_OUTPUT_BUDGET)


class DeploymentGate:
    """One deployment's gate. Guarantees: no more calls out than its concurrency limit; calls
    leave in arrival order, never faster than the admitted rate and token budget allow
    (beyond half a second of burst), and never during a pause; a call abandoned before it
    was sent gives back everything it took."""

    def __init__(
        self,
        config: DeploymentConfig,
        clock: Clock,
        *,
        default_concurrency: int,
        concurrency_told: bool = False,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 2.0,
        metrics: DeploymentMetrics | None = None,
    ) -> None:
        self._clock = clock
        now = clock.monotonic()
        self.max_concurrency = config.max_concurrency or default_concurrency
        # A maximum the user gave (the deployment's, or the command's --concurrency) is what
        # the provider takes: no slow start towards it, and no cut from latency below it.
        self.concurrency_told = config.max_concurrency is not None or concurrency_told
        self.latency_limit = LatencyLimit(
            self.max_concurrency,
            initial=self.max_concurrency if self.concurrency_told else INITIAL,
        )
        self.concurrency = AdjustableLimit(self.latency_limit.limit)
        self.breaker = CircuitBreaker(clock, threshold=breaker_threshold, cooldown=breaker_cooldown)
        self.pacer = Pacer(clock)
        self.pacer.on_wait = self._tick
        self.rate = AdmittedRate(configured_rpm=config.rpm, now=now)
        self.configured_tpm = config.tpm
        self.announced_tpm: int | None = None
        self.long_window_requests: int | None = None
        if self.rate.rate is not None:
            # A configured limit starts with its burst: nothing was sent yet.
            self._pace_requests(now, full=True)
        if config.tpm:
            self._pace_tokens(config.tpm, now, full=True)
        self._settles_to_usage = not charges_output_budget(config)
        prices = online_prices(config)
        # None when the deployment is free: no arithmetic per call then.
        self._prices = prices if (prices.input or prices.cached_input or prices.output) else None
        self.stats = CallStats()
        self._metrics = metrics  # the process's Prometheus metrics, when it keeps them
        self.sent = 0  # calls out at the provider (admitted, not yet answered)
        self.admitted = 0  # calls let through since the start
        self.rate_limited = 0
        # Until when calls go to another deployment of their plan if they can (monotonic).
        self.set_aside_until: float | None = None

    @property
    def counts_tokens(self) -> bool:
        """Whether calls are paced by tokens (a tpm configured or announced): only then
        does a call need its token estimate."""
        return self.pacer.tokens is not None

    @property
    def paused_until(self) -> float:
        return self.pacer.paused_until

    @property
    def set_aside(self) -> bool:
        """Whether the deployment failed its network setup lately (`SET_ASIDE_SECONDS`):
        a call with another deployment to go to goes there. Nothing waits for it, unlike an
        open circuit: a call with nowhere else to go fails at once, saying why."""
        until = self.set_aside_until  # read on every call's routing: no clock unless set
        return until is not None and until > self._clock.monotonic()

    # -- the way in -------------------------------------------------------------------------

    async def acquire(
        self, tokens: int, *, interactive: bool = False, timeout: float | None = None
    ) -> Permit:
        """Wait until a call with about ``tokens`` tokens may go to this deployment. An
        ``interactive`` call (the gateway's) goes ahead of waiting batch calls. Past
        ``timeout`` seconds of waiting it gives up with a ``timeout`` `ProviderError`
        (having taken nothing); a cancel gives everything back too."""
        if timeout is None:
            return await self._acquire(tokens, interactive=interactive)
        try:
            async with asyncio.timeout(timeout):
                return await self._acquire(tokens, interactive=interactive)
        except TimeoutError:
            raise ProviderError(
                ErrorCategory.timeout,
                f"waited {timeout:g} s for this deployment's rate limit or concurrency",
            ) from None

    async def _acquire(self, tokens: int, *, interactive: bool) -> Permit:
        clock = self._clock
        bucket = self.pacer.tokens
        if bucket is not None:
            # No call reserves more than the provider's bucket holds (a minute's budget): a
            # larger one could never be served, and its debt would hold the budget for good.
            tokens = min(tokens, math.ceil(bucket.rate * 60))
        tokens = max(tokens, 0)
        while True:
            probe = await self.breaker.wait_ready()
            pause = self.pacer.paused_until - clock.monotonic()
            if pause <= EPSILON:
                break
            # Waiting out a pause here, not in the pacer's line, keeps concurrency slots free.
            if probe:
                self.breaker.record_probe_abandoned()
            await clock.sleep(pause)
        try:
            await self.concurrency.acquire(first=interactive)
        except asyncio.CancelledError:
            if probe:
                self.breaker.record_probe_abandoned()
            raise
        try:
            sent_at = await self.pacer.admit(tokens, first=interactive)
        except asyncio.CancelledError:
            self.concurrency.release()
            if probe:
                self.breaker.record_probe_abandoned()
            raise
        self.sent += 1
        self.admitted += 1
        self.rate.on_sent(sent_at)
        return Permit(tokens=tokens, probe=probe, sent_at=sent_at, admitted=self.admitted)

    def abandon(self, permit: Permit) -> None:
        """The call was never sent (the task was cancelled)."""
        self.sent -= 1
        self.pacer.refund(permit.tokens)
        self.rate.on_refused(permit.sent_at)
        self.concurrency.release()
        if permit.probe:
            self.breaker.record_probe_abandoned()

    # -- the way out ------------------------------------------------------------------------

    def release(
        self,
        permit: Permit,
        *,
        error: ProviderError | None,
        usage: Usage | None = None,
        hints: RateLimitHints | None = None,
    ) -> None:
        """Hand back a permit with the call's outcome and what the answer's headers said
        (an error answer's are in ``error.rate_limits``: a 429 teaches as a success does)."""
        now = self._clock.monotonic()
        if hints is None and error is not None:
            hints = error.rate_limits
        self.sent -= 1
        cost = self._prices.cost(usage) if usage is not None and self._prices else 0.0
        latency = now - permit.sent_at
        self.stats.record(now, latency, ok=error is None, cost=cost)
        if self._metrics is not None:
            self._metrics.record(
                latency, error=None if error is None else error.category, usage=usage, cost=cost
            )
        if usage is not None:
            self._settle_tokens(permit.tokens, usage)
        elif error is not None and self.pacer.tokens is not None:
            # A failure, with no usage to settle against (a 400, a 429, a timeout): the
            # reservation comes back whole, or a huge estimate would hold the budget for good.
            self.pacer.tokens.refund(permit.tokens)
        if hints is not None:
            self._learn_from_headers(
                hints,
                now,
                sent_at=permit.sent_at,
                admitted=permit.admitted,
                refused=error is not None and error.category is ErrorCategory.rate_limited,
            )
        if error is None:
            self.breaker.record_success()
            self.set_aside_until = None
            self._tick(now)
            self._observe_latency(permit.sent_at, now)
        elif error.category is ErrorCategory.rate_limited:
            self.rate_limited += 1
            # A 429 proves the deployment is up; it is not a breaker failure.
            self.breaker.record_success()
            self.rate.on_refused(permit.sent_at)
            self._on_rate_limited(error.retry_after, now, sent_at=permit.sent_at)
        else:
            if error.category.trips_breaker:
                self.breaker.record_failure()
            else:
                self.breaker.record_success()
            if error.category in (ErrorCategory.connection, ErrorCategory.network_setup):
                # It never reached the provider, so it spent none of its limit.
                self.rate.on_refused(permit.sent_at)
            if error.category is ErrorCategory.network_setup:
                self.set_aside_until = now + SET_ASIDE_SECONDS
            if error.category is ErrorCategory.timeout:
                # The far end of a silent queue: a latency sample like any other.
                self._observe_latency(permit.sent_at, now)
        self.concurrency.release()

    def _settle_tokens(self, estimate: int, usage: Usage) -> None:
        tokens = self.pacer.tokens
        if tokens is None:
            return
        difference = estimate - usage.total_tokens
        if difference > 0 and not self._settles_to_usage:
            return  # the provider charged the output budget: so do we
        tokens.refund(difference)

    def _on_rate_limited(self, retry_after: float | None, now: float, *, sent_at: float) -> None:
        if retry_after:
            self.pacer.pause_until(now + min(retry_after, MAX_PAUSE))
        if self.rate.on_rate_limited(now, sent_at=sent_at):
            self._pace_requests(now)

    def _tick(self, now: float) -> None:
        """Grow the rate when calls have waited for it for a quiet second (`Pacer.on_wait`)."""
        if self.rate.maybe_grow(now, waiting=self.pacer.waiting > 0):
            self._pace_requests(now)

    def _learn_from_headers(
        self, hints: RateLimitHints, now: float, *, sent_at: float, admitted: int, refused: bool
    ) -> None:
        """Learn from an answer's headers; ``refused``: the answer is a 429, which cuts the
        rate itself when nothing announces the limit."""
        limits = read_limits(hints)
        if (
            not refused
            and self.rate.ceiling is None
            and limits.requests_per_minute is None
            and limits.remaining_requests is not None
            and limits.remaining_requests <= _EMPTY
            and self.rate.on_rate_limited(now, sent_at=sent_at)
        ):
            # No limit to pace at, but the provider's bucket is empty: slow down now
            # rather than at the 429 the next call would meet.
            self._pace_requests(now)
        if limits.requests_per_minute is not None and self.rate.on_announced(
            limits.requests_per_minute, now
        ):
            self._pace_requests(now)
        if limits.requests_per_minute is not None and hints.remaining_requests is not None:
            self._catch_up(hints.remaining_requests, now, admitted=admitted)
        if limits.long_window_requests is not None:
            self.long_window_requests = limits.long_window_requests
        tpm = limits.tokens_per_minute
        if tpm is not None and tpm != self.announced_tpm:
            self.announced_tpm = tpm
            if not self.configured_tpm:
                self._pace_tokens(tpm, now)

    def _catch_up(self, remaining: int, now: float, *, admitted: int) -> None:
        """Use what the provider says is left of its per-minute budget when our bucket holds
        less: its burst may be larger than ours, and it may not charge what ours did (a 500
        it refused before counting it). Calls the provider may not have counted in
        ``remaining`` yet are taken off it, with a margin: those let through after this one,
        and those still out (one let through before may reach it later, on another
        connection)."""
        bucket = self.pacer.requests
        if bucket is None:
            return
        uncounted = (self.admitted - admitted) + self.sent
        level = min(remaining - uncounted - _REMAINING_MARGIN, bucket.rate * _CATCH_UP_SECONDS)
        bucket.raise_to(level, now=now)

    def _observe_latency(self, sent_at: float, now: float) -> None:
        if self.concurrency_told:
            return  # the figure the user gave stands
        if self.latency_limit.on_latency(now - sent_at, sent_at=sent_at, now=now):
            self.concurrency.set_limit(self.latency_limit.limit)

    # -- the buckets ------------------------------------------------------------------------

    def _pace_requests(self, now: float, *, full: bool = False) -> None:
        rate = self.rate.rate
        if rate is None:
            return
        bucket = self.pacer.requests
        if bucket is None:
            # Learned while calls were already going out: start empty, the provider's
            # bucket is no fuller than ours.
            self.pacer.requests = TokenBucket(rate, rate * BURST_SECONDS, now=now, full=full)
            if self.pacer.paused_until > now:
                self.pacer.requests.hold_until(self.pacer.paused_until)
        else:
            bucket.set_rate(rate, now=now, capacity=rate * BURST_SECONDS)

    def _pace_tokens(self, tpm: int, now: float, *, full: bool = False) -> None:
        rate = tpm / 60
        bucket = self.pacer.tokens
        if bucket is None:
            self.pacer.tokens = TokenBucket(rate, rate * BURST_SECONDS, now=now, full=full)
        else:
            bucket.set_rate(rate, now=now, capacity=rate * BURST_SECONDS)

    @property
    def busy(self) -> bool:
        """Whether calls are out, or waiting for a slot, their turn or a closed circuit."""
        return (
            self.sent > 0
            or self.pacer.waiting > 0
            or self.concurrency.waiting > 0
            or self.breaker.state is not BreakerState.closed
        )

    def snapshot(self) -> dict[str, Any]:
        """Live state for /api/info and the dashboard: what was configured and learned."""
        now = self._clock.monotonic()
        rate = self.rate
        tokens = self.pacer.tokens
        return {
            "circuit": self.breaker.state.value,
            "in_flight": self.sent,
            "concurrency_limit": self.concurrency.limit,
            "concurrency_reason": self.latency_limit.reason,
            "latency_baseline_s": _rounded(self.latency_limit.baseline, 4),
            "latency_median_s": _rounded(self.latency_limit.last_median, 4),
            "admitted_rpm": _rounded(rate.rpm, 1),
            "rpm_source": rate.source,
            "rpm_ceiling": _rounded(rate.ceiling * 60 if rate.ceiling else None, 1),
            "admitted_tpm": _rounded(tokens.rate * 60 if tokens else None, 0),
            "tpm_source": "configured"
            if self.configured_tpm
            else ("headers" if self.announced_tpm else None),
            "long_window_requests": self.long_window_requests,
            "waiting": self.pacer.waiting,
            "paused_for": round(max(0.0, self.pacer.paused_until - now), 3),
            "set_aside_for": round(max(0.0, (self.set_aside_until or now) - now), 3),
            "rate_limited": self.rate_limited,
            "breaker_opens": self.breaker.opens,
        }

    def live(self) -> dict[str, Any]:
        """`snapshot()` and what the calls did lately (`CallStats`): the dashboard's view."""
        return {**self.snapshot(), **self.stats.snapshot(self._clock.monotonic())}


def _rounded(value: float | None, digits: int) -> float | None:
    return round(value, digits) if value is not None else None
