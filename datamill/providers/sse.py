"""Server-sent events: decoding a provider's stream, encoding the gateway's.

The decoder follows the WHATWG event-stream rules that providers rely on: ``event:``,
``data:`` (several lines joined with newlines), ``id:`` and comments; an event ends at a blank
line; ``\\r\\n``, ``\\r`` and ``\\n`` all end a line; a chunk may end anywhere, even inside a
UTF-8 character.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

import orjson


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    data: str
    event: str | None = None
    id: str | None = None


class EventDecoder:
    """Feed it the bytes as they arrive; it returns the events completed so far."""

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        text = self._pending + self._text.decode(chunk)
        lines = text.splitlines(keepends=True)
        # The last line is incomplete unless it ends with a line break. A lone "\r" at the end
        # may be the first half of "\r\n": keep it for the next chunk.
        if lines and (not lines[-1].endswith(("\n", "\r")) or lines[-1].endswith("\r")):
            self._pending = lines.pop()
        else:
            self._pending = ""
        events = []
        for raw in lines:
            event = self._line(raw.rstrip("\r\n"))
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[ServerSentEvent]:
        """At the end of the stream: an event not ended by a blank line is dropped (as the
        standard says), but a pending line is read first."""
        tail = self._pending + self._text.decode(b"", final=True)
        self._pending = ""
        events = []
        for raw in tail.splitlines():
            event = self._line(raw)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            if not self._data and self._event is None:
                return None
            event = ServerSentEvent("\n".join(self._data), self._event, self._id)
            self._data, self._event = [], None
            return event
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None


async def read_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[ServerSentEvent]:
    """The events of a stream of bytes."""
    decoder = EventDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.close():
        yield event


def encode_data(payload: object) -> bytes:
    """One ``data:`` event carrying ``payload`` as JSON (orjson never emits newlines)."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def encode_event(name: str, payload: object) -> bytes:
    """One named event (``event:`` then ``data:``), as OpenAI streams Responses events."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


DONE = b"data: [DONE]\n\n"
