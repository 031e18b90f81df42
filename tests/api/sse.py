"""Reading server-sent events in tests: frames as the server wrote them, events parsed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson


@dataclass
class Frame:
    """One block of lines ending with a blank line: an event, a comment, or both."""

    id: int | None = None
    event: str | None = None
    data: Any = None
    comments: list[str] = field(default_factory=list)

    @property
    def is_event(self) -> bool:
        return self.event is not None


class SseReader:
    """Frames from a streamed response; `next()` waits for one, at most ``timeout`` s."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines: AsyncIterator[str] = response.aiter_lines()

    async def next(self, timeout: float = 10.0) -> Frame:
        async with asyncio.timeout(timeout):
            frame = Frame()
            async for line in self._lines:
                if line == "":
                    return frame
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    frame.comments.append(value)
                elif name == "id":
                    frame.id = int(value)
                elif name == "event":
                    frame.event = value
                elif name == "data":
                    frame.data = orjson.loads(value)
            raise EOFError("the stream ended")

    async def events(self, count: int, timeout: float = 10.0) -> list[Frame]:
        """The next ``count`` events, skipping comments (pings)."""
        found: list[Frame] = []
        async with asyncio.timeout(timeout):
            while len(found) < count:
                frame = await self.next(timeout)
                if frame.is_event:
                    found.append(frame)
        return found

    async def until(self, done: Any, timeout: float = 30.0) -> list[Frame]:
        """Events up to and with the first for which ``done(frame)`` is true."""
        found: list[Frame] = []
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.next(timeout)
                if frame.is_event:
                    found.append(frame)
                    if done(frame):
                        return found

    async def ended(self, timeout: float = 5.0) -> bool:
        """Whether the stream ends (after any frames left) within ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.next(timeout)
        except EOFError:
            return True
        except TimeoutError:
            return False
