"""`DeploymentGate`: pacing, token budgets, Retry-After, AIMD and the breaker, on a fake clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.base import Usage
from datamill.scheduler.breaker import BreakerState
from datamill.scheduler.gate import DeploymentGate
from datamill.settings import DeploymentConfig
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


# -- pacing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rpm", [60, 120, 600])
async def test_rpm_paces_sequential_calls(clock, rpm):
    gate = make_gate(clock, rpm=rpm)
    start = clock.monotonic()
    calls = rpm // 2  # half a minute of calls

    for _ in range(calls):
        await call(gate)

    # N calls at R per minute take N/R minutes, less the one-second burst.
    elapsed = clock.monotonic() - start
    assert calls / rpm * 60 - 1.0 <= elapsed <= calls / rpm * 60
    assert elapsed == pytest.approx((calls - rpm / 60) / (rpm / 60))


async def test_rpm_paces_concurrent_calls_in_arrival_order(clock):
    gate = make_gate(clock, rpm=120)  # 2 per second
    start = clock.monotonic()
    admitted: list[tuple[int, float]] = []

    async def one(i: int) -> None:
        permit = await gate.acquire(1)
        admitted.append((i, clock.monotonic() - start))
        gate.release(permit, error=None)

    await asyncio.gather(*(one(i) for i in range(20)))

    assert clock.monotonic() - start == pytest.approx(9.0)  # 20 calls, 2 at once, 2/s after
    assert [i for i, _ in sorted(admitted, key=lambda item: item[1])][:2] == [0, 1]
    assert max(at for _, at in admitted) == pytest.approx(9.0)


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


# -- tokens per minute ------------------------------------------------------------------------


async def test_tpm_waits_for_the_estimated_tokens(clock):
    gate = make_gate(clock, tpm=600)  # 10 tokens per second, 10 of burst
    start = clock.monotonic()

    permit = await gate.acquire(10)
    gate.release(permit, error=None)  # no usage reported: the estimate stands
    await gate.acquire(10)

    assert clock.monotonic() - start == pytest.approx(1.0)


async def test_tpm_settles_the_estimate_against_real_usage(clock):
    gate = make_gate(clock, tpm=600)
    start = clock.monotonic()

    permit = await gate.acquire(10)
    gate.release(permit, error=None, usage=Usage(input_tokens=1, output_tokens=1))
    await gate.acquire(10)  # 8 tokens came back: 2 are missing, 0.2 s

    assert clock.monotonic() - start == pytest.approx(0.2)


async def test_tpm_charges_usage_above_the_estimate(clock):
    gate = make_gate(clock, tpm=600)
    start = clock.monotonic()

    permit = await gate.acquire(5)
    gate.release(permit, error=None, usage=Usage(input_tokens=10, output_tokens=5))
    await gate.acquire(1)  # 15 used of 10: 6 tokens short, 0.6 s

    assert clock.monotonic() - start == pytest.approx(0.6)


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


# -- adapting to 429 (AIMD) -------------------------------------------------------------------


async def test_a_429_cuts_the_admitted_rate_at_most_once_a_second(clock):
    gate = make_gate(clock, rpm=600)
    rate_limited = error(ErrorCategory.rate_limited)

    await call(gate, rate_limited)
    assert gate.snapshot()["admitted_rpm"] == 420.0
    assert gate.rpm.rate == pytest.approx(600 / 60 * 0.7)

    clock.advance(0.5)
    await call(gate, rate_limited)  # the same burst of 429s: no second cut
    assert gate.snapshot()["admitted_rpm"] == 420.0

    clock.advance(0.5)
    await call(gate, rate_limited)
    assert gate.snapshot()["admitted_rpm"] == pytest.approx(294.0)
    assert gate.rate_limited == 3


async def test_the_admitted_rate_has_a_floor(clock):
    gate = make_gate(clock, rpm=600)
    for _ in range(50):
        clock.advance(1.0)
        await call(gate, error(ErrorCategory.rate_limited))
    assert gate.rate_factor == pytest.approx(0.05)
    assert gate.rpm.rate == pytest.approx(0.5)


async def test_successes_win_the_rate_back_step_by_step(clock):
    gate = make_gate(clock, rpm=600)
    await call(gate, error(ErrorCategory.rate_limited))
    assert gate.rate_factor == pytest.approx(0.7)

    await call(gate)  # less than a second after the cut: no step yet
    assert gate.rate_factor == pytest.approx(0.7)

    factors = []
    for _ in range(8):
        clock.advance(1.0)
        await call(gate)
        factors.append(round(gate.rate_factor, 2))

    assert factors == [0.75, 0.8, 0.85, 0.9, 0.95, 1.0, 1.0, 1.0]
    assert gate.rpm.rate == pytest.approx(10.0)
    assert gate.snapshot()["admitted_rpm"] == 600.0


async def test_a_429_cuts_concurrency_when_no_rpm_is_set(clock):
    gate = make_gate(clock, max_concurrency=20)
    permits = [await gate.acquire(1) for _ in range(10)]

    # The 429 arrives while 10 calls are in flight: 30% fewer are admitted.
    gate.release(permits[0], error=error(ErrorCategory.rate_limited))
    assert gate.concurrency.limit == 7

    clock.advance(0.5)
    gate.release(permits[1], error=error(ErrorCategory.rate_limited))
    assert gate.concurrency.limit == 7  # at most one cut a second

    for permit in permits[2:]:
        gate.release(permit, error=None)
    assert gate.concurrency.held == 0


async def test_successes_win_concurrency_back(clock):
    gate = make_gate(clock, max_concurrency=4)
    permits = [await gate.acquire(1) for _ in range(4)]
    gate.release(permits[0], error=error(ErrorCategory.rate_limited))
    assert gate.concurrency.limit == 2

    limits = []
    for permit in permits[1:]:
        gate.release(permit, error=None)
        limits.append(gate.concurrency.limit)
    for _ in range(6):
        await call(gate)
        limits.append(gate.concurrency.limit)

    # One more slot after as many successes as the current limit, up to the configured max.
    assert limits == [2, 3, 3, 3, 4, 4, 4, 4, 4]


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
