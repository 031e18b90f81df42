"""What a deployment's calls did lately (`CallStats`, through the gate), and the breaker
telling who listens when its state changes."""

from __future__ import annotations

from datamill.errors import ErrorCategory
from datamill.providers.base import Usage
from datamill.scheduler.breaker import BreakerState, CircuitBreaker
from datamill.scheduler.stats import SAMPLES, WINDOW, CallStats
from tests.scheduler.test_gate import error, make_gate


def test_percentiles_error_rate_and_totals():
    stats = CallStats()
    for ms in range(1, 101):  # 1..100 ms, one call each
        stats.record(1000.0, ms / 1000, ok=True, cost=0.01)
    for _ in range(25):
        stats.record(1000.5, 5.0, ok=False)

    snapshot = stats.snapshot(1001.0)
    assert snapshot["latency_ms"] == {"p50": 50.0, "p95": 95.0, "p99": 99.0}  # errors left out
    assert (snapshot["calls_per_minute"], snapshot["errors_per_minute"]) == (125, 25)
    assert snapshot["error_rate"] == 0.2
    assert (snapshot["calls"], snapshot["errors"], snapshot["cost_usd"]) == (125, 25, 1.0)


def test_the_recent_figures_cover_the_last_minute_only():
    stats = CallStats()
    stats.record(1000.0, 0.9, ok=False)
    stats.record(1000.0, 0.9, ok=True)
    stats.record(1000.0 + WINDOW - 1, 0.1, ok=True)

    later = stats.snapshot(1000.0 + WINDOW + 0.5)
    assert (later["calls_per_minute"], later["errors_per_minute"]) == (1, 0)
    assert later["latency_ms"] == {"p50": 100.0, "p95": 100.0, "p99": 100.0}
    assert later["calls"] == 3  # totals stay
    idle = stats.snapshot(1000.0 + 10 * WINDOW)
    assert (idle["calls_per_minute"], idle["error_rate"], idle["latency_ms"]) == (0, None, None)
    assert stats.recent_calls(1000.0 + 10 * WINDOW) == 0


def test_memory_is_bounded():
    stats = CallStats()
    for n in range(50 * SAMPLES):
        stats.record(1000.0 + n / 1000, 0.001, ok=True)
    assert len(stats._latencies) == SAMPLES
    assert len(stats._calls) == WINDOW


async def test_the_gate_counts_each_call_with_its_latency_and_cost(clock):
    gate = make_gate(clock, input_price=1.0, output_price=2.0)
    permit = await gate.acquire(1)
    clock.advance(0.25)
    gate.release(permit, error=None, usage=Usage(input_tokens=1000, output_tokens=500))
    permit = await gate.acquire(1)
    gate.release(permit, error=error(ErrorCategory.server_error))

    live = gate.live()
    assert live["latency_ms"]["p50"] == 250.0
    assert (live["calls"], live["errors"], live["error_rate"]) == (2, 1, 0.5)
    assert live["cost_usd"] == 0.002  # 1000 in at $1/M plus 500 out at $2/M
    assert live["circuit"] == "closed"  # the gate's own state is there too


async def test_the_breaker_tells_its_listener_every_change(clock):
    breaker = CircuitBreaker(clock, threshold=2, cooldown=1.0)
    seen: list[BreakerState] = []
    breaker.on_change = seen.append

    breaker.record_failure()
    breaker.record_failure()  # opens
    clock.advance(1.0)
    assert await breaker.wait_ready()  # half-open: this call is the probe
    breaker.record_success()  # closes
    breaker.record_success()  # already closed: nothing to tell

    assert seen == [BreakerState.open, BreakerState.half_open, BreakerState.closed]
