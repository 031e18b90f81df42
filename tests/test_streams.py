"""read_ahead: the same items in the same order, errors in place, early exits clean up."""

from __future__ import annotations

import asyncio

import pytest

from datamill.streams import read_ahead


async def numbers(n: int, *, fail_at: int | None = None, log: list[int] | None = None):
    for i in range(n):
        if i == fail_at:
            raise ValueError(f"bad item {i}")
        if log is not None:
            log.append(i)
        await asyncio.sleep(0)
        yield i


async def test_yields_every_item_in_order():
    assert [i async for i in read_ahead(numbers(50), depth=3)] == list(range(50))


async def test_the_producer_runs_ahead_while_the_consumer_waits():
    produced: list[int] = []
    stream = read_ahead(numbers(10, log=produced), depth=2)
    assert await anext(stream) == 0
    await asyncio.sleep(0.01)  # the consumer is busy elsewhere
    assert len(produced) >= 3  # the item it holds, plus two fetched ahead
    assert [i async for i in stream] == list(range(1, 10))


async def test_an_error_of_the_source_arrives_after_the_items_before_it():
    seen: list[int] = []

    async def consume() -> None:
        async for i in read_ahead(numbers(10, fail_at=4)):
            seen.append(i)

    with pytest.raises(ValueError, match="bad item 4"):
        await consume()
    assert seen == [0, 1, 2, 3]


async def test_leaving_early_stops_the_producer():
    produced: list[int] = []
    stream = read_ahead(numbers(1000, log=produced), depth=2)
    async for i in stream:
        if i == 3:
            break
    await stream.aclose()
    await asyncio.sleep(0.01)
    assert len(produced) <= 7
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
