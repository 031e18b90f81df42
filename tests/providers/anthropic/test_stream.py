"""Anthropic's stream events -> OpenAI chunks, from hand-written event sequences as
Anthropic's documentation shows them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.anthropic.response import chat_completion
from datamill.providers.anthropic.stream import chat_chunks
from datamill.providers.anthropic.table import JSON_TOOL
from datamill.providers.chunks import completion_from_chunks
from datamill.providers.sse import ServerSentEvent

START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 25, "cache_read_input_tokens": 5, "output_tokens": 1},
    },
}


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def delta(index: int, **fields: Any) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": fields}


def stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def end(stop_reason: str, output_tokens: int = 15) -> list[dict[str, Any]]:
    return [
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": output_tokens},
        },
        {"type": "message_stop"},
    ]


async def events(payloads: list[dict[str, Any]]) -> AsyncIterator[ServerSentEvent]:
    for payload in payloads:
        yield ServerSentEvent(orjson.dumps(payload).decode(), payload.get("type"))


async def translate(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [chunk async for chunk in chat_chunks(events(payloads), created=3)]


def deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]


TEXT_STREAM = [
    START,
    block_start(0, {"type": "text", "text": ""}),
    {"type": "ping"},
    delta(0, type="text_delta", text="Hello"),
    delta(0, type="text_delta", text="!"),
    stop(0),
    *end("end_turn"),
]


async def test_a_text_stream():
    chunks = await translate(TEXT_STREAM)

    assert deltas(chunks) == [
        {"role": "assistant", "content": ""},
        {"content": "Hello"},
        {"content": "!"},
        {},
    ]
    assert {c["id"] for c in chunks} == {"msg_1"}
    assert {(c["object"], c["created"], c["model"]) for c in chunks} == {
        ("chat.completion.chunk", 3, "claude-test")
    }
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    # Usage last, as OpenAI's include_usage chunk: message_start's input, message_delta's output.
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 30
    assert chunks[-1]["usage"]["completion_tokens"] == 15
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 5}


async def test_tool_calls_stream_by_index_with_their_id_first():
    chunks = await translate(
        [
            START,
            block_start(0, {"type": "text", "text": ""}),
            delta(0, type="text_delta", text="Checking."),
            stop(0),
            block_start(
                1, {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}}
            ),
            delta(1, type="input_json_delta", partial_json=""),
            delta(1, type="input_json_delta", partial_json='{"city": '),
            delta(1, type="input_json_delta", partial_json='"Paris"}'),
            stop(1),
            block_start(2, {"type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {}}),
            delta(2, type="input_json_delta", partial_json="{}"),
            stop(2),
            *end("tool_use"),
        ]
    )

    calls = [d["tool_calls"][0] for d in deltas(chunks) if "tool_calls" in d]
    assert calls == [
        {
            "index": 0,
            "id": "toolu_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
        {"index": 0, "function": {"arguments": '{"city": '}},
        {"index": 0, "function": {"arguments": '"Paris"}'}},
        {
            "index": 1,
            "id": "toolu_b",
            "type": "function",
            "function": {"name": "get_time", "arguments": ""},
        },
        {"index": 1, "function": {"arguments": "{}"}},
    ]
    completion = completion_from_chunks(chunks)
    assert completion["choices"][0]["finish_reason"] == "tool_calls"
    assert completion["choices"][0]["message"]["content"] == "Checking."


async def test_a_tool_call_answer_opens_with_null_content():
    chunks = await translate(
        [
            START,
            block_start(0, {"type": "tool_use", "id": "t", "name": "f", "input": {}}),
            delta(0, type="input_json_delta", partial_json="{}"),
            stop(0),
            *end("tool_use"),
        ]
    )
    assert deltas(chunks)[0] == {"role": "assistant", "content": None}


async def test_a_json_tool_streams_as_content():
    chunks = await translate(
        [
            START,
            block_start(0, {"type": "tool_use", "id": "t", "name": JSON_TOOL, "input": {}}),
            delta(0, type="input_json_delta", partial_json='{"name":'),
            delta(0, type="input_json_delta", partial_json='"Ada"}'),
            stop(0),
            *end("tool_use"),
        ]
    )
    completion = completion_from_chunks(chunks)
    assert completion["choices"][0]["message"]["content"] == '{"name":"Ada"}'
    assert "tool_calls" not in completion["choices"][0]["message"]
    assert completion["choices"][0]["finish_reason"] == "stop"


async def test_thinking_streams_nothing():
    chunks = await translate(
        [
            START,
            block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
            delta(0, type="thinking_delta", thinking="Hmm, "),
            delta(0, type="signature_delta", signature="sig"),
            stop(0),
            block_start(1, {"type": "text", "text": ""}),
            delta(1, type="text_delta", text="42"),
            stop(1),
            {
                "type": "message_delta",
                "delta": {"stop_reason": "max_tokens"},
                "usage": {"output_tokens": 9, "output_tokens_details": {"thinking_tokens": 4}},
            },
            {"type": "message_stop"},
        ]
    )
    assert [d.get("content") for d in deltas(chunks)] == ["", "42", None]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 4}


async def test_an_empty_answer_still_opens_finishes_and_counts():
    chunks = await translate([START, *end("end_turn", 1)])
    assert deltas(chunks) == [{"role": "assistant", "content": ""}, {}]
    assert chunks[-1]["usage"]["completion_tokens"] == 1


async def test_a_stream_adds_up_to_the_complete_answer():
    chunks = await translate(TEXT_STREAM)
    complete = chat_completion(
        {
            **START["message"],
            "content": [{"type": "text", "text": "Hello!"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 25, "cache_read_input_tokens": 5, "output_tokens": 15},
        },
        created=3,
    )
    assert completion_from_chunks(chunks) == complete


@pytest.mark.parametrize(
    ("error_type", "category", "status"),
    [
        ("overloaded_error", ErrorCategory.server_error, 529),
        ("api_error", ErrorCategory.server_error, 500),
        ("rate_limit_error", ErrorCategory.rate_limited, 429),
        ("invalid_request_error", ErrorCategory.bad_request, 400),
    ],
)
async def test_an_error_event_midway_raises_after_the_chunks_so_far(error_type, category, status):
    error = {"type": "error", "error": {"type": error_type, "message": "Overloaded"}}
    seen: list[dict[str, Any]] = []

    async def read() -> None:
        async for chunk in chat_chunks(events([*TEXT_STREAM[:4], error]), created=0):
            seen.append(chunk)

    with pytest.raises(ProviderError) as caught:
        await read()

    assert [d["content"] for d in deltas(seen)] == ["", "Hello"]
    assert (caught.value.category, caught.value.status_code) == (category, status)
    assert "midway" in caught.value.message
    assert caught.value.body == error


async def test_a_stream_cut_before_message_stop_is_an_error():
    with pytest.raises(ProviderError) as caught:
        await translate(TEXT_STREAM[:-1])
    assert caught.value.category is ErrorCategory.connection


async def test_an_event_that_is_not_json_is_a_server_error():
    async def garbage() -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent("{not json", "message_start")

    with pytest.raises(ProviderError) as caught:
        [chunk async for chunk in chat_chunks(garbage(), created=0)]
    assert caught.value.category is ErrorCategory.server_error
