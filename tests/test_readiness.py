"""The readiness registry on an injected clock: timeouts and latencies follow the clock,
results keep the order of registration, a name registered again is replaced, and a
warning's failure leaves the process ready."""

from __future__ import annotations

import asyncio

from datamill.readiness import CheckLevel, CheckStatus, NotReady, ReadinessRegistry


class InstantClock:
    """Sleeps return after one turn of the loop and move time forward."""

    def __init__(self) -> None:
        self.elapsed = 0.0

    def now(self) -> float:
        return 1_700_000_000.0 + self.elapsed

    def monotonic(self) -> float:
        return self.elapsed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)
        self.elapsed += seconds


async def test_a_hanging_check_times_out_on_the_registrys_clock() -> None:
    clock = InstantClock()
    registry = ReadinessRegistry(clock, timeout=30)

    async def hang() -> str:
        await asyncio.Event().wait()
        return "never"

    registry.register("stuck", hang)
    readiness = await asyncio.wait_for(registry.run(), timeout=10)
    [result] = readiness.checks
    assert (result.status, result.message) == (CheckStatus.fail, "timed out after 30 s")
    assert result.latency_ms == 30_000  # thirty seconds of the clock, at once
    assert not readiness.ready


async def test_results_in_order_replaced_by_name_and_warnings_stay_ready() -> None:
    registry = ReadinessRegistry(InstantClock())

    async def fine() -> None:
        return None

    async def found() -> str:
        return "3 live workers"

    async def down() -> str:
        raise NotReady("circuit open")

    registry.register("a", fine)
    registry.register("b", down)
    registry.register("c", found)
    registry.register("b", down, level=CheckLevel.warning)  # replaces, keeps its place
    assert registry.names == ["a", "b", "c"]

    readiness = await registry.run()
    assert [(r.name, r.status, r.message) for r in readiness.checks] == [
        ("a", CheckStatus.ok, "ok"),
        ("b", CheckStatus.warn, "circuit open"),
        ("c", CheckStatus.ok, "3 live workers"),
    ]
    assert readiness.ready
    assert readiness.names(CheckStatus.warn) == ["b"]

    registry.register("d", down)
    assert not (await registry.run()).ready
    registry.unregister("d")
    assert "d" not in registry
    assert (await registry.run()).ready
