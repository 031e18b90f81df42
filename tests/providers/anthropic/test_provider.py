"""The `anthropic` provider end to end: real HTTP to the mock Anthropic server, which
validates every request as Anthropic does and records the wire body."""

from __future__ import annotations

import asyncio
from typing import Any

import jsonschema
import orjson
import pytest

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.anthropic.table import JSON_TOOL
from datamill.providers.base import Endpoint, ProviderCall, RateLimitHints, Usage
from datamill.providers.chunks import completion_from_chunks
from tests.providers.anthropic.conftest import (
    API_KEY,
    chat,
    last_body,
    make_provider,
    seen_requests,
)

C = ErrorCategory
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}


def answer_of(body: bytes) -> dict[str, Any]:
    completion: dict[str, Any] = orjson.loads(body)
    return completion


def without_ids(completion: dict[str, Any]) -> dict[str, Any]:
    """A completion without what differs between two calls (ids, time)."""
    copy = orjson.loads(orjson.dumps(completion))
    copy.pop("id", None)
    copy.pop("created", None)
    for call in copy["choices"][0]["message"].get("tool_calls") or []:
        call["id"] = None
    return copy


async def collect(stream) -> list[dict[str, Any]]:
    try:
        return [chunk async for chunk in stream.chunks]
    finally:
        await stream.close()


# -- complete ---------------------------------------------------------------------------------


async def test_a_chat_completion_and_its_wire_request(provider, anthropic):
    call = chat(
        "what is datamill?",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "what is datamill?"},
        ],
        temperature=0.2,
        max_completion_tokens=200,
        user="u-7",
    )
    response = await provider.complete(call)

    answer = answer_of(response.body)
    assert answer["object"] == "chat.completion"
    assert answer["id"].startswith("msg_")
    assert answer["choices"][0]["message"] == {
        "role": "assistant",
        "content": "mock answer to what is datamill?",
        "refusal": None,
    }
    assert answer["choices"][0]["finish_reason"] == "stop"
    usage = answer["usage"]
    assert response.usage == Usage(
        input_tokens=usage["prompt_tokens"], output_tokens=usage["completion_tokens"]
    )
    assert response.usage.input_tokens > 0
    assert response.request_id.startswith("req_")  # the request-id header
    assert (response.status_code, response.rate_limits) == (200, None)
    [seen] = seen_requests(anthropic)
    assert (seen["method"], seen["path"]) == ("POST", "/v1/messages")
    assert seen["body"] == {
        "model": "claude-test",
        "max_tokens": 200,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "what is datamill?"}],
        "temperature": 0.2,
        "metadata": {"user_id": "u-7"},
    }
    headers = {name.lower(): value for name, value in seen["headers"].items()}
    assert headers["x-api-key"] == API_KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert "anthropic-beta" not in headers
    assert "authorization" not in headers


async def test_version_and_beta_options_are_headers(anthropic, http):
    provider = make_provider(
        http, anthropic.url, anthropic_version="2026-10-21", beta=["a-2025-01-01", "b-2026"]
    )
    await provider.complete(chat())
    headers = {k.lower(): v for k, v in seen_requests(anthropic)[-1]["headers"].items()}
    assert headers["anthropic-version"] == "2026-10-21"
    assert headers["anthropic-beta"] == "a-2025-01-01,b-2026"


async def test_stop_sequences_max_tokens_and_refusals_finish_as_openai_says(provider):
    stopped = answer_of((await provider.complete(chat("xyz", stop="answer"))).body)
    assert stopped["choices"][0]["message"]["content"] == "mock "
    assert stopped["choices"][0]["finish_reason"] == "stop"

    cut = answer_of((await provider.complete(chat("xyz", max_tokens=2))).body)
    assert cut["choices"][0]["message"]["content"] == "mock answer"
    assert cut["choices"][0]["finish_reason"] == "length"

    refusal = answer_of((await provider.complete(chat("xyz", model="mock-refusal"))).body)
    assert refusal["choices"][0]["finish_reason"] == "content_filter"


async def test_prompt_caching_counts_cached_tokens(anthropic, http):
    provider = make_provider(http, anthropic.url, prompt_caching=True)
    response = await provider.complete(chat("a long prompt " * 20))
    assert last_body(anthropic)["cache_control"] == {"type": "ephemeral"}
    usage = answer_of(response.body)["usage"]
    assert response.usage.cached_tokens == usage["prompt_tokens_details"]["cached_tokens"] > 0
    assert usage["prompt_tokens"] > usage["prompt_tokens_details"]["cached_tokens"]


