"""Anthropic message -> OpenAI chat.completion: content, tool calls, JSON answers, thinking,
finish reasons and usage."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.anthropic.response import (
    chat_completion,
    completion_response,
    finish_reason,
    openai_usage,
)
from datamill.providers.anthropic.table import JSON_TOOL
from datamill.providers.base import Usage


def message(
    *content: dict[str, Any], stop_reason: str = "end_turn", **usage: int
) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": list(content),
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5, **usage},
    }


def reply(completion: dict[str, Any]) -> dict[str, Any]:
    [choice] = completion["choices"]
    result: dict[str, Any] = choice["message"]
    return result


def test_text_blocks_are_the_content():
    completion = chat_completion(
        message({"type": "text", "text": "Hello"}, {"type": "text", "text": " world"}), created=7
    )
    assert completion == {
        "id": "msg_01",
        "object": "chat.completion",
        "created": 7,
        "model": "claude-test",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello world", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


def test_tool_use_blocks_are_tool_calls_with_json_arguments():
    completion = chat_completion(
        message(
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
            {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
            stop_reason="tool_use",
        ),
        created=0,
    )
    answer = reply(completion)
    assert answer["content"] is None
    assert answer["tool_calls"] == [
        {
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        },
        {"id": "toolu_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    assert completion["choices"][0]["finish_reason"] == "tool_calls"


def test_a_json_tool_call_is_the_content():
    completion = chat_completion(
        message(
            {"type": "tool_use", "id": "t", "name": JSON_TOOL, "input": {"name": "Ada", "n": [1]}},
            stop_reason="tool_use",
        ),
        created=0,
    )
    answer = reply(completion)
    assert orjson.loads(answer["content"]) == {"name": "Ada", "n": [1]}
    assert "tool_calls" not in answer
    assert completion["choices"][0]["finish_reason"] == "stop"


def test_thinking_is_left_out_but_its_tokens_are_counted():
    completion = chat_completion(
        message(
            {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "42"},
            output_tokens_details={"thinking_tokens": 3},  # type: ignore[arg-type]
        ),
        created=0,
    )
    assert reply(completion)["content"] == "42"
    assert completion["usage"]["completion_tokens_details"] == {"reasoning_tokens": 3}


@pytest.mark.parametrize(
    ("stop_reason", "called", "expected"),
    [
        ("end_turn", False, "stop"),
        ("stop_sequence", False, "stop"),
        ("max_tokens", False, "length"),
        ("model_context_window_exceeded", False, "length"),
        ("tool_use", True, "tool_calls"),
        ("tool_use", False, "stop"),
        ("refusal", False, "content_filter"),
        ("pause_turn", False, "stop"),
        (None, False, "stop"),
    ],
)
def test_finish_reasons(stop_reason, called, expected):
    assert finish_reason(stop_reason, called_tools=called) == expected


def test_usage_counts_every_input_token_and_the_cached_ones():
    usage = openai_usage(
        {
            "input_tokens": 10,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 20,
            "output_tokens": 7,
        }
    )
    assert usage["prompt_tokens"] == 130
    assert usage["total_tokens"] == 137
    assert usage["prompt_tokens_details"] == {"cached_tokens": 100}


def test_the_provider_response_carries_body_and_usage():
    response = completion_response(
        message({"type": "text", "text": "hi"}, cache_read_input_tokens=4),
        created=1,
        request_id="r",
    )
    assert b"\n" not in response.body
    assert orjson.loads(response.body)["choices"][0]["message"]["content"] == "hi"
    assert response.usage == Usage(input_tokens=14, output_tokens=5, cached_tokens=4)
    assert response.request_id == "r"


def test_an_answer_that_is_not_a_message_is_a_server_error():
    for wrong in (
        {"type": "error"},
        "text",
        {"type": "message", "content": [{"type": "tool_use"}]},
    ):
        with pytest.raises(ProviderError) as caught:
            completion_response(wrong, created=0, request_id="r")
        assert caught.value.category is ErrorCategory.server_error
