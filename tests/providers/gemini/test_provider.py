"""The `gemini` provider end to end, over real HTTP against the mock Gemini server."""

from __future__ import annotations

import asyncio
import base64
import struct
from typing import Any

import jsonschema
import orjson
import pytest

from datamill.clock import SystemClock
from datamill.errors import ConfigError, ErrorCategory, ProviderError
from datamill.plugins import create_provider
from datamill.providers.base import Endpoint, ProviderCall, ProviderContext, Usage
from datamill.providers.chunks import completion_from_chunks
from datamill.providers.gemini import GeminiProvider
from datamill.settings import DeploymentConfig

from .conftest import API_KEY, chat, chat_body, make_provider, seen

C = ErrorCategory
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
            "required": ["city", "days"],
            "additionalProperties": False,
        },
    },
}


async def collect(stream) -> list[dict[str, Any]]:
    try:
        return [chunk async for chunk in stream.chunks]
    finally:
        await stream.close()


def answer_of(response) -> dict[str, Any]:
    assert b"\n" not in response.body
    return orjson.loads(response.body)


# -- chat -------------------------------------------------------------------------------------


async def test_a_chat_completion_and_what_went_over_the_wire(provider, gemini_mock):
    response = await provider.complete(chat("what is datamill?", max_tokens=50, temperature=0.1))

    answer = answer_of(response)
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == "mock answer to what is datamill?"
    assert answer["choices"][0]["finish_reason"] == "stop"
    usage = answer["usage"]
    assert response.usage == Usage(
        input_tokens=usage["prompt_tokens"], output_tokens=usage["completion_tokens"]
    )
    assert response.usage.output_tokens == 6
    assert response.request_id == answer["id"].removeprefix("chatcmpl-")
    [request] = seen(gemini_mock)
    assert request["path"] == "/v1beta/models/gemini-test:generateContent"
    assert request["body"] == {
        "contents": [{"role": "user", "parts": [{"text": "what is datamill?"}]}],
        "generationConfig": {"temperature": 0.1, "maxOutputTokens": 50},
    }


async def test_the_streamed_answer_adds_up_to_the_plain_one(provider, gemini_mock):
    call = chat("stream me a few words please", n=2, logprobs=True, top_logprobs=2)
    plain = answer_of(await provider.complete(call))
    stream = await provider.stream(call)
    chunks = await collect(stream)

    streamed = completion_from_chunks(chunks)
    assert len(plain["choices"]) == 2
    for mine, theirs in zip(streamed["choices"], plain["choices"], strict=True):
        assert mine["message"]["content"] == theirs["message"]["content"]
        assert mine["finish_reason"] == theirs["finish_reason"]
    assert streamed["usage"] == plain["usage"]
    assert chunks[-1]["choices"] == []
    streamed_logprobs = [
        token
        for chunk in chunks
        for choice in chunk["choices"]
        if choice["index"] == 0 and choice.get("logprobs")
        for token in choice["logprobs"]["content"]
    ]
    assert streamed_logprobs == plain["choices"][0]["logprobs"]["content"]
    assert len(streamed_logprobs[0]["top_logprobs"]) == 2
    assert seen(gemini_mock)[-1]["query"] == "alt=sse"
    stats = gemini_mock.stats()
    assert (stats["streams"], stats["streams_completed"]) == (1, 1)


