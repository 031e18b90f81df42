"""Translating the Responses API to chat completions and back (providers/responses)."""

from __future__ import annotations

import orjson
import pytest

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.responses.answer import to_response
from datamill.providers.responses.events import ResponseEvents
from datamill.providers.responses.request import to_chat

TOOL = {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}


def test_a_request_with_every_translated_field():
    chat = to_chat(
        {
            "model": "m",
            "instructions": "Be brief.",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "Look"}]},
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_image", "image_url": "data:image/png;base64,AA"},
                        {"type": "input_file", "file_data": "data:x", "filename": "a.pdf"},
                    ],
                },
                {"role": "assistant", "content": [{"type": "output_text", "text": "Hm."}]},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "one"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
            ],
            "tools": [TOOL],
            "tool_choice": {"type": "function", "name": "f"},
            "text": {"format": {"type": "json_schema", "name": "s", "schema": {}}},
            "max_output_tokens": 50,
            "temperature": 0.5,
            "top_p": 0.9,
            "reasoning": {"effort": "low"},
            "metadata": {"k": "v"},
            "store": True,
            "user": "u",
            "parallel_tool_calls": False,
            "include": ["reasoning.encrypted_content"],
        }
    )

    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Look"}]},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                {"type": "file", "file": {"file_data": "data:x", "filename": "a.pdf"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Hm.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
    ]
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {"name": "f", "parameters": {"type": "object"}, "strict": True},
        }
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "s", "schema": {}},
    }
    assert chat["max_completion_tokens"] == 50
    assert chat["reasoning_effort"] == "low"
    assert (chat["temperature"], chat["top_p"], chat["user"]) == (0.5, 0.9, "u")
    assert chat["parallel_tool_calls"] is False
    assert "metadata" not in chat
    assert "store" not in chat


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [{"type": "file_search"}]}, "tools[0].type"),
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"background": True}, "background"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"truncation": "auto"}, "truncation"),
        ({"reasoning": {"summary": "auto"}}, "reasoning.summary"),
        ({"text": {"format": {"type": "grammar"}}}, "text.format.type"),
        ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
        ({"include": ["file_search_call.results"]}, "include[0]"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].image_url",
        ),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"input": []}, "input"),
        ({"frobnicate": 1}, "frobnicate"),
    ],
)
def test_what_chat_cannot_express_is_refused_naming_the_field(body, param):
    with pytest.raises(ProviderError) as raised:
        to_chat({"model": "m", "input": "x", **body})

    assert raised.value.category is ErrorCategory.bad_request
    assert raised.value.param == param
    assert raised.value.status_code is None  # refused before anything was sent


def test_neutral_values_of_refused_fields_pass():
    chat = to_chat({"model": "m", "input": "x", "background": False, "truncation": "disabled"})

    assert chat == {"model": "m", "messages": [{"role": "user", "content": "x"}]}


def completion(message: dict, finish: str = "stop") -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "m-upstream",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 2},
        },
    }


def test_an_answer_becomes_a_response_object():
    request = {"model": "m", "input": "x", "metadata": {"k": "v"}, "store": False}
    message = {
        "role": "assistant",
        "content": "Hello",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }

    response = to_response(completion(message), request).wire()

    assert response["object"] == "response"
    assert response["id"].startswith("resp_")
    assert response["status"] == "completed"
    assert response["model"] == "m-upstream"
    assert response["created_at"] == 1700000000
    assert (response["metadata"], response["store"]) == ({"k": "v"}, False)
    text, call = response["output"]
    assert text["type"] == "message"
    assert text["content"] == [
        {"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}
    ]
    assert (call["type"], call["call_id"], call["name"], call["arguments"]) == (
        "function_call",
        "call_1",
        "f",
        "{}",
    )
    assert response["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 15,
    }
    assert response["incomplete_details"] is None


def test_a_cut_answer_is_incomplete():
    response = to_response(completion({"content": "Hel"}, "length"), {"model": "m"}).wire()

    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["status"] == "incomplete"


def chunk(delta: dict | None = None, finish: str | None = None, **extra) -> dict:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": choices, **extra}


def test_streamed_chunks_become_the_responses_event_sequence():
    builder = ResponseEvents({"model": "m", "input": "x"}, created_at=1.0)
    events = []
    for piece in (
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk({}, "tool_calls"),
        chunk(usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}),
    ):
        events += builder.feed(piece)
    events += builder.finish()

    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["response"]["status"] == "in_progress"
    assert events[6]["text"] == "Hello"
    assert events[12]["arguments"] == '{"a":1}'
    assert events[9]["output_index"] == 1
    final = events[-1]["response"]
    assert final["status"] == "completed"
    assert [item["type"] for item in final["output"]] == ["message", "function_call"]
    assert final["usage"]["total_tokens"] == 7
    orjson.dumps(events)  # all plain JSON


def test_a_stream_cut_by_length_ends_incomplete():
    builder = ResponseEvents({"model": "m", "input": "x"}, created_at=1.0)
    events = builder.feed(chunk({"content": "Hel"}, "length")) + builder.finish()

    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-1]["response"]["output"][0]["status"] == "incomplete"


def test_a_streamed_refusal_is_its_own_content_part():
    builder = ResponseEvents({"model": "m", "input": "x"}, created_at=1.0)
    events = builder.feed(chunk({"content": "Well"}))
    events += builder.feed(chunk({"refusal": "I can't"}))
    events += builder.feed(chunk({"refusal": " help."}, "stop")) + builder.finish()

    kinds = [e["type"] for e in events]
    assert kinds[2:] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.content_part.added",
        "response.refusal.delta",
        "response.refusal.delta",
        "response.refusal.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.get("content_index") for e in events[3:12]] == [0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert events[-4]["refusal"] == "I can't help."
    [message] = events[-1]["response"]["output"]
    assert message["content"][1] == {"type": "refusal", "refusal": "I can't help."}
