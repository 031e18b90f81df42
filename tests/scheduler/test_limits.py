"""`TokenBucket` and `AdjustableLimit`."""

from __future__ import annotations

import asyncio

import pytest

from datamill.scheduler.limits import AdjustableLimit, TokenBucket

# -- TokenBucket ------------------------------------------------------------------------------


def test_bucket_starts_full_and_says_when_the_next_token_exists():
    bucket = TokenBucket(2.0, 4.0, now=0.0)  # 2 tokens/s, burst of 4

    for _ in range(4):
        assert bucket.wait_time(1, now=0.0) == 0.0
        bucket.take(1, now=0.0)
    assert bucket.wait_time(1, now=0.0) == pytest.approx(0.5)
    assert bucket.wait_time(1, now=0.25) == pytest.approx(0.25)


def test_bucket_can_start_empty():
    bucket = TokenBucket(2.0, 4.0, now=0.0, full=False)
    assert bucket.wait_time(1, now=0.0) == pytest.approx(0.5)
    assert bucket.level(1.0) == pytest.approx(2.0)


def test_bucket_refills_at_its_rate_up_to_its_capacity():
    bucket = TokenBucket(2.0, 4.0, now=0.0)
    bucket.take(4, now=0.0)

    assert bucket.level(0.5) == pytest.approx(1.0)
    assert bucket.level(100.0) == pytest.approx(4.0)  # a long idle time: full, not beyond


def test_a_call_larger_than_the_bucket_goes_when_it_is_full_and_leaves_a_debt():
    bucket = TokenBucket(10.0, 10.0, now=0.0)
    assert bucket.wait_time(25, now=0.0) == 0.0  # a full bucket is all it can ever hold
    bucket.take(25, now=0.0)
    # 15 tokens of debt: the next call waits for them and its own.
    assert bucket.wait_time(1, now=0.0) == pytest.approx(1.6)


def test_bucket_capacity_is_at_least_one_token():
    bucket = TokenBucket(0.1, 0.1, now=0.0)
    assert bucket.capacity == 1.0
    bucket.take(1, now=0.0)
    assert bucket.wait_time(1, now=0.0) == pytest.approx(10.0)


def test_refund_gives_tokens_back_but_not_beyond_capacity():
    bucket = TokenBucket(1.0, 2.0, now=0.0)
    bucket.take(4, now=0.0)  # two in debt
    bucket.refund(3)
    assert bucket.level(0.0) == pytest.approx(1.0)

    bucket.refund(100)
    assert bucket.level(0.0) == pytest.approx(2.0)


def test_negative_refund_settles_a_call_that_used_more_than_it_took():
    bucket = TokenBucket(10.0, 10.0, now=0.0)
    bucket.take(10, now=0.0)
    bucket.refund(-5)  # the call used 5 more tokens than it took
    assert bucket.wait_time(1, now=0.0) == pytest.approx(0.6)


def test_set_rate_keeps_what_accrued_at_the_old_rate():
    bucket = TokenBucket(1.0, 10.0, now=0.0)
    bucket.take(10, now=0.0)

    bucket.set_rate(0.5, now=2.0)  # 2 tokens accrued at 1/s

    assert bucket.level(2.0) == pytest.approx(2.0)
    bucket.take(2, now=2.0)
    assert bucket.wait_time(1, now=2.0) == pytest.approx(2.0)  # 1 token at the new 0.5/s


def test_set_rate_can_shrink_the_burst():
    bucket = TokenBucket(10.0, 10.0, now=0.0)
    bucket.set_rate(4.0, now=0.0, capacity=2.0)
    assert bucket.capacity == 2.0
    assert bucket.level(0.0) == 2.0


def test_hold_until_empties_the_bucket_and_accrues_nothing_before():
    bucket = TokenBucket(2.0, 4.0, now=0.0)
    bucket.hold_until(5.0)

    assert bucket.level(3.0) == 0.0
    # The next token exists half a second after the hold, not before it.
    assert bucket.wait_time(1, now=3.0) == pytest.approx(2.5)
    assert bucket.level(6.0) == pytest.approx(2.0)


def test_hold_until_keeps_a_debt():
    bucket = TokenBucket(1.0, 1.0, now=0.0)
    bucket.take(3, now=0.0)  # two in debt
    bucket.hold_until(1.0)
    assert bucket.wait_time(1, now=1.0) == pytest.approx(3.0)


# -- AdjustableLimit --------------------------------------------------------------------------


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def start_waiters(limit: AdjustableLimit, names: list[str], order: list[str]):
    async def wait(name: str) -> None:
        await limit.acquire()
        order.append(name)

    tasks = {name: asyncio.create_task(wait(name)) for name in names}
    await settle()
    return tasks


async def test_acquire_up_to_the_limit_then_wait():
    limit = AdjustableLimit(2)
    await limit.acquire()
    await limit.acquire()
    order: list[str] = []
    tasks = await start_waiters(limit, ["a"], order)

    assert (limit.held, order) == (2, [])
    limit.release()
    await settle()
    assert (limit.held, order) == (2, ["a"])
    assert tasks["a"].done()