async def test_forced_tool_calls_streamed_or_not(provider, gemini_mock):
    call = chat(
        "[parallel] weather?",
        tools=[WEATHER, {**WEATHER, "function": {**WEATHER["function"], "name": "get_time"}}],
        tool_choice="required",
    )
    plain = answer_of(await provider.complete(call))
    streamed = completion_from_chunks(await collect(await provider.stream(call)))

    calls = plain["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    for tool_call in calls:
        jsonschema.validate(
            orjson.loads(tool_call["function"]["arguments"]), WEATHER["function"]["parameters"]
        )
    assert plain["choices"][0]["finish_reason"] == "tool_calls"
    assert streamed["choices"][0]["message"]["tool_calls"] == [
        {key: c[key] for key in ("id", "type", "function")} for c in calls
    ]
    assert streamed["choices"][0]["finish_reason"] == "tool_calls"


async def test_a_tool_conversation_round_trips_through_gemini(provider, gemini_mock):
    first = [{"role": "user", "content": "weather in Paris?"}]
    call = chat_body(
        first,
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        reasoning_effort="low",
    )
    message = answer_of(await provider.complete(call))["choices"][0]["message"]
    [tool_call] = message["tool_calls"]
    assert tool_call["extra_content"]["google"]["thought_signature"]

    history = [
        *first,
        message,
        {"role": "tool", "tool_call_id": tool_call["id"], "content": "sunny, 21C"},
    ]
    answer = answer_of(await provider.complete(chat_body(history, tools=[WEATHER])))

    assert answer["choices"][0]["message"]["content"].startswith("mock answer")
    sent = seen(gemini_mock)[-1]["body"]["contents"]
    assert [content["role"] for content in sent] == ["user", "model", "user"]
    assert (
        sent[1]["parts"][0]["thoughtSignature"]
        == tool_call["extra_content"]["google"]["thought_signature"]
    )
    assert sent[2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"output": "sunny, 21C"}}}
    ]


async def test_vision_parts_on_the_wire(provider, gemini_mock):
    content = [
        {"type": "text", "text": "what is in these?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/photos/cat.webp"}},
    ]
    await provider.complete(chat_body([{"role": "user", "content": content}]))

    parts = seen(gemini_mock)[-1]["body"]["contents"][0]["parts"]
    assert parts[1:] == [
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/photos/cat.webp"}},
    ]


async def test_json_mode_with_a_schema(provider, gemini_mock):
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        },
        "required": ["title", "tags"],
        "additionalProperties": False,
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "doc", "schema": schema}}
    answer = answer_of(await provider.complete(chat("describe", response_format=response_format)))

    jsonschema.validate(orjson.loads(answer["choices"][0]["message"]["content"]), schema)
    config = seen(gemini_mock)[-1]["body"]["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": schema}
    answer = answer_of(
        await provider.complete(chat("describe", response_format={"type": "json_object"}))
    )
    assert isinstance(orjson.loads(answer["choices"][0]["message"]["content"]), dict)


