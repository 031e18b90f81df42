"""`DeploymentGate`: pacing, token budgets, Retry-After, learning limits and the breaker, on a
fake clock."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.anthropic.errors import error_from_answer as anthropic_error_from_answer
from datamill.providers.base import RateLimitHints, Usage
from datamill.providers.http import HttpAnswer, error_from_answer
from datamill.scheduler.breaker import BreakerState
from datamill.scheduler.concurrency import INITIAL
from datamill.scheduler.gate import BURST_SECONDS, DeploymentGate
from datamill.settings import DeploymentConfig
from datamill_testing.mock_ratelimits import Convention, ratelimit_headers
from tests.scheduler.conftest import FakeClock


def make_gate(clock: FakeClock, **config: Any) -> DeploymentGate:
    threshold = config.pop("breaker_threshold", 3)
    return DeploymentGate(
        DeploymentConfig(name="d", **config),
        clock,
        default_concurrency=config.get("max_concurrency") or 100,
        breaker_threshold=threshold,
        breaker_cooldown=2.0,
    )


def error(category: ErrorCategory, retry_after: float | None = None) -> ProviderError:
    return ProviderError(category, f"a {category} failure", retry_after=retry_after)


async def call(gate: DeploymentGate, outcome: ProviderError | None = None, tokens: int = 1) -> None:
    """One call through the gate that ends with ``outcome`` (None: success)."""
    permit = await gate.acquire(tokens)
    gate.release(permit, error=outcome)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# -- pacing at a configured rate --------------------------------------------------------------


@pytest.mark.parametrize("rpm", [60, 120, 600])
async def test_rpm_paces_sequential_calls(clock, rpm):
    gate = make_gate(clock, rpm=rpm)
    start = clock.monotonic()
    calls = rpm // 2  # half a minute of calls

    for _ in range(calls):
        await call(gate)

    # N calls at R per minute take N/R minutes, less the half-second burst (one call at least).
    burst = max(1.0, rpm / 60 * BURST_SECONDS)
    assert clock.monotonic() - start == pytest.approx((calls - burst) / (rpm / 60))


async def test_rpm_paces_concurrent_calls_in_arrival_order(clock):
    gate = make_gate(clock, rpm=240)  # 4 per second, 2 at once
    start = clock.monotonic()
    admitted: list[tuple[int, float]] = []

    async def one(i: int) -> None:
        permit = await gate.acquire(1)
        admitted.append((i, clock.monotonic() - start))
        gate.release(permit, error=None)

    await asyncio.gather(*(one(i) for i in range(20)))

    assert [i for i, _ in admitted] == list(range(20))
    assert max(at for _, at in admitted) == pytest.approx(4.5)  # 20 calls, 2 at once, 4/s after
    assert gate.snapshot()["rpm_source"] == "configured"


async def test_no_limits_means_no_waiting(clock):
    gate = make_gate(clock)
    for _ in range(1000):
        await call(gate, tokens=10_000)
    assert clock.sleeps == []


async def test_concurrency_caps_calls_in_flight(clock):
    gate = make_gate(clock, max_concurrency=2)
    first, second = await gate.acquire(1), await gate.acquire(1)
    third = asyncio.create_task(gate.acquire(1))
    await settle()
    assert not third.done()

    gate.release(first, error=None)
    permit = await asyncio.wait_for(third, 1)
    assert gate.concurrency.held == 2
    gate.release(second, error=None)
    gate.release(permit, error=None)
    assert gate.concurrency.held == 0


async def test_concurrency_starts_with_a_slow_start(clock):
    gate = DeploymentGate(DeploymentConfig(name="d"), clock, default_concurrency=256)
    assert gate.concurrency.limit == INITIAL
    permits = [await gate.acquire(1) for _ in range(INITIAL)]
    assert gate.concurrency.held == INITIAL
    clock.advance(0.2)
    for permit in permits:  # a round of answers doubles it
        gate.release(permit, error=None)
    assert gate.concurrency.limit == 2 * INITIAL
    assert gate.snapshot()["concurrency_reason"] == "slow start"


async def test_a_configured_max_concurrency_is_taken_at_its_word(clock):
    gate = make_gate(clock, max_concurrency=256)
    assert gate.concurrency.limit == 256
    assert gate.snapshot()["concurrency_reason"] == "configured maximum"


# -- tokens per minute ------------------------------------------------------------------------


async def test_tpm_waits_for_the_estimated_tokens(clock):
    gate = make_gate(clock, tpm=1200)  # 20 tokens per second, 10 of burst
    start = clock.monotonic()

    permit = await gate.acquire(10)
    gate.release(permit, error=None)  # no usage reported: the estimate stands
    await gate.acquire(10)

    assert clock.monotonic() - start == pytest.approx(0.5)


async def test_tpm_settles_the_estimate_against_real_usage(clock):
    gate = make_gate(clock, tpm=1200)
    start = clock.monotonic()

    permit = await gate.acquire(10)
    gate.release(permit, error=None, usage=Usage(input_tokens=1, output_tokens=1))
    await gate.acquire(10)  # 8 tokens came back: 2 are missing, 0.1 s

    assert clock.monotonic() - start == pytest.approx(0.1)


async def test_tpm_charges_usage_above_the_estimate(clock):
    gate = make_gate(clock, tpm=1200)
    start = clock.monotonic()

    permit = await gate.acquire(5)
    gate.release(permit, error=None, usage=Usage(input_tokens=10, output_tokens=5))
    await gate.acquire(1)  # 15 used of 10: 6 tokens short, 0.3 s

    assert clock.monotonic() - start == pytest.approx(0.3)


@pytest.mark.parametrize("base_url", ["https://api.openai.com/v1", "https://api.cerebras.ai/v1"])
async def test_providers_that_charge_max_tokens_keep_the_unused_output_budget(clock, base_url):
    gate = make_gate(clock, tpm=1200, base_url=base_url)
    start = clock.monotonic()

    permit = await gate.acquire(10)  # 10 = prompt + max_tokens, charged at admission
    gate.release(permit, error=None, usage=Usage(input_tokens=1, output_tokens=1))
    await gate.acquire(10)  # nothing came back: a whole 10 tokens to wait for

    assert clock.monotonic() - start == pytest.approx(0.5)


# -- Retry-After ------------------------------------------------------------------------------


async def test_retry_after_pauses_every_caller(clock):
    gate = make_gate(clock)
    permit = await gate.acquire(1)
    paused_at = clock.monotonic()
    gate.release(permit, error=error(ErrorCategory.rate_limited, retry_after=5))
    assert gate.snapshot()["paused_for"] == 5.0

    admitted: list[float] = []

    async def one() -> None:
        got = await gate.acquire(1)
        admitted.append(clock.monotonic() - paused_at)
        gate.release(got, error=None)

    await asyncio.gather(*(one() for _ in range(5)))

    assert len(admitted) == 5
    assert min(admitted) >= 5.0
    assert gate.snapshot()["paused_for"] == 0.0


async def test_a_retry_after_never_shortens_a_pause_and_is_capped(clock):
    gate = make_gate(clock)
    permits = [await gate.acquire(1) for _ in range(3)]  # in flight before the first 429

    gate.release(permits[0], error=error(ErrorCategory.rate_limited, retry_after=30))
    gate.release(permits[1], error=error(ErrorCategory.rate_limited, retry_after=2))
    assert gate.snapshot()["paused_for"] == 30.0

    gate.release(permits[2], error=error(ErrorCategory.rate_limited, retry_after=10_000))
    assert gate.snapshot()["paused_for"] == 300.0


async def test_when_a_pause_ends_calls_leave_at_the_rate_not_all_at_once(clock):
    gate = make_gate(clock, rpm=600)  # 10 a second
    for _ in range(5):
        await call(gate)  # the burst is spent
    permit = await gate.acquire(1)
    gate.release(permit, error=error(ErrorCategory.rate_limited, retry_after=2))
    paused_at = clock.monotonic()
    admitted: list[float] = []

    async def one() -> None:
        got = await gate.acquire(1)
        admitted.append(clock.monotonic() - paused_at)
        gate.release(got, error=None)

    await asyncio.gather(*(one() for _ in range(30)))

    # 30 calls after a 2 s pause leave one by one, never faster than 10 a second.
    assert min(admitted) >= 2.0
    gaps = [b - a for a, b in itertools.pairwise(admitted)]
    assert min(gaps) >= 0.1 - 1e-9


# -- learning the rate ------------------------------------------------------------------------


def openai_hints(rpm: int, remaining: int, reset: float, tpm: int = 1_000_000) -> RateLimitHints:
    return RateLimitHints(
        limit_requests=rpm,
        remaining_requests=remaining,
        reset_requests=reset,
        limit_tokens=tpm,
        remaining_tokens=tpm - 100,
        reset_tokens=0.01,
    )


async def test_a_rate_announced_in_headers_paces_the_calls_after_it(clock):
    gate = make_gate(clock)
    permit = await gate.acquire(1)
    gate.release(permit, error=None, hints=openai_hints(rpm=600, remaining=0, reset=0.1))
    snapshot = gate.snapshot()
    assert (snapshot["admitted_rpm"], snapshot["rpm_source"]) == (600.0, "headers")
    assert (snapshot["admitted_tpm"], snapshot["tpm_source"]) == (1_000_000, "headers")

    start = clock.monotonic()
    for _ in range(10):
        await call(gate)
    # Learned while calls were already out, nothing left: no burst, 10 a second from the start.
    assert clock.monotonic() - start == pytest.approx(1.0)


async def test_what_the_provider_says_is_left_is_used_up_to_a_second_of_burst(clock):
    gate = make_gate(clock, rpm=600)  # our own burst: half a second, 5 calls
    for _ in range(5):
        await call(gate)
    first = await gate.acquire(1)
    assert clock.monotonic() == pytest.approx(1_000.1)  # our bucket was empty
    # The provider (a larger burst, or it did not charge some calls) says 400 are left.
    gate.release(first, error=None, hints=openai_hints(rpm=600, remaining=400, reset=0.1))

    start = clock.monotonic()
    for _ in range(10):
        await call(gate)
    assert clock.monotonic() == pytest.approx(start)  # a second's worth at once, not 398
    await call(gate)
    assert clock.monotonic() == pytest.approx(start + 0.1)  # then the rate again


async def test_calls_let_through_since_are_taken_off_the_remaining_count(clock):
    gate = make_gate(clock, rpm=600)
    early = await gate.acquire(1)
    later = [await gate.acquire(1) for _ in range(4)]
    for permit in later:  # answered first: counted by now, but maybe not in `remaining`
        gate.release(permit, error=None)
    # The provider answered the early call with 8 left: 8 - 4 later calls - a margin of 2.
    gate.release(early, error=None, hints=openai_hints(rpm=600, remaining=8, reset=0.1))

    start = clock.monotonic()
    await call(gate)
    await call(gate)
    assert clock.monotonic() == pytest.approx(start)
    await call(gate)
    assert clock.monotonic() > start  # the third had to wait for the rate


async def test_calls_still_out_are_taken_off_the_remaining_count(clock):
    gate = make_gate(clock, rpm=600)
    before = await gate.acquire(1)  # sent first, may reach the provider after the next one
    answered = await gate.acquire(1)
    for _ in range(3):  # our own burst, spent
        await call(gate)
    # 8 left: 8 - 3 let through after - 1 still out - a margin of 2 = 2.
    gate.release(answered, error=None, hints=openai_hints(rpm=600, remaining=8, reset=0.1))

    start = clock.monotonic()
    await call(gate)
    await call(gate)
    assert clock.monotonic() == pytest.approx(start)
    await call(gate)
    assert clock.monotonic() > start
    gate.release(before, error=None)


async def test_a_daily_remaining_count_is_never_caught_up_to(clock):
    gate = make_gate(clock, rpm=600)
    for _ in range(5):
        await call(gate)
    permit = await gate.acquire(1)
    groq = RateLimitHints(limit_requests=14400, remaining_requests=14399, reset_requests=6.0)
    gate.release(permit, error=None, hints=groq)

    start = clock.monotonic()
    await call(gate)
    assert clock.monotonic() == pytest.approx(start + 0.1)  # paced: nothing was granted


async def test_a_configured_rpm_wins_over_the_headers(clock):
    gate = make_gate(clock, rpm=60)
    permit = await gate.acquire(1)
    gate.release(permit, error=None, hints=openai_hints(rpm=6000, remaining=5999, reset=0.01))
    snapshot = gate.snapshot()
    assert (snapshot["admitted_rpm"], snapshot["rpm_source"]) == (60.0, "configured")


async def test_a_daily_cap_in_the_requests_header_is_not_a_pace(clock):
    gate = make_gate(clock)
    groq = RateLimitHints(
        limit_requests=14400,
        remaining_requests=14399,
        reset_requests=6.0,  # one request of a day's 14,400 comes back in 6 s
        limit_tokens=6000,
        remaining_tokens=5900,
        reset_tokens=1.0,
    )
    permit = await gate.acquire(100)
    gate.release(permit, error=None, hints=groq)

    snapshot = gate.snapshot()
    assert snapshot["admitted_rpm"] is None
    assert snapshot["long_window_requests"] == 14400
    assert (snapshot["admitted_tpm"], snapshot["tpm_source"]) == (6000, "headers")


async def test_the_first_429_sets_the_rate_to_what_the_provider_took(clock):
    gate = make_gate(clock)
    for _ in range(20):  # 20 calls answered in the last second
        clock.advance(0.04)
        await call(gate)
    permit = await gate.acquire(1)
    gate.release(permit, error=error(ErrorCategory.rate_limited))

    snapshot = gate.snapshot()
    assert snapshot["rpm_source"] == "429s"
    assert snapshot["admitted_rpm"] == pytest.approx(20 * 60 * 0.9, rel=0.15)
    assert snapshot["rpm_ceiling"] is None
    assert gate.rate_limited == 1


async def test_a_429_cuts_the_admitted_rate_once_for_the_calls_out_when_it_came(clock):
    gate = make_gate(clock, rpm=600)
    for _ in range(10):
        await call(gate)
    permits = [await gate.acquire(1) for _ in range(3)]

    gate.release(permits[0], error=error(ErrorCategory.rate_limited))
    assert gate.snapshot()["admitted_rpm"] == 540.0
    gate.release(permits[1], error=error(ErrorCategory.rate_limited))  # sent before the cut
    gate.release(permits[2], error=error(ErrorCategory.rate_limited))
    assert gate.snapshot()["admitted_rpm"] == 540.0

    clock.advance(0.1)
    await call(gate, error(ErrorCategory.rate_limited))  # sent after it: cut again
    assert gate.snapshot()["admitted_rpm"] == pytest.approx(486.0)
    assert gate.snapshot()["rpm_source"] == "configured"
    assert gate.rate_limited == 4


async def test_a_429_with_nothing_taken_lately_halves_the_rate(clock):
    gate = make_gate(clock, rpm=600)
    await call(gate, error(ErrorCategory.rate_limited))  # the very first call
    assert gate.snapshot()["admitted_rpm"] == 300.0


async def test_calls_waiting_for_the_rate_win_it_back(clock):
    gate = make_gate(clock, rpm=600)
    for _ in range(10):
        await call(gate)
    await call(gate, error(ErrorCategory.rate_limited))
    assert gate.snapshot()["admitted_rpm"] == 540.0

    async def one() -> None:
        await call(gate)

    # Ten seconds of calls queued for the rate: it steps back up to the ceiling.
    await asyncio.gather(*(one() for _ in range(100)))
    assert gate.snapshot()["admitted_rpm"] == 600.0


async def test_429s_do_not_cut_concurrency(clock):
    gate = make_gate(clock, max_concurrency=20)
    permits = [await gate.acquire(1) for _ in range(10)]
    for permit in permits:
        gate.release(permit, error=error(ErrorCategory.rate_limited))
    assert gate.concurrency.limit == 20
    assert gate.concurrency.held == 0


async def test_the_snapshot_says_what_was_learned(clock):
    gate = make_gate(clock, rpm=600)
    snapshot = gate.snapshot()
    assert snapshot == {
        "circuit": "closed",
        "in_flight": 0,
        "concurrency_limit": 64,
        "concurrency_reason": "slow start",
        "latency_baseline_s": None,
        "latency_median_s": None,
        "admitted_rpm": 600.0,
        "rpm_source": "configured",
        "rpm_ceiling": 600.0,
        "admitted_tpm": None,
        "tpm_source": None,
        "long_window_requests": None,
        "waiting": 0,
        "paused_for": 0.0,
        "set_aside_for": 0.0,
        "rate_limited": 0,
        "breaker_opens": 0,
    }


# -- the circuit breaker ----------------------------------------------------------------------


async def test_429s_do_not_trip_the_breaker(clock):
    gate = make_gate(clock, breaker_threshold=2)
    for _ in range(10):
        clock.advance(1.0)
        await call(gate, error(ErrorCategory.rate_limited, retry_after=0.1))
    assert gate.breaker.state is BreakerState.closed
    assert gate.snapshot()["breaker_opens"] == 0


@pytest.mark.parametrize(
    "category", [ErrorCategory.server_error, ErrorCategory.timeout, ErrorCategory.connection]
)
async def test_unhealthy_failures_trip_the_breaker(clock, category):
    gate = make_gate(clock, breaker_threshold=3)
    for _ in range(3):
        await call(gate, error(category))
    assert gate.breaker.state is BreakerState.open
    assert gate.snapshot()["circuit"] == "open"

    # The next caller waits for the cooldown and goes as the probe.
    opened = clock.monotonic()
    permit = await gate.acquire(1)
    assert permit.probe
    assert clock.monotonic() - opened == pytest.approx(2.0)
    gate.release(permit, error=None)
    assert gate.breaker.state is BreakerState.closed


@pytest.mark.parametrize(
    "category",
    [
        ErrorCategory.bad_request,
        ErrorCategory.auth,
        ErrorCategory.content_filter,
        ErrorCategory.not_found,
    ],
)
async def test_request_failures_do_not_trip_the_breaker(clock, category):
    gate = make_gate(clock, breaker_threshold=2)
    for _ in range(5):
        await call(gate, error(category))
    assert gate.breaker.state is BreakerState.closed


async def test_an_abandoned_probe_lets_the_next_caller_probe(clock):
    gate = make_gate(clock, breaker_threshold=1)
    await call(gate, error(ErrorCategory.server_error))
    probe = await gate.acquire(1)
    assert probe.probe

    gate.abandon(probe)  # cancelled before it was sent

    assert gate.concurrency.held == 0
    again = await gate.acquire(1)
    assert again.probe
    gate.release(again, error=None)
    assert gate.breaker.state is BreakerState.closed


async def test_a_probe_during_a_pause_is_given_back(clock):
    gate = make_gate(clock, breaker_threshold=1)
    permits = [await gate.acquire(1) for _ in range(2)]
    paused_at = clock.monotonic()
    gate.release(permits[0], error=error(ErrorCategory.rate_limited, retry_after=10))
    gate.release(permits[1], error=error(ErrorCategory.server_error))
    assert gate.breaker.state is BreakerState.open

    # The cooldown (2 s) ends inside the pause (10 s): the probe waits for the pause too.
    permit = await gate.acquire(1)

    assert clock.monotonic() - paused_at >= 10.0
    assert permit.probe
    assert gate.breaker.state is BreakerState.half_open
    gate.release(permit, error=None)
    assert gate.breaker.state is BreakerState.closed


# -- cancellation -----------------------------------------------------------------------------


async def test_cancelled_while_paced_gives_everything_back(clock):
    gate = make_gate(clock, rpm=60, tpm=600, max_concurrency=1)
    await call(gate, tokens=10)  # the burst is spent
    start = clock.monotonic()

    waiting = asyncio.create_task(gate.acquire(10))
    await asyncio.sleep(0)  # it booked a request and 10 tokens and is sleeping
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting

    assert gate.concurrency.held == 0
    # Its booking was refunded: the next caller waits one interval, not two.
    await gate.acquire(10)
    assert clock.monotonic() - start == pytest.approx(1.0)


async def test_cancelled_while_waiting_for_a_slot_leaks_nothing(clock):
    gate = make_gate(clock, max_concurrency=1)
    held = await gate.acquire(1)
    waiting = asyncio.create_task(gate.acquire(1))
    await settle()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting

    gate.release(held, error=None)
    assert gate.concurrency.held == 0
    await asyncio.wait_for(gate.acquire(1), 1)


# -- guarantees: tokens always come back, waits end -------------------------------------------


@pytest.mark.parametrize(
    "category", [ErrorCategory.bad_request, ErrorCategory.timeout, ErrorCategory.server_error]
)
async def test_a_failed_call_gives_its_reserved_tokens_back(clock, category):
    gate = make_gate(clock, tpm=1200)  # 20 tokens a second, 10 of burst
    start = clock.monotonic()
    await call(gate, error(category), tokens=10)
    await call(gate, tokens=10)  # the first call's 10 came back: no wait
    assert clock.monotonic() == start


async def test_a_huge_estimate_cannot_wedge_the_deployment(clock):
    # max_tokens 1e15, answered 400: nothing is held afterwards.
    gate = make_gate(clock, tpm=600, base_url="https://api.openai.com/v1")
    start = clock.monotonic()
    await call(gate, error(ErrorCategory.bad_request), tokens=10**15)
    await call(gate, tokens=1)
    assert clock.monotonic() - start < 1.0

    # Even answered 200 by a provider that charges the output budget, it reserved at most a
    # minute of the budget: the next call waits a minute, not forever.
    permit = await gate.acquire(10**15)
    assert permit.tokens == 600
    gate.release(permit, error=None, usage=Usage(input_tokens=1, output_tokens=1))
    before = clock.monotonic()
    await call(gate, tokens=1)
    assert clock.monotonic() - before <= 61.0


async def test_waiting_at_the_gate_counts_against_a_timeout_and_takes_nothing(clock):
    gate = make_gate(clock, max_concurrency=1)
    held = await gate.acquire(1)
    with pytest.raises(ProviderError) as raised:
        await gate.acquire(1, timeout=0.05)
    assert raised.value.category is ErrorCategory.timeout
    assert gate.concurrency.waiting == 0
    gate.release(held, error=None)
    assert gate.concurrency.held == 0
    await asyncio.wait_for(gate.acquire(1, timeout=1.0), 1)


async def test_the_rate_grows_while_calls_wait_even_if_no_answer_comes(clock):
    # A 429 for the very first call: the provider took nothing yet. Calls then wait for the
    # rate and none of those let through is answered: the rate must grow all the same.
    gate = make_gate(clock, max_concurrency=1000)
    await call(gate, error(ErrorCategory.rate_limited))
    learned = gate.rate.rate
    assert learned is not None
    start = clock.monotonic()
    held: list[Any] = []

    async def one() -> None:
        held.append(await gate.acquire(1))

    tasks = [asyncio.create_task(one()) for _ in range(500)]
    for _ in range(100_000):  # the fake clock moves as the head of the line sleeps
        if clock.monotonic() >= start + 30:
            break
        await asyncio.sleep(0)
    assert gate.rate.rate is not None
    assert gate.rate.rate > 5 * learned
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert gate.pacer.waiting == 0


async def test_an_empty_remaining_count_cuts_a_learned_rate_before_any_429(clock):
    # Azure OpenAI: remaining counts without a limit. 0 left: slow down now.
    gate = make_gate(clock)
    for _ in range(20):
        clock.advance(0.05)
        await call(gate)
    permit = await gate.acquire(1)
    gate.release(permit, error=None, hints=RateLimitHints(remaining_requests=0))
    snapshot = gate.snapshot()
    assert snapshot["rpm_source"] == "429s"
    assert snapshot["admitted_rpm"] == pytest.approx(20 * 60 * 0.9, rel=0.15)
    assert gate.rate_limited == 0
    assert snapshot["paused_for"] == 0.0  # no Retry-After: no pause


async def test_an_empty_remaining_count_under_an_announced_limit_is_caught_up_to(clock):
    # OpenAI's headers with the live level of a one-second bucket ("0s", remaining 0): the
    # announced limit paces; the empty bucket is no reason to cut under it.
    gate = make_gate(clock)
    permit = await gate.acquire(1)
    gate.release(permit, error=None, hints=openai_hints(rpm=3000, remaining=0, reset=0.0))
    assert gate.snapshot()["admitted_rpm"] == 3000.0


# -- 429s that say what the limit is -------------------------------------------------------


async def test_a_429_announcing_a_limit_teaches_that_limit(clock):
    # The same 429 without its headers would set the rate from what was taken (1,080 rpm
    # here, "429s"); with them it is the announced 600, as a success's headers would say.
    gate = make_gate(clock)
    for _ in range(20):  # 20 calls answered in the last second
        clock.advance(0.04)
        await call(gate)
    permit = await gate.acquire(1)
    limited = ProviderError(
        ErrorCategory.rate_limited,
        "Rate limit reached",
        retry_after=20.0,
        rate_limits=openai_hints(rpm=600, remaining=0, reset=20.0),
    )
    gate.release(permit, error=limited)

    snapshot = gate.snapshot()
    assert (snapshot["admitted_rpm"], snapshot["rpm_source"]) == (600.0, "headers")
    assert snapshot["rpm_ceiling"] == 600.0
    assert (snapshot["admitted_tpm"], snapshot["tpm_source"]) == (1_000_000, "headers")
    assert snapshot["paused_for"] == 20.0  # the Retry-After still pauses the deployment
    assert gate.rate_limited == 1


class _Level:
    """A mock bucket's state, as `mock_ratelimits.ratelimit_headers` reads it."""

    def __init__(self, rate: float, capacity: float, level: float) -> None:
        self.rate, self.capacity, self.level = rate, capacity, level

    def reset_after(self) -> float:
        return (self.capacity - self.level) / self.rate


