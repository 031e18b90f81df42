"""Helpers for async streams of pieces (file chunks, pages of rows)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


async def read_ahead(source: AsyncIterable[T], *, depth: int = 2) -> AsyncIterator[T]:
    """Yield ``source``'s items while a background task already fetches the next ``depth``.

    For a producer and a consumer that both wait on I/O (reading pages from the store while
    writing the previous ones elsewhere): their waits overlap instead of adding up. The
    producer's error is raised here, in order; closing this iterator early stops it."""
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=depth)

    async def produce() -> None:
        try:
            async for item in source:
                await queue.put(item)
        except Exception as exc:  # handed over to the consumer, which raises it
            await queue.put(_Failure(exc))
            return
        await queue.put(_DONE)

    producer = asyncio.create_task(produce())
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        if not producer.done():
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error
