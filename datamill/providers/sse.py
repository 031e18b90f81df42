"""Server-sent events: decoding a provider's stream, encoding the gateway's.

The decoder follows the WHATWG event-stream rules that providers rely on: ``event:``,
``data:`` (several lines joined with newlines), ``id:`` and comments; an event ends at a blank
line; ``\\r\\n``, ``\\r`` and ``\\n`` all end a line; a chunk may end anywhere, even inside a
UTF-8 character.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

import orjson

from datamill.errors import ErrorCategory, ProviderError

# The only line breaks of an event stream (str.splitlines would also split at U+2028 and
# friends, which JSON carries unescaped).
_LINE_BREAK = re.compile("\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    data: str
    event: str | None = None
    id: str | None = None


MAX_EVENT_CHARS = 16 * 1024 * 1024  # one line, or the data of one event


class EventDecoder:
    """Feed it the bytes as they arrive; it returns the events completed so far.

    Linear in the bytes fed, however they are cut: a line's pieces are joined once, when it
    ends. A line or an event's data over ``max_chars`` characters fails the stream with a
    ``server_error`` `ProviderError` (an upstream that never ends a line must not eat
    memory)."""

    def __init__(self, *, max_chars: int = MAX_EVENT_CHARS) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._max = max_chars
        self._pending: list[str] = []  # pieces of the line not ended yet
        self._pending_size = 0
        self._after_cr = False  # the last piece ended with "\r": a "\n" next belongs to it
        self._data: list[str] = []
        self._data_size = 0
        self._event: str | None = None
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        text = self._text.decode(chunk)
        if self._after_cr and text.startswith("\n"):
            text = text[1:]
        if "\n" not in text and "\r" not in text:
            if text:
                self._after_cr = False
                self._pending.append(text)
                self._pending_size += len(text)
                if self._pending_size > self._max:
                    raise _too_long("a line", self._max)
            return []
        self._after_cr = text.endswith("\r")
        if self._pending:
            text = "".join(self._pending) + text
            self._pending.clear()
            self._pending_size = 0
        lines = _LINE_BREAK.split(text)
        tail = lines.pop()  # after the last line break: the start of the next line
        if tail:
            if len(tail) > self._max:
                raise _too_long("a line", self._max)
            self._pending.append(tail)
            self._pending_size = len(tail)
        events = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[ServerSentEvent]:
        """At the end of the stream: an event not ended by a blank line is dropped (as the
        standard says), but a pending line is read first."""
        tail = "".join(self._pending) + self._text.decode(b"", final=True)
        self._pending.clear()
        self._pending_size = 0
        events = []
        for raw in _LINE_BREAK.split(tail) if tail else ():
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
            self._data_size = 0
            return event
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data_size += len(value)
            if self._data_size > self._max:
                raise _too_long("an event", self._max)
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None


def _too_long(what: str, limit: int) -> ProviderError:
    return ProviderError(
        ErrorCategory.server_error, f"the provider streamed {what} over {limit} characters"
    )


async def read_events(
    chunks: AsyncIterable[bytes], *, max_chars: int = MAX_EVENT_CHARS
) -> AsyncIterator[ServerSentEvent]:
    """The events of a stream of bytes; a line or an event may hold ``max_chars``
    characters, and never more than `MAX_EVENT_CHARS`."""
    decoder = EventDecoder(max_chars=min(max_chars, MAX_EVENT_CHARS))
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
