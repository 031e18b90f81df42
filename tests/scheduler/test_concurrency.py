"""`LatencyLimit`: slow start, cuts when a server queues, no cut when it is merely slow."""

from __future__ import annotations

import heapq
import random
from collections import deque

import pytest

from datamill.scheduler.concurrency import FLOOR, INITIAL, PERIOD, LatencyLimit


class Server:
    """A simulated server: ``slots`` calls served at once for ``service`` seconds each, the
    rest waiting in its queue in order (a vLLM box); many slots make an elastic API. The
    client keeps ``limit.limit`` calls out. Time is simulated: answers are events."""

    def __init__(self, *, slots: int, service: float) -> None:
        self.slots = slots
        self.service = service
        self.now = 0.0
        self.answered = 0
        self._queue: deque[float] = deque()  # when each waiting call was sent
        self._serving: list[tuple[float, float]] = []  # (finishes at, sent at)

    def _fill(self, limit: LatencyLimit) -> None:
        while len(self._queue) + len(self._serving) < limit.limit:
            self._queue.append(self.now)
        while self._queue and len(self._serving) < self.slots:
            heapq.heappush(self._serving, (self.now + self.service, self._queue.popleft()))

    def run(self, limit: LatencyLimit, seconds: float) -> None:
        end = self.now + seconds
        self._fill(limit)
        while self.now < end:
            self.now, sent_at = heapq.heappop(self._serving)
            self.answered += 1
            limit.on_latency(self.now - sent_at, sent_at=sent_at, now=self.now)
            self._fill(limit)

    def throughput(self, limit: LatencyLimit, seconds: float) -> float:
        before, start = self.answered, self.now
        self.run(limit, seconds)
        return (self.answered - before) / (self.now - start)

    def latency_at(self, calls: int) -> float:
        return self.service * max(1.0, calls / self.slots)


def elastic(latency: float) -> Server:
    return Server(slots=100_000, service=latency)


def test_slow_start_begins_small_and_doubles_each_round_trip():
    limit = LatencyLimit(1024)
    assert (limit.limit, limit.reason) == (INITIAL, "slow start")
    now = 0.0
    for expected in (2 * INITIAL, 4 * INITIAL, 8 * INITIAL):
        sent_at, now = now, now + 0.2
        for _ in range(limit.limit):
            limit.on_latency(0.2, sent_at=sent_at, now=now)
        assert limit.limit == expected


def test_slow_start_counts_only_calls_sent_in_the_current_round():
    limit = LatencyLimit(1024)
    for _ in range(INITIAL):
        limit.on_latency(0.001, sent_at=0.0, now=0.001)
    assert limit.limit == 2 * INITIAL
    # Answers to calls sent before that doubling (say, the first round's stragglers, or
    # calls sent as the first answers came in) do not double it again.
    for _ in range(3 * INITIAL):
        limit.on_latency(0.001, sent_at=0.0005, now=0.002)
    assert limit.limit == 2 * INITIAL


def test_slow_start_ends_at_the_maximum():
    limit = LatencyLimit(100)
    elastic(0.2).run(limit, 5)
    assert (limit.limit, limit.slow_start, limit.reason) == (100, False, "configured maximum")


def test_a_maximum_below_the_initial_limit_starts_there():
    limit = LatencyLimit(8)
    assert (limit.limit, limit.slow_start, limit.reason) == (8, False, "configured maximum")


def test_a_steady_latency_keeps_the_maximum():
    limit = LatencyLimit(256)
    elastic(0.2).run(limit, 60)
    assert limit.limit == 256
    assert limit.baseline == pytest.approx(0.2)


def test_a_noisy_latency_keeps_the_maximum():
    rng = random.Random(7)
    limit = LatencyLimit(256)
    now = 0.0
    for _ in range(50_000):  # lognormal answers around 200 ms, 256 in flight
        latency = rng.lognormvariate(-1.6, 0.5)
        now += latency / 256
        limit.on_latency(latency, sent_at=now - latency, now=now)
    assert limit.limit == 256


def test_fast_answers_delayed_by_the_engine_itself_never_cut():
    # 1 ms answers, later 60 ms while the engine is busy: both under the floor's tolerance.
    limit = LatencyLimit(256)
    server = elastic(0.001)
    server.run(limit, 2)
    server.service = 0.06
    server.run(limit, 10)
    assert limit.limit == 256
    assert limit.baseline == FLOOR


def test_a_queueing_server_gets_fewer_calls_and_keeps_its_throughput():
    # 8 slots of 200 ms: 40 answers a second; 256 in flight would wait 6.4 s each.
    server = Server(slots=8, service=0.2)
    limit = LatencyLimit(256)
    server.run(limit, 120)

    assert limit.limit <= 64
    assert server.throughput(limit, 10) == pytest.approx(40)  # still busy
    assert server.latency_at(limit.limit) <= 1.6
    assert "baseline" in limit.reason


def test_a_server_that_got_slower_without_a_queue_gets_its_limit_back():
    limit = LatencyLimit(256)
    server = elastic(0.2)
    server.run(limit, 10)
    assert limit.limit == 256

    server.service = 0.8  # four times slower from now on, however many calls are out
    server.run(limit, 60)

    assert limit.limit == 256
    assert limit.baseline == pytest.approx(0.8)


def test_latency_back_near_the_baseline_grows_the_limit_one_per_period():
    limit = LatencyLimit(256)
    server = Server(slots=8, service=0.2)
    server.run(limit, 120)
    cut = limit.limit
    server.slots = 256  # the server grows: latency falls back to its baseline
    server.run(limit, 30)
    assert limit.limit > cut
    assert "near its baseline" in limit.reason


def test_answers_to_calls_sent_before_a_cut_are_not_judged():
    limit = LatencyLimit(256, initial=256)
    elastic(0.2).run(limit, 5)
    now = 5.0
    for _ in range(PERIOD * 4):  # a queue builds: 1 s answers
        now += 0.01
        limit.on_latency(1.0, sent_at=now - 1.0, now=now)
    cut = limit.limit
    assert cut < 256
    # Late answers of calls sent before the cut change nothing, however slow.
    for _ in range(PERIOD * 4):
        now += 0.01
        assert not limit.on_latency(5.0, sent_at=now - 5.0, now=now)
    assert limit.limit == cut