async def test_limits_thinking_and_cached_tokens(provider, gemini_mock):
    answer = answer_of(
        await provider.complete(chat("one two three four five", max_completion_tokens=2))
    )
    assert answer["choices"][0]["finish_reason"] == "length"
    assert answer["choices"][0]["message"]["content"] == "mock answer"

    response = await provider.complete(
        chat("[cached] a long shared prefix here", reasoning_effort="high")
    )
    usage = answer_of(response)["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 5
    assert usage["prompt_tokens_details"]["cached_tokens"] > 0
    assert response.usage.reasoning_tokens == 5
    assert response.usage.cached_tokens == usage["prompt_tokens_details"]["cached_tokens"]


async def test_a_blocked_prompt_is_refused_streamed_or_not(provider, gemini_mock):
    for start in (provider.complete, provider.stream):
        with pytest.raises(ProviderError) as caught:
            await start(chat("[blocked] something awful"))
        assert caught.value.category is C.content_filter
        assert caught.value.body["promptFeedback"]["blockReason"] == "SAFETY"


async def test_an_answer_stopped_for_safety_is_content_filtered(provider):
    answer = answer_of(await provider.complete(chat("[safety] hm")))
    assert answer["choices"][0]["finish_reason"] == "content_filter"
    assert answer["choices"][0]["message"]["content"] is None


async def test_a_refused_field_never_reaches_gemini(provider, gemini_mock):
    with pytest.raises(ProviderError) as caught:
        await provider.complete(chat("hi", logit_bias={"1": 5}))
    assert (caught.value.category, caught.value.param) == (C.bad_request, "logit_bias")
    with pytest.raises(ProviderError) as caught:
        await provider.stream(chat("hi", parallel_tool_calls=False))
    assert caught.value.param == "parallel_tool_calls"
    assert gemini_mock.stats()["total"] == 0


# -- errors -----------------------------------------------------------------------------------

STATUSES = {
    400: C.bad_request,
    401: C.auth,
    403: C.auth,
    404: C.not_found,
    429: C.rate_limited,
    500: C.server_error,
    503: C.server_error,
    504: C.timeout,
}


async def test_every_error_status_maps_to_its_category(provider, gemini_mock):
    for status, category in STATUSES.items():
        gemini_mock.control(force_status=status)
        for start in (provider.complete, provider.stream):
            with pytest.raises(ProviderError) as caught:
                await start(chat())
            error = caught.value
            assert (error.category, error.status_code) == (category, status), (status, start)
            assert error.body["error"]["code"] == status
            assert error.message == error.body["error"]["message"]
            assert error.retry_after == (2.0 if status == 429 else None)


async def test_the_rate_limit_answers_with_retry_info(provider, gemini_mock):
    gemini_mock.control(rpm=6)  # one request, then one every 10 s
    await provider.complete(chat())
    with pytest.raises(ProviderError) as caught:
        await provider.complete(chat())
    assert caught.value.category is C.rate_limited
    assert caught.value.retry_after == 10.0
    assert caught.value.body["error"]["status"] == "RESOURCE_EXHAUSTED"


async def test_keys_and_models_gemini_refuses(gemini_mock, http):
    cases = [
        (make_provider(gemini_mock.url, http, api_key=None), "gemini-test", C.auth, 403),
        (make_provider(gemini_mock.url, http, api_key="invalid-key"), "gemini-test", C.auth, 400),
        (make_provider(gemini_mock.url, http), "missing-model", C.not_found, 404),
    ]
    for provider, model, category, status in cases:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(chat(model=model))
        assert (caught.value.category, caught.value.status_code) == (category, status)
        for text in (repr(caught.value), str(caught.value.body)):
            assert API_KEY not in text


async def test_closing_a_stream_midway_disconnects_the_upstream(provider, gemini_mock):
    gemini_mock.control(stream_chunk_ms=50)
    stream = await provider.stream(chat("a long answer of very many words to stream"))
    first = await stream.chunks.__anext__()
    assert first["choices"][0]["delta"]["role"] == "assistant"

    await stream.close()

    for _ in range(100):
        if gemini_mock.stats()["streams_disconnected"]:
            break
        await asyncio.sleep(0.02)
    stats = gemini_mock.stats()
    assert (stats["streams_disconnected"], stats["streams_completed"]) == (1, 0)


# -- embeddings -------------------------------------------------------------------------------


def embed_call(**body: Any) -> ProviderCall:
    return ProviderCall(Endpoint.embeddings, {"model": "gemini-embedding", **body}, timeout=10)


async def test_embeddings_of_one_text_and_of_a_list(provider, gemini_mock):
    one = answer_of(await provider.embed(embed_call(input="hello", dimensions=4)))
    many = answer_of(await provider.embed(embed_call(input=["hello", "world"], dimensions=4)))

    assert one["object"] == "list"
    assert [len(item["embedding"]) for item in many["data"]] == [4, 4]
    assert one["data"][0]["embedding"] == many["data"][0]["embedding"]
    first, second = seen(gemini_mock)
    assert first["path"] == "/v1beta/models/gemini-embedding:embedContent"
    assert first["body"] == {"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 4}
    assert second["path"] == "/v1beta/models/gemini-embedding:batchEmbedContents"
    assert second["body"]["requests"][1] == {
        "model": "models/gemini-embedding",
        "content": {"parts": [{"text": "world"}]},
        "outputDimensionality": 4,
    }


async def test_base64_embeddings_are_little_endian_float32(provider):
    floats = answer_of(await provider.embed(embed_call(input=["a b c"])))["data"][0]["embedding"]
    encoded = answer_of(await provider.embed(embed_call(input=["a b c"], encoding_format="base64")))
    raw = base64.b64decode(encoded["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert decoded == pytest.approx(floats, rel=1e-6)
    assert len(decoded) == 16  # the mock's default dimensionality


async def test_embedding_usage_is_gemini_s_or_estimated(provider, gemini_mock):
    estimated = await provider.embed(embed_call(input=["some words to count"]))
    assert estimated.usage.input_tokens == 4  # datamill.nlp.tokens: no usageMetadata
    gemini_mock.control(embed_usage=True)
    reported = await provider.embed(embed_call(input=["some words to count"]))
    assert reported.usage.input_tokens == len("some words to count") // 4


async def test_many_texts_go_in_calls_of_a_hundred(provider, gemini_mock):
    texts = [f"text {i}" for i in range(150)]
    answer = answer_of(await provider.embed(embed_call(input=texts)))
    assert [item["index"] for item in answer["data"]] == list(range(150))
    assert [len(r["body"]["requests"]) for r in seen(gemini_mock)] == [100, 50]


async def test_embedding_inputs_gemini_cannot_take(provider, gemini_mock):
    for body, param in [
        ({"input": [[1, 2, 3]]}, "input"),
        ({"input": [1, 2, 3]}, "input"),
        ({"input": ""}, "input"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
    ]:
        with pytest.raises(ProviderError) as caught:
            await provider.embed(embed_call(**body))
        assert caught.value.param == param, body
    assert gemini_mock.stats()["total"] == 0


# -- the deployment ---------------------------------------------------------------------------


async def test_the_provider_is_registered_and_reads_its_options(gemini_mock, http):
    deployment = DeploymentConfig(
        name="g", provider="gemini", base_url=gemini_mock.url, options={"api_version": "v1"}
    )
    provider = create_provider(deployment, ProviderContext(http=http, clock=SystemClock()))
    assert isinstance(provider, GeminiProvider)
    assert provider.capabilities.native_batch
    with pytest.raises(ProviderError):
        await provider.complete(chat())  # no key: the mock refuses it
    assert seen(gemini_mock)[-1]["path"] == "/v1/models/gemini-test:generateContent"


def test_unknown_or_invalid_options_name_the_key(http):
    for options, key in [({"colour": "red"}, "colour"), ({"api_version": "beta"}, "api_version")]:
        deployment = DeploymentConfig(name="g", provider="gemini", options=options)
        with pytest.raises(ConfigError, match=rf"deployments\.g\.options\.{key}"):
            GeminiProvider(deployment, ProviderContext(http=http, clock=SystemClock()))


def test_the_default_base_url_is_google_s(http):
    deployment = DeploymentConfig(name="g", provider="gemini")
    provider = GeminiProvider(deployment, ProviderContext(http=http, clock=SystemClock()))
    assert provider._client.root == "https://generativelanguage.googleapis.com/v1beta"


async def test_the_embedding_table_against_the_wire(provider, gemini_mock):
    from datamill.providers.fields import EMBEDDING_FIELDS
    from datamill.providers.gemini.embeddings import EMBEDDING_TABLE

    assert set(EMBEDDING_TABLE) == set(EMBEDDING_FIELDS)
    await provider.embed(embed_call(input="x", user="u-1"))
    await provider.embed(embed_call(input="x"))
    with_user, without = seen(gemini_mock)
    assert with_user == without  # `user`: accepted, not sent (its note says so)
    with pytest.raises(ProviderError) as caught:
        await provider.embed(embed_call(input="x", truncate=True))
    assert caught.value.param == "truncate"
