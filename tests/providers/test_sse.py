"""Server-sent events: decoding what providers stream, in chunks cut anywhere."""

from __future__ import annotations

import pytest

from datamill.errors import ProviderError
from datamill.providers.sse import (
    DONE,
    MAX_EVENT_CHARS,
    EventDecoder,
    ServerSentEvent,
    encode_data,
    read_events,
)


def decode_in_pieces(stream: bytes, size: int) -> list[ServerSentEvent]:
    decoder = EventDecoder()
    events: list[ServerSentEvent] = []
    for start in range(0, len(stream), size):
        events += decoder.feed(stream[start : start + size])
    return events + decoder.close()


ANTHROPIC_STYLE = (
    b"event: message_start\r\n"
    b'data: {"type": "message_start"}\r\n'
    b"\r\n"
    b": keep-alive comment\n"
    b"\n"
    b"event: content_block_delta\n"
    b'data: {"text": "caf\xc3\xa9"}\n'
    b"\n"
    b"id: 7\r"
    b"data: first line\r"
    b"data:second line\r"
    b"\r"
)
EXPECTED = [
    ServerSentEvent('{"type": "message_start"}', "message_start"),
    ServerSentEvent('{"text": "café"}', "content_block_delta"),
    ServerSentEvent("first line\nsecond line", None, "7"),
]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_events_survive_any_chunking(size):
    assert decode_in_pieces(ANTHROPIC_STYLE, size) == EXPECTED


def test_an_event_without_its_blank_line_is_dropped_at_the_end():
    decoder = EventDecoder()
    assert decoder.feed(b"data: done\n\ndata: cut") == [ServerSentEvent("done")]
    assert decoder.close() == []


def test_an_event_with_only_an_event_name_is_kept():
    assert decode_in_pieces(b"event: ping\n\n", 4) == [ServerSentEvent("", "ping")]


def test_invalid_utf8_is_replaced_not_raised():
    [event] = decode_in_pieces(b"data: \xff\xfe\n\n", 1)
    assert event.data == "\ufffd\ufffd"


async def test_read_events_over_an_async_stream():
    async def chunks():
        for piece in (b'data: {"a"', b": 1}\n", b"\ndata: [DONE]\n\n"):
            yield piece

    events = [event async for event in read_events(chunks())]
    assert [event.data for event in events] == ['{"a": 1}', "[DONE]"]


def test_encoding_round_trips():
    stream = encode_data({"text": "two\nlines"}) + DONE
    assert [e.data for e in decode_in_pieces(stream, 5)] == ['{"text":"two\\nlines"}', "[DONE]"]


def test_only_cr_and_lf_end_lines():
    # JSON carries U+2028 (and other characters str.splitlines splits at) unescaped.
    data = '{"text": "a\u2028b\x0cc\x1ed\x85e"}'
    events = decode_in_pieces(f"data: {data}\n\n".encode(), 3)

    assert events == [ServerSentEvent(data)]


def test_a_line_break_split_between_chunks_counts_once():
    decoder = EventDecoder()

    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n\r") == [ServerSentEvent("a\nb")]
    assert decoder.feed(b"\n") == []  # the LF of that CRLF: no second blank line


@pytest.mark.timeout(60)
def test_an_endless_line_costs_linear_time_and_stops_at_the_cap():
    # Quadratic splitting would copy the pending line at each of the 16k pieces: about
    # 128 GB of copying, minutes. Linear splitting reads each byte once.
    decoder = EventDecoder(max_chars=16 * 1024 * 1024)
    decoder.feed(b"data: ")
    piece = b"a" * 1024

    def feed_forever() -> None:
        for _ in range(17 * 1024):
            decoder.feed(piece)

    with pytest.raises(ProviderError, match=r"streamed a line over 16777216 characters"):
        feed_forever()


def test_an_event_of_many_lines_is_capped_too():
    decoder = EventDecoder(max_chars=100)
    with pytest.raises(ProviderError, match="streamed an event over 100 characters"):
        decoder.feed(b"data: " + b"x" * 60 + b"\n" + b"data: " + b"y" * 60 + b"\n")


async def test_read_events_never_allows_more_than_the_ceiling():
    async def chunks():
        yield b"data: " + b"z" * (MAX_EVENT_CHARS + 10)

    with pytest.raises(ProviderError):
        _ = [event async for event in read_events(chunks(), max_chars=2**40)]
