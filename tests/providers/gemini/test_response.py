"""Gemini answers to OpenAI's: completions, finish reasons, usage, logprobs, stream chunks and
Google's error bodies."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.base import Usage
from datamill.providers.chunks import completion_from_chunks
from datamill.providers.gemini import errors, response
from datamill.providers.gemini.stream import ChunkTranslator, parse_event
from datamill.providers.http import HttpAnswer
from datamill.providers.sse import ServerSentEvent

C = ErrorCategory


def candidate(parts: list[dict[str, Any]], finish: str | None = "STOP", index: int = 0) -> dict:
    found: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": index}
    if finish:
        found["finishReason"] = finish
    return found


def complete(*candidates: dict[str, Any], **extra: Any) -> tuple[dict[str, Any], Usage]:
    data = {"candidates": list(candidates), "responseId": "r1", "modelVersion": "gemini-x", **extra}
    return response.completion(data, model="asked", created=5)


def test_text_parts_make_the_content_and_thoughts_are_left_out():
    answer, _ = complete(
        candidate([{"text": "thinking...", "thought": True}, {"text": "Hello "}, {"text": "world"}])
    )
    assert answer["id"] == "chatcmpl-r1"
    assert answer["model"] == "gemini-x"
    assert answer["created"] == 5
    [choice] = answer["choices"]
    assert choice["message"]["content"] == "Hello world"
    assert choice["finish_reason"] == "stop"


def test_function_calls_become_tool_calls_with_stable_ids():
    parts = [
        {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "sig"},
        {"functionCall": {"name": "g", "args": {}, "id": "given-id"}},
    ]
    first, _ = complete(candidate(parts))
    again, _ = complete(candidate(parts))
    message = first["choices"][0]["message"]
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    assert message["content"] is None
    call_f, call_g = message["tool_calls"]
    assert call_f["id"].startswith("call_")
    assert len(call_f["id"]) == 29
    assert call_f["function"] == {"name": "f", "arguments": '{"a":1}'}
    assert call_f["extra_content"] == {"google": {"thought_signature": "sig"}}
    assert call_g["id"] == "given-id"
    assert again["choices"][0]["message"]["tool_calls"] == message["tool_calls"]


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("OTHER", "stop"),
    ],
)
def test_finish_reasons(reason, finish):
    answer, _ = complete(candidate([{"text": "x"}], reason))
    assert answer["choices"][0]["finish_reason"] == finish


def test_unusable_finishes_raise():
    with pytest.raises(ProviderError) as caught:
        complete(candidate([], "MALFORMED_FUNCTION_CALL"))
    assert caught.value.category is C.server_error
    with pytest.raises(ProviderError) as caught:
        complete(candidate([], "MISSING_THOUGHT_SIGNATURE"))
    assert caught.value.category is C.bad_request


def test_several_candidates_are_several_choices():
    answer, _ = complete(candidate([{"text": "b"}], index=1), candidate([{"text": "a"}], index=0))
    assert [(c["index"], c["message"]["content"]) for c in answer["choices"]] == [
        (0, "a"),
        (1, "b"),
    ]


def test_a_blocked_prompt_is_a_content_filter_error():
    data = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {}}
    with pytest.raises(ProviderError) as caught:
        response.completion(data, model="m", created=0)
    assert caught.value.category is C.content_filter
    assert "PROHIBITED_CONTENT" in caught.value.message
    assert caught.value.body == data


def test_usage_counts_thoughts_as_reasoning_and_cached_tokens():
    _, usage = complete(
        candidate([{"text": "x"}]),
        usageMetadata={
            "promptTokenCount": 100,
            "candidatesTokenCount": 20,
            "thoughtsTokenCount": 30,
            "cachedContentTokenCount": 64,
            "totalTokenCount": 150,
        },
    )
    assert usage == Usage(input_tokens=100, output_tokens=50, cached_tokens=64, reasoning_tokens=30)
    body, _ = response.usage(
        {"promptTokenCount": 100, "candidatesTokenCount": 20, "thoughtsTokenCount": 30}
    )
    assert body["total_tokens"] == 150
    assert body["completion_tokens_details"] == {"reasoning_tokens": 30}


def test_logprobs():
    found = candidate([{"text": "Hi"}])
    found["logprobsResult"] = {
        "chosenCandidates": [{"token": "Hi", "tokenId": 1, "logProbability": -0.5}],
        "topCandidates": [
            {
                "candidates": [
                    {"token": "Hi", "logProbability": -0.5},
                    {"token": "Yo", "logProbability": -2.0},
                ]
            }
        ],
    }
    answer, _ = complete(found)
    assert answer["choices"][0]["logprobs"] == {
        "content": [
            {
                "token": "Hi",
                "logprob": -0.5,
                "bytes": [72, 105],
                "top_logprobs": [
                    {"token": "Hi", "logprob": -0.5, "bytes": [72, 105]},
                    {"token": "Yo", "logprob": -2.0, "bytes": [89, 111]},
                ],
            }
        ],
        "refusal": None,
    }


# -- streams ----------------------------------------------------------------------------------


def test_stream_events_become_openai_chunks():
    translator = ChunkTranslator(model="asked", created=7)
    events = [
        {"candidates": [candidate([{"text": "Hel"}], None)], "responseId": "r9"},
        {
            "candidates": [candidate([{"text": "lo"}], "STOP")],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2},
        },
    ]
    chunks = [chunk for event in events for chunk in translator.chunks(event)]
    chunks.append(translator.usage_chunk())
    assert [c["choices"][0]["delta"] if c["choices"] else None for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
        {"content": "lo"},
        {},
        None,
    ]
    assert {c["id"] for c in chunks} == {"chatcmpl-r9"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["total_tokens"] == 5
    assert completion_from_chunks(chunks)["choices"][0]["message"]["content"] == "Hello"


def test_streamed_function_calls_are_one_delta_each():
    translator = ChunkTranslator(model="m", created=0)
    chunks = translator.chunks(
        {
            "candidates": [
                candidate(
                    [
                        {"functionCall": {"name": "f", "args": {"x": 1}}},
                        {"functionCall": {"name": "g", "args": {}}},
                    ]
                )
            ]
        }
    )
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    deltas = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[1:3]]
    assert [(d["index"], d["function"]["name"], d["type"]) for d in deltas] == [
        (0, "f", "function"),
        (1, "g", "function"),
    ]
    assert chunks[3]["choices"][0]["finish_reason"] == "tool_calls"


def test_an_error_event_raises_with_its_category():
    event = ServerSentEvent(
        orjson.dumps(
            {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}
        ).decode()
    )
    with pytest.raises(ProviderError) as caught:
        parse_event(event)
    assert caught.value.category is C.server_error
    assert "overloaded" in caught.value.message
    with pytest.raises(ProviderError):
        parse_event(ServerSentEvent("{not json"))


# -- errors -----------------------------------------------------------------------------------


def google(status: int, name: str, details: list[dict[str, Any]] | None = None) -> HttpAnswer:
    error: dict[str, Any] = {"code": status, "message": f"{name} happened", "status": name}
    if details is not None:
        error["details"] = details
    return HttpAnswer(status, {}, orjson.dumps({"error": error}))


@pytest.mark.parametrize(
    ("status", "name", "category"),
    [
        (400, "INVALID_ARGUMENT", C.bad_request),
        (400, "FAILED_PRECONDITION", C.bad_request),
        (401, "UNAUTHENTICATED", C.auth),
        (403, "PERMISSION_DENIED", C.auth),
        (404, "NOT_FOUND", C.not_found),
        (429, "RESOURCE_EXHAUSTED", C.rate_limited),
        (500, "INTERNAL", C.server_error),
        (503, "UNAVAILABLE", C.server_error),
        (504, "DEADLINE_EXCEEDED", C.timeout),
    ],
)
def test_statuses_map_to_categories(status, name, category):
    error = errors.error_from_answer(google(status, name))
    assert (error.category, error.status_code) == (category, status)
    assert error.message == f"{name} happened"
    assert error.body["error"]["status"] == name


def test_retry_info_is_the_retry_hint():
    details = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "31.5s"},
    ]
    assert errors.error_from_answer(google(429, "RESOURCE_EXHAUSTED", details)).retry_after == 31.5
    plain = HttpAnswer(429, {"retry-after": "7"}, orjson.dumps({"error": {"code": 429}}))
    assert errors.error_from_answer(plain).retry_after == 7.0


def test_an_invalid_key_is_an_auth_error_though_gemini_says_400():
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]
    assert errors.error_from_answer(google(400, "INVALID_ARGUMENT", details)).category is C.auth


def test_a_batch_requests_status_uses_grpc_codes():
    error = errors.error_from_status({"code": 8, "message": "quota"})
    assert (error.category, error.message) == (C.rate_limited, "quota")
    assert errors.error_from_status({"code": 3, "message": "bad"}).category is C.bad_request
    assert errors.error_from_status({"code": 13}).category is C.server_error


def test_a_non_json_error_body_is_kept_as_text():
    error = errors.error_from_answer(HttpAnswer(502, {}, b"<html>bad gateway</html>"))
    assert error.category is C.server_error
    assert error.body == {"error": {"message": "<html>bad gateway</html>"}}
