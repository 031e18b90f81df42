"""A fake clock for the scheduler: time moves only when something sleeps."""

from __future__ import annotations

import asyncio

import pytest


class FakeClock:
    """`sleep(s)` yields to the loop once, then moves time to at least ``s`` after the call.

    Tasks sleeping at the same moment wake together (time moves to the latest of their
    deadlines reached so far), as they would on a real clock, but instantly.
    """

    def __init__(self, start: float = 1_000.0) -> None:
        self.wall_origin = 1_700_000_000.0
        self.elapsed = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.wall_origin + self.elapsed

    def monotonic(self) -> float:
        return self.elapsed

    def advance(self, seconds: float) -> None:
        self.elapsed += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        deadline = self.elapsed + max(0.0, seconds)
        await asyncio.sleep(0)
        self.elapsed = max(self.elapsed, deadline)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
