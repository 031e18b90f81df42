"""How many calls may be in flight to one deployment, judged from its answers' latency.

A server that queues silently (a vLLM box) answers slower instead of answering 429: past
its capacity every extra call in flight only waits in its queue, and latency grows with
the calls in flight while throughput stays flat. The limit follows TCP Vegas and Netflix's
gradient limiter, conservatively:

- a concurrency the user gave (the deployment's `max_concurrency`, or `DATAMILL_CONCURRENCY`
  / `--concurrency`) is taken at its word: the gate starts there and never consults this
  limit (`DeploymentGate.concurrency_told`); what follows is for a limit nobody gave;
- otherwise it starts at `INITIAL` (or the default maximum, if lower) and doubles each round trip
  until the maximum or the first sign of a queue, so an unknown provider never receives the
  whole concurrency in its first millisecond: what meets a rate limit before its first 429
  comes back is about one round of calls;
- latency is judged per period (`PERIOD` answers, and a round trip at least) by its median,
  against a baseline: the lowest period median seen, never under `FLOOR`, so the engine's
  own scheduling delays on fast answers never read as a provider's queue. The baseline
  never creeps up with a steady latency (a queue kept for long would become the norm);
  only the check below moves it up;
- a median `TOLERANCE` times the baseline or more cuts the limit to what keeps the server
  busy at its baseline latency (throughput x baseline x `GROW_BELOW`, Little's law), by at
  least a fifth and at most by half; the next period of calls sent after the cut checks it:
  if throughput fell with the calls in flight, there was no queue (the server got slower),
  so the limit is put back and that latency becomes the baseline;
- a median under `GROW_BELOW` times the baseline adds one call per period.

A steady latency, however long, never lowers the limit: 200 ms answers with 256 in flight
stay at 256.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

INITIAL = 64
PERIOD = 32
TOLERANCE = 2.0
GROW_BELOW = 1.5
FLOOR = 0.1
MAX_CUT = 0.5
MIN_CUT = 0.8


@dataclass(frozen=True, slots=True)
class _Cut:
    previous_limit: int
    throughput: float  # answers per second before the cut
    kept: float  # the share of the limit kept


class LatencyLimit:
    """The concurrency limit for one deployment, and the reason for its current value."""

    def __init__(self, max_limit: int, *, initial: int = INITIAL) -> None:
        self.max_limit = max(1, max_limit)
        self.limit = max(1, min(initial, self.max_limit))
        self.slow_start = self.limit < self.max_limit
        self.reason = "slow start" if self.slow_start else "configured maximum"
        self.baseline: float | None = None
        self.last_median: float | None = None
        self._samples: list[float] = []
        self._period_start = 0.0
        self._period_fastest = 0.0
        self._lowest = float("inf")  # the lowest period median since the last rebase
        self._cut: _Cut | None = None
        self._cut_at = float("-inf")
        self._round_start = float("-inf")
        self._round_answers = 0

    def on_latency(self, seconds: float, *, sent_at: float, now: float) -> bool:
        """A call sent at ``sent_at`` was answered after ``seconds``; True if the limit moved."""
        changed = self.slow_start and self._grow_slowly(sent_at, now)
        if sent_at < self._cut_at:
            return changed  # sent before the last cut: it tells nothing about the new limit
        if not self._samples:
            self._period_start = now
            self._period_fastest = seconds
        self._samples.append(seconds)
        self._period_fastest = min(self._period_fastest, seconds)
        # A period spans a round trip at least, or answers that come in waves (a server
        # with a few slots) would make throughput look bursty.
        if len(self._samples) >= PERIOD and now - self._period_start >= self._period_fastest:
            changed = self._end_period(now) or changed
        return changed

    def _grow_slowly(self, sent_at: float, now: float) -> bool:
        """Slow start: double once a round of calls (as many as the limit, all sent since the
        last doubling) came back. Answers to older calls do not count: a provider answering
        in a millisecond would otherwise grow the limit faster than its 429s come back."""
        if sent_at < self._round_start:
            return False
        self._round_answers += 1
        if self._round_answers < self.limit:
            return False
        self.limit = min(2 * self.limit, self.max_limit)
        self._round_start = now
        self._round_answers = 0
        if self.limit == self.max_limit:
            self.slow_start = False
            self.reason = "configured maximum"
        return True

    def _end_period(self, now: float) -> bool:
        samples = sorted(self._samples)
        self._samples.clear()
        median = samples[len(samples) // 2]
        throughput = (len(samples) - 1) / max(now - self._period_start, 1e-6)
        self.last_median = median
        self._lowest = min(self._lowest, median)
        if self._cut is not None:
            cut, self._cut = self._cut, None
            # Without a queue, throughput falls with the calls in flight; with one, it holds.
            # Closer to the first than to the second: there was no queue to drain.
            if throughput < cut.throughput * (1 + cut.kept) / 2:
                self.limit = cut.previous_limit
                self._lowest = median
                self.baseline = max(FLOOR, median)
                self.reason = f"latency {median:.3g} s is the server's own: new baseline"
                return True
        baseline = self.baseline = max(FLOOR, self._lowest)
        ratio = median / baseline
        if ratio >= TOLERANCE:
            needed = math.ceil(throughput * baseline * GROW_BELOW)
            target = max(1, needed, int(self.limit * MAX_CUT))
            # A smaller cut would be lost in the noise, both its effect and its verdict.
            if target <= self.limit * MIN_CUT:
                self._cut = _Cut(self.limit, throughput, kept=target / self.limit)
                self._cut_at = now
                self.limit = target
                self.slow_start = False
                self.reason = (
                    f"latency {median:.3g} s is {ratio:.1f}x its baseline {baseline:.3g} s"
                )
                return True
        elif ratio < GROW_BELOW and not self.slow_start and self.limit < self.max_limit:
            self.limit += 1
            self.reason = f"latency {median:.3g} s near its baseline {baseline:.3g} s"
            return True
        return False