async def test_reasoning_effort_thinks_without_showing_the_thinking(provider, anthropic):
    response = await provider.complete(chat("why?", reasoning_effort="high"))
    sent = last_body(anthropic)
    assert (sent["thinking"], sent["output_config"]) == ({"type": "adaptive"}, {"effort": "high"})
    answer = answer_of(response.body)
    assert answer["choices"][0]["message"]["content"] == "mock answer to why?"
    assert response.usage.reasoning_tokens > 0


# -- tools, vision, JSON --------------------------------------------------------------------


async def test_tool_calls_and_the_next_turn(provider, anthropic):
    first = answer_of((await provider.complete(chat("use get_weather", tools=[WEATHER]))).body)
    [call] = first["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert isinstance(orjson.loads(call["function"]["arguments"])["city"], str)
    assert first["choices"][0]["finish_reason"] == "tool_calls"

    # The mock checks that every tool_use is answered by a tool_result.
    messages = [
        {"role": "user", "content": "use get_weather"},
        first["choices"][0]["message"],
        {"role": "tool", "tool_call_id": call["id"], "content": "18 C"},
    ]
    second = await provider.complete(chat(messages=messages, tools=[WEATHER]))
    assert answer_of(second.body)["choices"][0]["message"]["content"] == (
        "mock answer to the tool results"
    )
    assert last_body(anthropic)["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": call["id"],
        "content": "18 C",
    }


async def test_vision_parts_go_on_the_wire(provider, anthropic):
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    response = await provider.complete(chat(messages=[{"role": "user", "content": content}]))

    assert answer_of(response.body)["choices"][0]["message"]["content"] == (
        "mock answer to what is this?"
    )
    assert last_body(anthropic)["messages"][0]["content"][1:] == [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
    ]


async def test_an_image_type_anthropic_refuses_is_its_bad_request(provider):
    content = [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}]
    with pytest.raises(ProviderError) as caught:
        await provider.complete(chat(messages=[{"role": "user", "content": content}]))
    assert (caught.value.category, caught.value.status_code) == (C.bad_request, 400)
    assert "media_type" in caught.value.message


@pytest.mark.parametrize("json_mode", ["tool", "output_format"])
async def test_json_mode_answers_a_valid_instance(anthropic, http, json_mode):
    provider = make_provider(http, anthropic.url, json_mode=json_mode)
    response = await provider.complete(chat("a person", response_format=JSON_SCHEMA))

    answer = answer_of(response.body)
    content = answer["choices"][0]["message"]["content"]
    jsonschema.validate(orjson.loads(content), PERSON)
    assert answer["choices"][0]["finish_reason"] == "stop"
    sent = last_body(anthropic)
    if json_mode == "tool":
        assert sent["tool_choice"]["name"] == JSON_TOOL
    else:
        assert sent["output_config"]["format"]["schema"] == PERSON


async def test_a_refused_field_never_reaches_anthropic(provider, anthropic):
    with pytest.raises(ProviderError) as caught:
        await provider.complete(chat(temperature=1.5))
    assert (caught.value.category, caught.value.param) == (C.bad_request, "temperature")
    assert seen_requests(anthropic) == []


async def test_embeddings_are_refused(provider, anthropic):
    call = ProviderCall(Endpoint.embeddings, {"model": "m", "input": "x"}, timeout=5)
    with pytest.raises(ProviderError) as caught:
        await provider.embed(call)
    assert caught.value.category is C.not_found
    assert "no embeddings" in caught.value.message
    assert seen_requests(anthropic) == []


# -- errors ---------------------------------------------------------------------------------

ERROR_STATUSES = {
    400: C.bad_request,
    401: C.auth,
    402: C.auth,
    403: C.auth,
    404: C.not_found,
    409: C.server_error,
    413: C.bad_request,
    429: C.rate_limited,
    500: C.server_error,
    504: C.timeout,
    529: C.server_error,
}


async def test_error_statuses_map_to_categories(provider, anthropic):
    for status, category in ERROR_STATUSES.items():
        anthropic.control(force_status=status)

        with pytest.raises(ProviderError) as caught:
            await provider.complete(chat())

        error = caught.value
        assert (error.category, error.status_code) == (category, status), status
        assert error.body["type"] == "error"
        assert error.message == error.body["error"]["message"]
        assert error.request_id.startswith("req_")
        assert error.retry_after == (1.0 if status == 429 else None), status