def mock_429(convention: Convention) -> ProviderError:
    """The `ProviderError` the adapters make of the mock's 429 under ``convention``: an
    empty bucket of 3,000 rpm, 90,000 tpm."""
    requests = _Level(50.0, 50.0, 0.4)
    tokens = _Level(1500.0, 90000.0, 80000.0)
    headers = ratelimit_headers(convention, requests, tokens, rpm=3000, tpm=90000, used_today=6000)
    answer = HttpAnswer(
        429,
        {"retry-after": "1", **{name.lower(): value for name, value in headers.items()}},
        b'{"error": {"message": "Rate limit reached", "type": "requests"}}',
    )
    if convention == "anthropic":
        return anthropic_error_from_answer(answer, now=time.time())
    return error_from_answer(answer)


@pytest.mark.parametrize(
    ("convention", "announced_rpm", "announced_tpm", "long_window"),
    [
        ("openai", 3000, 90000, None),
        ("openai-live", 3000, 90000, None),
        ("anthropic", 3000, 90000, None),
        ("groq", None, 90000, 3000 * 1440),  # a day's requests: shown, never a pace
        ("cerebras", None, 90000, None),
        ("azure", None, None, None),  # remaining counts alone
        ("openrouter", None, None, None),
        ("together", None, None, None),
        ("vllm", None, None, None),  # no headers (and it never answers 429)
    ],
)
async def test_a_429s_headers_teach_what_a_successes_would(
    convention, announced_rpm, announced_tpm, long_window
):
    limited = mock_429(convention)
    assert limited.category is ErrorCategory.rate_limited
    assert (limited.rate_limits is None) == (convention == "vllm")
    gates = []
    for _ in range(2):  # the same past for both: 20 calls answered in the last second
        gate_clock = FakeClock()
        gate = make_gate(gate_clock)
        for _ in range(20):
            gate_clock.advance(0.04)
            await call(gate)
        gates.append(gate)
    told, bare = gates
    permit = await told.acquire(1)
    told.release(permit, error=limited)
    permit = await bare.acquire(1)
    bare.release(permit, error=error(ErrorCategory.rate_limited, retry_after=1.0))

    learned, cut = told.snapshot(), bare.snapshot()
    if announced_rpm is not None:
        assert (learned["admitted_rpm"], learned["rpm_source"]) == (announced_rpm, "headers")
    else:
        # Nothing announced: the 429 cuts the rate as it does without headers, and only
        # once (its empty remaining count is that same 429, not a second reason to cut).
        assert (learned["admitted_rpm"], learned["rpm_source"]) == (cut["admitted_rpm"], "429s")
    assert learned["admitted_tpm"] == announced_tpm
    assert learned["long_window_requests"] == long_window


