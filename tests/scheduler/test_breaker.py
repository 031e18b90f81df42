"""`CircuitBreaker`: closed -> open -> half-open probe -> closed, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from datamill.scheduler.breaker import BreakerState, CircuitBreaker
from tests.scheduler.conftest import FakeClock


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(clock, threshold=3, cooldown=2.0, max_cooldown=10.0)


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.threshold):
        breaker.record_failure()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_closed_lets_calls_through_without_waiting(breaker, clock):
    assert await breaker.wait_ready() is False
    assert clock.sleeps == []


async def test_opens_after_threshold_consecutive_failures(breaker):
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.closed
    breaker.record_failure()
    assert breaker.state is BreakerState.open
    assert breaker.opens == 1


async def test_a_success_resets_the_failure_count(breaker):
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.closed


async def test_open_waits_the_cooldown_then_one_caller_probes(breaker, clock):
    trip(breaker)
    opened = clock.monotonic()

    assert await breaker.wait_ready() is True  # this caller is the probe

    assert clock.monotonic() - opened == pytest.approx(2.0)
    assert breaker.state is BreakerState.half_open


async def test_only_one_probe_and_its_success_closes_for_everyone(breaker, clock):
    trip(breaker)
    callers = [asyncio.create_task(breaker.wait_ready()) for _ in range(4)]
    await settle()

    probes = [task for task in callers if task.done()]
    assert [task.result() for task in probes] == [True]
    assert breaker.state is BreakerState.half_open

    breaker.record_success()
    await settle()

    assert all(task.done() for task in callers)
    assert sorted(task.result() for task in callers) == [False, False, False, True]
    assert breaker.state is BreakerState.closed
    assert breaker.failures == 0


async def test_a_failed_probe_reopens_with_a_doubled_cooldown(breaker, clock):
    trip(breaker)
    assert await breaker.wait_ready()
    breaker.record_failure()
    assert breaker.state is BreakerState.open
    assert breaker.cooldown == 4.0

    reopened = clock.monotonic()
    assert await breaker.wait_ready()
    assert clock.monotonic() - reopened == pytest.approx(4.0)

    # Doubling stops at max_cooldown; a success brings back the base cooldown.
    for expected in (8.0, 10.0, 10.0):
        breaker.record_failure()
        assert breaker.cooldown == expected
        assert await breaker.wait_ready()
    breaker.record_success()
    assert breaker.cooldown == 2.0
    trip(breaker)
    tripped = clock.monotonic()
    assert await breaker.wait_ready()
    assert clock.monotonic() - tripped == pytest.approx(2.0)


async def test_callers_waiting_on_a_failed_probe_wait_for_the_next_one(breaker, clock):
    trip(breaker)
    assert await breaker.wait_ready()
    waiter = asyncio.create_task(breaker.wait_ready())
    await settle()
    assert not waiter.done()

    failed_at = clock.monotonic()
    breaker.record_failure()
    assert await asyncio.wait_for(waiter, 1) is True  # the next probe, after 4 s
    assert clock.monotonic() - failed_at == pytest.approx(4.0)


async def test_an_abandoned_probe_lets_another_caller_probe_at_once(breaker, clock):
    trip(breaker)
    assert await breaker.wait_ready()
    waiter = asyncio.create_task(breaker.wait_ready())
    await settle()
    assert not waiter.done()

    abandoned_at = clock.monotonic()
    breaker.record_probe_abandoned()

    assert await asyncio.wait_for(waiter, 1) is True
    assert clock.monotonic() == abandoned_at  # no new cooldown
    assert breaker.state is BreakerState.half_open
    assert breaker.cooldown == 2.0
    assert breaker.opens == 1


async def test_abandoning_when_not_probing_changes_nothing(breaker):
    breaker.record_probe_abandoned()
    assert breaker.state is BreakerState.closed
    trip(breaker)
    opened_at = breaker.opened_at
    breaker.record_probe_abandoned()
    assert (breaker.state, breaker.opened_at) == (BreakerState.open, opened_at)


async def test_failures_while_open_do_not_restart_the_cooldown(breaker, clock):
    trip(breaker)
    opened_at = breaker.opened_at
    clock.advance(1.5)
    breaker.record_failure()  # a call that was already in flight when it opened
    assert (breaker.opened_at, breaker.opens) == (opened_at, 1)
    assert await breaker.wait_ready()
    assert clock.monotonic() - opened_at == pytest.approx(2.0)