async def test_model_errors_keep_the_upstream_body(provider):
    for model, category, status in [
        ("reject-me", C.bad_request, 400),
        ("unauthorized", C.auth, 401),
        ("missing-model", C.not_found, 404),
        ("spend-limit", C.auth, 429),
    ]:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(chat(model=model))
        assert (caught.value.category, caught.value.status_code) == (category, status), model
        assert caught.value.body["error"]["message"] == caught.value.message


async def test_fail_next_overloads_then_succeeds(provider, anthropic):
    anthropic.control(fail_next=2, error_status=529)
    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            await provider.complete(chat())
        assert caught.value.body["error"]["type"] == "overloaded_error"
        assert caught.value.category.retryable
    assert (await provider.complete(chat())).status_code == 200
    assert anthropic.stats()["by_status"] == {"200": 1, "529": 2}


async def test_rate_limit_hints_and_a_rate_limited_call(provider, anthropic):
    anthropic.control(rpm=6)  # one request of burst, then one every 10 s

    response = await provider.complete(chat())
    hints = response.rate_limits
    assert isinstance(hints, RateLimitHints)
    assert (hints.limit_requests, hints.remaining_requests) == (6, 0)
    assert hints.reset_requests is not None
    assert 0 < hints.reset_requests <= 10.5
    assert hints.limit_tokens == 100_000_000

    with pytest.raises(ProviderError) as caught:
        await provider.complete(chat())
    assert caught.value.category is C.rate_limited
    assert 5.0 < caught.value.retry_after <= 10.0


async def test_a_missing_key_is_an_auth_error_and_the_key_never_shows(anthropic, http):
    with pytest.raises(ProviderError) as caught:
        await make_provider(http, anthropic.url, api_key=None).complete(chat())
    assert caught.value.category is C.auth

    with pytest.raises(ProviderError) as caught:
        await make_provider(http, anthropic.url).complete(chat(model="unauthorized"))
    for text in (repr(caught.value), str(caught.value), str(caught.value.body)):
        assert API_KEY not in text


# -- streaming ------------------------------------------------------------------------------


STREAMED = [
    pytest.param({}, id="text"),
    pytest.param({"tools": [WEATHER], "tool_choice": "required"}, id="tool-call"),
    pytest.param({"response_format": JSON_SCHEMA}, id="json"),
    pytest.param({"reasoning_effort": "low", "stop": "to"}, id="thinking"),
]


@pytest.mark.parametrize("fields", STREAMED)
async def test_a_stream_adds_up_to_the_complete_answer(provider, anthropic, fields):
    complete = answer_of((await provider.complete(chat("stream me please", **fields))).body)

    stream = await provider.stream(chat("stream me please", **fields))
    assert stream.request_id.startswith("req_")
    chunks = await collect(stream)

    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == []  # usage last, always
    assert without_ids(completion_from_chunks(chunks)) == without_ids(complete)
    assert last_body(anthropic)["stream"] is True
    assert anthropic.stats()["streams_completed"] == 1


async def test_a_refused_stream_raises_before_any_chunk(provider, anthropic):
    anthropic.control(force_status=429)
    with pytest.raises(ProviderError) as caught:
        await provider.stream(chat())
    assert (caught.value.category, caught.value.retry_after) == (C.rate_limited, 1.0)
    assert caught.value.request_id.startswith("req_")

    anthropic.control(force_status=529)
    with pytest.raises(ProviderError) as caught:
        await provider.stream(chat())
    assert caught.value.body["error"]["type"] == "overloaded_error"


async def test_an_error_event_midway_fails_the_stream(provider, anthropic):
    anthropic.control(stream_error_after=4)
    stream = await provider.stream(chat("a long answer"))
    seen: list[dict[str, Any]] = []

    async def read() -> None:
        async for chunk in stream.chunks:
            seen.append(chunk)

    try:
        with pytest.raises(ProviderError) as caught:
            await read()
    finally:
        await stream.close()
    assert caught.value.category is C.server_error
    assert caught.value.body["error"]["type"] == "overloaded_error"
    assert seen
    assert seen[0]["choices"][0]["delta"]["role"] == "assistant"


async def test_closing_a_stream_midway_disconnects_from_anthropic(provider, anthropic):
    anthropic.control(stream_chunk_ms=50)
    stream = await provider.stream(chat("a long answer of many words to stream slowly"))
    first = await stream.chunks.__anext__()
    assert first["choices"][0]["delta"]["role"] == "assistant"

    await stream.close()

    for _ in range(100):
        if anthropic.stats()["streams_disconnected"]:
            break
        await asyncio.sleep(0.02)
    stats = anthropic.stats()
    assert (stats["streams_disconnected"], stats["streams_completed"]) == (1, 0)