async def test_a_success_after_a_429_keeps_what_the_429_taught(clock):
    gate = make_gate(clock)
    await call(gate, mock_429("openai"))
    assert gate.snapshot()["admitted_rpm"] == 3000.0
    permit = await gate.acquire(1)
    gate.release(permit, error=None, hints=openai_hints(rpm=3000, remaining=10, reset=0.2))
    snapshot = gate.snapshot()
    assert (snapshot["admitted_rpm"], snapshot["rpm_source"]) == (3000.0, "headers")


async def test_a_call_waiting_out_a_long_pause_ends_with_a_cancel(clock):
    # A worker stopping (SIGTERM) cancels its calls: none may hang behind a gate wait.
    gate = make_gate(clock, rpm=60, tpm=600)
    await call(gate, error(ErrorCategory.rate_limited, retry_after=300))
    waiting = [asyncio.create_task(gate.acquire(10**15)) for _ in range(3)]
    await asyncio.sleep(0)  # each is in its pause (the fake clock ends it on its next turn)
    assert gate.snapshot()["paused_for"] > 0
    for task in waiting:
        task.cancel()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(result, asyncio.CancelledError) for result in results)
    assert (gate.concurrency.held, gate.pacer.waiting, gate.sent) == (0, 0, 0)


@pytest.mark.parametrize("told", [True, False])
async def test_only_a_concurrency_nobody_gave_is_cut_by_latency(clock, told):
    # Answers ten times slower than the first ones: a queue, for a limit datamill chose; a
    # concurrency the user gave (--concurrency, max_concurrency) stands as given.
    gate = DeploymentGate(
        DeploymentConfig(name="d"), clock, default_concurrency=64, concurrency_told=told
    )
    assert gate.concurrency.limit == 64
    for latency in [0.1] * 64 + [1.0] * 96:
        permit = await gate.acquire(1)
        clock.advance(latency)
        gate.release(permit, error=None)
    if told:
        assert gate.concurrency.limit == 64
    else:
        assert gate.concurrency.limit <= 32  # cut by at least half
