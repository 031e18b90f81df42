"""What one deployment's calls did lately, in bounded memory, for the dashboard.

Counts are kept per second over the last minute (a ring of 60 slots), latencies as the last
`SAMPLES` successful calls; totals since the process started. Recording a call is a few
list updates: it runs on every call's way out of the gate.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

WINDOW = 60  # seconds the recent figures cover
SAMPLES = 1024  # latencies kept for the percentiles


class CallStats:
    """Calls, errors, latency percentiles and cost of one deployment's calls in this process."""

    def __init__(self) -> None:
        self._second = [-1] * WINDOW  # which second each slot counts
        self._calls = [0] * WINDOW
        self._errors = [0] * WINDOW
        # (monotonic time of the answer, latency in seconds) of successful calls.
        self._latencies: deque[tuple[float, float]] = deque(maxlen=SAMPLES)
        self.calls = 0
        self.errors = 0
        self.cost = 0.0

    def record(self, now: float, latency: float, *, ok: bool, cost: float = 0.0) -> None:
        second = int(now)
        slot = second % WINDOW
        if self._second[slot] != second:
            self._second[slot] = second
            self._calls[slot] = 0
            self._errors[slot] = 0
        self._calls[slot] += 1
        self.calls += 1
        if ok:
            self._latencies.append((now, latency))
        else:
            self._errors[slot] += 1
            self.errors += 1
        self.cost += cost

    def recent_calls(self, now: float) -> int:
        """Calls answered within the last `WINDOW` seconds."""
        oldest = int(now) - WINDOW
        return sum(c for s, c in zip(self._second, self._calls, strict=True) if s > oldest)

    def snapshot(self, now: float) -> dict[str, Any]:
        """The last minute's calls, errors, error rate and latency percentiles (ms), and the
        totals since the start."""
        oldest = int(now) - WINDOW
        live = [i for i, second in enumerate(self._second) if second > oldest]
        calls = sum(self._calls[i] for i in live)
        errors = sum(self._errors[i] for i in live)
        latencies = sorted(lat for at, lat in self._latencies if at > now - WINDOW)
        return {
            "calls_per_minute": calls,
            "errors_per_minute": errors,
            "error_rate": round(errors / calls, 4) if calls else None,
            "latency_ms": _percentiles(latencies),
            "calls": self.calls,
            "errors": self.errors,
            "cost_usd": round(self.cost, 8),
        }


def _percentiles(ordered: list[float]) -> dict[str, float] | None:
    if not ordered:
        return None
    # Nearest rank: the smallest latency at least q of the calls did not exceed.
    return {
        name: round(ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000, 2)
        for name, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
    }
