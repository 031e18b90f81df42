"""Server-sent events: decoding what providers stream, in chunks cut anywhere."""

from __future__ import annotations

import pytest

from datamill.providers.sse import DONE, EventDecoder, ServerSentEvent, encode_data, read_events


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