async def test_waiters_are_served_first_in_first_out():
    limit = AdjustableLimit(1)
    await limit.acquire()
    order: list[str] = []
    await start_waiters(limit, ["a", "b", "c"], order)

    for expected in (["a"], ["a", "b"], ["a", "b", "c"]):
        limit.release()
        await settle()
        assert order == expected


async def test_a_newcomer_does_not_overtake_waiters():
    limit = AdjustableLimit(1)
    await limit.acquire()
    order: list[str] = []
    await start_waiters(limit, ["a"], order)

    limit.release()  # the slot is handed to "a" at once
    newcomer = asyncio.create_task(limit.acquire())
    await settle()

    assert order == ["a"]
    assert not newcomer.done()
    limit.release()
    await settle()
    assert newcomer.done()


async def test_shrinking_while_held_waits_for_holders_to_drain():
    limit = AdjustableLimit(3)
    for _ in range(3):
        await limit.acquire()
    order: list[str] = []
    await start_waiters(limit, ["a"], order)

    limit.set_limit(1)
    limit.release()
    limit.release()
    await settle()
    assert (limit.held, order) == (1, [])  # 1 held, limit 1: still no room

    limit.release()
    await settle()
    assert (limit.held, order) == (1, ["a"])


async def test_growing_wakes_waiters_at_once():
    limit = AdjustableLimit(1)
    await limit.acquire()
    order: list[str] = []
    await start_waiters(limit, ["a", "b", "c"], order)

    limit.set_limit(3)
    await settle()

    assert (limit.held, order) == (3, ["a", "b"])
    assert limit.limit == 3


async def test_limit_is_at_least_one():
    limit = AdjustableLimit(0)
    assert limit.limit == 1
    limit.set_limit(-5)
    assert limit.limit == 1


async def test_a_cancelled_waiter_leaves_the_queue():
    limit = AdjustableLimit(1)
    await limit.acquire()
    order: list[str] = []
    tasks = await start_waiters(limit, ["a", "b"], order)

    tasks["a"].cancel()
    await settle()
    limit.release()
    await settle()

    assert order == ["b"]
    assert limit.held == 1
    limit.release()
    assert limit.held == 0
    await asyncio.wait_for(limit.acquire(), 1)  # nothing leaked: the slot is free


async def test_a_waiter_cancelled_as_it_is_granted_passes_the_slot_on():
    limit = AdjustableLimit(1)
    await limit.acquire()
    order: list[str] = []
    tasks = await start_waiters(limit, ["a", "b"], order)

    limit.release()  # grants "a"'s future...
    tasks["a"].cancel()  # ...and "a" is cancelled before it runs again
    await settle()

    assert tasks["a"].cancelled()
    assert order == ["b"]
    assert limit.held == 1
    limit.release()
    assert limit.held == 0


async def test_a_lone_waiter_cancelled_as_it_is_granted_frees_the_slot():
    limit = AdjustableLimit(1)
    await limit.acquire()
    tasks = await start_waiters(limit, ["a"], [])

    limit.release()
    tasks["a"].cancel()
    await settle()

    assert tasks["a"].cancelled()
    assert limit.held == 0
    await asyncio.wait_for(limit.acquire(), 1)
    assert limit.held == 1


async def test_waiters_asking_to_go_first_are_served_before_the_others():
    limit = AdjustableLimit(1)
    await limit.acquire()
    order: list[str] = []
    await start_waiters(limit, ["batch1", "batch2"], order)

    async def interactive(name: str) -> None:
        await limit.acquire(first=True)
        order.append(name)

    tasks = [asyncio.create_task(interactive(name)) for name in ("chat1", "chat2")]
    await settle()
    for _ in range(4):
        limit.release()
        await settle()

    assert order == ["chat1", "chat2", "batch1", "batch2"]
    assert all(task.done() for task in tasks)


async def test_a_cancelled_first_waiter_leaves_its_line():
    limit = AdjustableLimit(1)
    await limit.acquire()
    waiter = asyncio.create_task(limit.acquire(first=True))
    await settle()
    waiter.cancel()
    await settle()

    limit.release()
    assert limit.held == 0
    await limit.acquire()  # the slot is free: nobody stale in line
    assert limit.held == 1


def test_raise_to_grants_more_than_the_capacity_but_never_lowers_or_ends_a_hold():
    bucket = TokenBucket(10.0, 5.0, now=0.0, full=False)
    bucket.raise_to(12.0, now=0.0)
    assert bucket.level(0.0) == 12.0  # above the capacity: the far end has a larger burst
    assert bucket.level(3.0) == 12.0  # nothing accrues above the capacity, nothing is lost
    bucket.take(10.0, now=3.0)
    assert bucket.level(3.3) == pytest.approx(5.0)  # below it again: accrues to the capacity
    bucket.raise_to(1.0, now=3.3)
    assert bucket.level(3.3) == pytest.approx(5.0)  # never lowers

    bucket.hold_until(10.0)
    bucket.raise_to(8.0, now=4.0)
    assert bucket.level(4.0) <= 0.0  # a Retry-After pause is not ended by a catch-up
