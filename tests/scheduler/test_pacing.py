"""`Pacer`: one line in arrival order, a rate that applies at once, pauses without a herd."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from datamill.scheduler.limits import TokenBucket
from datamill.scheduler.pacing import Pacer
from tests.scheduler.conftest import FakeClock


def paced(clock: FakeClock, rate: float, burst: float = 1.0, *, full: bool = True) -> Pacer:
    pacer = Pacer(clock)
    pacer.requests = TokenBucket(rate, burst, now=clock.monotonic(), full=full)
    return pacer


async def admit_all(pacer: Pacer, clock: FakeClock, n: int, tokens: int = 0) -> list[float]:
    """Start ``n`` callers at once; when each was admitted, in order of admission."""
    start = clock.monotonic()
    admitted: list[tuple[int, float]] = []

    async def one(i: int) -> None:
        await pacer.admit(tokens)
        admitted.append((i, clock.monotonic() - start))

    await asyncio.gather(*(one(i) for i in range(n)))
    assert [i for i, _ in admitted] == list(range(n)), "not in arrival order"
    return [at for _, at in admitted]


async def test_without_buckets_nobody_waits(clock):
    pacer = Pacer(clock)
    assert await admit_all(pacer, clock, 100, tokens=10_000) == [0.0] * 100
    assert clock.sleeps == []


async def test_calls_leave_in_arrival_order_at_the_rate(clock):
    pacer = paced(clock, rate=2.0, burst=2.0)
    times = await admit_all(pacer, clock, 6)
    assert times == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.5, 2.0])
    assert pacer.waiting == 0


async def test_only_the_head_of_the_line_sleeps(clock):
    pacer = paced(clock, rate=10.0, full=False)
    await admit_all(pacer, clock, 20)
    # One sleep per call, each one interval long: nobody sleeps for a booked future slot.
    assert clock.sleeps == pytest.approx([0.1] * 20)


async def test_a_new_rate_applies_to_calls_already_waiting(clock):
    pacer = paced(clock, rate=1.0, full=False)
    start = clock.monotonic()
    admitted: list[float] = []

    async def one() -> None:
        await pacer.admit(0)
        admitted.append(clock.monotonic() - start)

    tasks = [asyncio.create_task(one()) for _ in range(5)]
    await asyncio.sleep(0)
    assert pacer.requests is not None
    pacer.requests.set_rate(10.0, now=clock.monotonic())
    await asyncio.gather(*tasks)

    # The head had gone to sleep for a second at the old rate; the rest left at the new one.
    assert admitted == pytest.approx([1.0, 1.1, 1.2, 1.3, 1.4])


async def test_a_pause_holds_everyone_then_they_leave_at_the_rate(clock):
    pacer = paced(clock, rate=10.0, burst=5.0)
    pacer.pause_until(clock.monotonic() + 5.0)

    times = await admit_all(pacer, clock, 30)

    # No herd when the pause ends: the bucket starts empty and calls leave 0.1 s apart.
    assert times[0] == pytest.approx(5.1)
    assert times[-1] == pytest.approx(8.0)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) == pytest.approx(0.1)


async def test_a_pause_without_a_rate_still_holds_everyone(clock):
    pacer = Pacer(clock)
    pacer.pause_until(clock.monotonic() + 2.0)
    times = await admit_all(pacer, clock, 3)
    assert min(times) >= 2.0


async def test_a_later_pause_never_shortens_an_earlier_one(clock):
    pacer = Pacer(clock)
    now = clock.monotonic()
    pacer.pause_until(now + 30)
    pacer.pause_until(now + 2)
    assert pacer.paused_until == now + 30


async def test_tokens_are_paced_with_requests(clock):
    pacer = paced(clock, rate=100.0, burst=100.0)
    pacer.tokens = TokenBucket(10.0, 10.0, now=clock.monotonic())  # 10 tokens a second
    times = await admit_all(pacer, clock, 3, tokens=10)
    assert times == pytest.approx([0.0, 1.0, 2.0])


async def test_refund_gives_back_the_request_and_its_tokens(clock):
    pacer = paced(clock, rate=1.0)
    pacer.tokens = TokenBucket(10.0, 10.0, now=clock.monotonic())
    await pacer.admit(10)
    pacer.refund(10)
    await pacer.admit(10)  # what was given back is there at once
    assert clock.sleeps == []


async def test_a_cancelled_head_passes_the_turn_on(clock):
    pacer = paced(clock, rate=1.0, full=False)
    head = asyncio.create_task(pacer.admit(0))
    second = asyncio.create_task(pacer.admit(0))
    await asyncio.sleep(0)
    head.cancel()
    with pytest.raises(asyncio.CancelledError):
        await head

    await asyncio.wait_for(second, 1)
    assert pacer.waiting == 0


async def test_a_cancelled_waiter_leaves_the_line(clock):
    pacer = paced(clock, rate=1.0, full=False)
    head = asyncio.create_task(pacer.admit(0))
    middle = asyncio.create_task(pacer.admit(0))
    last = asyncio.create_task(pacer.admit(0))
    await asyncio.sleep(0)
    assert pacer.waiting == 3
    middle.cancel()
    await asyncio.gather(head, last, return_exceptions=True)

    assert middle.cancelled()
    assert pacer.waiting == 0
    # Two calls took a token each: the one cancelled took none.
    assert pacer.requests is not None
    assert pacer.requests.level(clock.monotonic()) == pytest.approx(0.0)


async def test_interactive_calls_go_right_behind_the_head(clock):
    pacer = paced(clock, rate=10.0, burst=1.0, full=False)  # one call every 0.1 s
    admitted: list[str] = []

    async def call(name: str, *, first: bool = False) -> None:
        await pacer.admit(0, first=first)
        admitted.append(name)

    tasks = [asyncio.create_task(call(f"batch{i}")) for i in range(4)]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(call(f"chat{i}", first=True)) for i in range(2)]
    await asyncio.gather(*tasks)

    # The head of the line (one of the first batch calls, already waiting for its token)
    # goes first; the calls behind it let the chats go, in their own order.
    assert admitted.index("chat1") == admitted.index("chat0") + 1
    assert admitted.index("chat0") <= 2
    assert admitted[-2:] == ["batch2", "batch3"]
    assert pacer.waiting == 0
