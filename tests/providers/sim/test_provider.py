"""The `sim` provider: OpenAI-shaped answers, determinism, faults on a fake clock."""

from __future__ import annotations

import base64
import itertools
import math
import statistics
import struct
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from datamill.errors import ConfigError, ErrorCategory, ProviderError
from datamill.nlp.tokens import estimate_request_tokens, estimate_tokens
from datamill.providers.base import (
    Endpoint,
    Provider,
    ProviderCall,
    ProviderContext,
    ProviderFactory,
    ProviderResponse,
    Usage,
)
from datamill.providers.chunks import completion_from_chunks
from datamill.providers.sim import SimProvider, create_sim_provider
from datamill.settings import DeploymentConfig


class FakeClock:
    """Moves time forward instead of sleeping, and records every sleep."""

    def __init__(self) -> None:
        self.wall_start = 1_700_000_000.0
        self.elapsed = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.wall_start + self.elapsed

    def monotonic(self) -> float:
        return self.elapsed

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.elapsed += seconds


MakeSim = Callable[..., tuple[SimProvider, FakeClock]]


@pytest.fixture
def make_sim() -> MakeSim:
    def make(**options: Any) -> tuple[SimProvider, FakeClock]:
        clock = FakeClock()
        deployment = DeploymentConfig(name="sim", provider="sim", options=options)
        context = ProviderContext(http=None, clock=clock)  # type: ignore[arg-type]
        return create_sim_provider(deployment, context), clock

    return make


def chat(**fields: Any) -> ProviderCall:
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Summarize the plot of Hamlet in two sentences."},
        ],
    }
    body.update(fields)
    return ProviderCall(endpoint=Endpoint.chat_completions, body=body, timeout=60.0)


def embeddings(**fields: Any) -> ProviderCall:
    body: dict[str, Any] = {"model": "text-embedding-3-small", "input": "hello world"}
    body.update(fields)
    return ProviderCall(endpoint=Endpoint.embeddings, body=body, timeout=60.0)


def parsed(response: ProviderResponse) -> dict[str, Any]:
    result: dict[str, Any] = orjson.loads(response.body)
    return result


def test_the_factory_matches_the_provider_contract(make_sim: MakeSim) -> None:
    factory: ProviderFactory = create_sim_provider
    provider: Provider = make_sim()[0]
    assert factory is not None
    assert provider.capabilities.chat
    assert provider.capabilities.embeddings
    assert not provider.capabilities.native_batch


async def test_chat_answer_has_the_openai_shape(make_sim: MakeSim) -> None:
    sim, clock = make_sim()
    call = chat()
    response = await sim.complete(call)
    answer = parsed(response)
    assert answer["id"].startswith("chatcmpl-sim-")
    assert answer["object"] == "chat.completion"
    assert answer["created"] == int(clock.now())
    assert answer["model"] == "gpt-4o-mini"
    assert answer["system_fingerprint"] == "sim"
    [choice] = answer["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert choice["logprobs"] is None
    message = choice["message"]
    assert message["role"] == "assistant"
    assert message["content"].startswith('Simulated answer to "Summarize the plot of Hamlet')
    usage = answer["usage"]
    assert usage["prompt_tokens"] == estimate_request_tokens(call.body)[0]
    assert usage["completion_tokens"] == estimate_tokens(message["content"])
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 0}
    assert response.usage.input_tokens == usage["prompt_tokens"]
    assert response.usage.output_tokens == usage["completion_tokens"]
    assert response.usage.cached_tokens == response.usage.reasoning_tokens == 0
    assert response.request_id.startswith("req_sim_")
    assert response.status_code == 200
    assert b"\n" not in response.body


async def test_answers_are_deterministic_functions_of_the_request(make_sim: MakeSim) -> None:
    sim, _ = make_sim()
    first = parsed(await sim.complete(chat()))
    again = parsed(await sim.complete(chat(stream=False, user="someone")))
    other_instance = parsed(await make_sim()[0].complete(chat()))
    assert first["id"] != again["id"]
    for answer in (again, other_instance):
        assert answer["choices"] == first["choices"]
        assert answer["usage"] == first["usage"]
    varied = {
        parsed(await sim.complete(chat(temperature=t / 10)))["choices"][0]["message"]["content"]
        for t in range(10)
    }
    assert len(varied) > 5
    reseeded = parsed(await make_sim(seed=1)[0].complete(chat()))
    assert reseeded["choices"] != first["choices"]


async def test_text_mentions_the_last_user_message(make_sim: MakeSim) -> None:
    sim, _ = make_sim()
    parts = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    messages = [
        {"role": "user", "content": "An earlier question"},
        {"role": "assistant", "content": "An earlier answer"},
        {"role": "user", "content": parts},
    ]
    answer = parsed(await sim.complete(chat(messages=messages)))
    content = answer["choices"][0]["message"]["content"]
    assert content.startswith('Simulated answer to "What is in this picture?":')
    long_prompt = "word " * 500
    answer = parsed(await sim.complete(chat(messages=[{"role": "user", "content": long_prompt}])))
    assert len(answer["choices"][0]["message"]["content"]) < 250


PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 40},
        "steps": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "order": {"type": "integer", "minimum": 1},
                    "action": {"type": "string"},
                    "due": {"type": ["string", "null"], "format": "date"},
                },
                "required": ["order", "action", "due"],
                "additionalProperties": False,
            },
        },
        "priority": {"enum": ["low", "medium", "high"]},
        "owner": {"$ref": "#/$defs/person"},
    },
    "required": ["title", "steps", "priority", "owner"],
    "additionalProperties": False,
    "$defs": {
        "person": {
            "type": "object",
            "properties": {"email": {"type": "string", "format": "email"}},
            "required": ["email"],
            "additionalProperties": False,
        }
    },
}


async def test_json_schema_answers_validate(make_sim: MakeSim) -> None:
    sim, _ = make_sim()
    validator = Draft202012Validator(PLAN_SCHEMA)
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "plan", "strict": True, "schema": PLAN_SCHEMA},
    }
    for topic in ("a garden", "a wedding", "a product launch", "a move", "a holiday"):
        messages = [{"role": "user", "content": f"Plan {topic}."}]
        answer = parsed(
            await sim.complete(chat(messages=messages, response_format=response_format))
        )
        choice = answer["choices"][0]
        assert choice["finish_reason"] == "stop"
        value = orjson.loads(choice["message"]["content"])
        assert not list(validator.iter_errors(value)), value


async def test_json_object_answers_are_objects(make_sim: MakeSim) -> None:
    sim, _ = make_sim()
    answer = parsed(await sim.complete(chat(response_format={"type": "json_object"})))
    value = orjson.loads(answer["choices"][0]["message"]["content"])
    assert isinstance(value, dict)
    assert value


WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
SEARCH: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "search",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "maximum": 5}},
            "required": ["query"],
        },
    },
}


async def test_forced_tool_calls_have_valid_arguments(make_sim: MakeSim) -> None:
    sim, _ = make_sim()
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, SEARCH)}
    names = set()
    for n in range(12):
        call = chat(tools=[WEATHER, SEARCH], tool_choice="required", temperature=n / 10)
        answer = parsed(await sim.complete(call))
        choice = answer["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        message = choice["message"]
        assert message["content"] is None
        [tool_call] = message["tool_calls"]
        assert tool_call["id"].startswith("call_")
        assert tool_call["type"] == "function"
        name = tool_call["function"]["name"]
        names.add(name)
        arguments = orjson.loads(tool_call["function"]["arguments"])
        assert not list(Draft202012Validator(schemas[name]).iter_errors(arguments))
        assert answer["usage"]["completion_tokens"] > 0
    assert names == {"get_weather", "search"}

    named = {"type": "function", "function": {"name": "search"}}
    answer = parsed(await sim.complete(chat(tools=[WEATHER, SEARCH], tool_choice=named)))
    assert answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "search"

    answer = parsed(await sim.complete(chat(tools=[WEATHER], tool_choice="auto")))
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["choices"][0]["message"]["content"]


async def test_max_tokens_cuts_the_answer(make_sim: MakeSim) -> None:
    sim, _ = make_sim()
    answer = parsed(await sim.complete(chat(max_tokens=5)))
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "length"
    assert 0 < answer["usage"]["completion_tokens"] <= 5
    assert estimate_tokens(choice["message"]["content"]) <= 5
    # max_completion_tokens wins over max_tokens, as in OpenAI's API.
    answer = parsed(await sim.complete(chat(max_tokens=5, max_completion_tokens=500)))
    assert answer["choices"][0]["finish_reason"] == "stop"
    # A cut structured answer is cut JSON, as a real model's would be.
    response_format = {"type": "json_schema", "json_schema": {"schema": PLAN_SCHEMA}}
    answer = parsed(await sim.complete(chat(max_tokens=3, response_format=response_format)))
    assert answer["choices"][0]["finish_reason"] == "length"
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(answer["choices"][0]["message"]["content"])


async def test_n_gives_n_choices(make_sim: MakeSim) -> None:
    sim, _ = make_sim()
    answer = parsed(await sim.complete(chat(n=3)))
    choices = answer["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2]
    assert len({c["message"]["content"] for c in choices}) > 1
    total = sum(estimate_tokens(c["message"]["content"]) for c in choices)
    assert answer["usage"]["completion_tokens"] == total


async def test_embeddings_are_deterministic_unit_vectors(make_sim: MakeSim) -> None:
    sim, _ = make_sim(embedding_dimensions=128)
    response = await sim.embed(embeddings(input=["hello world", "goodbye", "hello world"]))
    answer = parsed(response)
    assert answer["object"] == "list"
    assert answer["model"] == "text-embedding-3-small"
    vectors = [item["embedding"] for item in answer["data"]]
    assert [item["index"] for item in answer["data"]] == [0, 1, 2]
    assert all(item["object"] == "embedding" for item in answer["data"])
    assert all(len(v) == 128 for v in vectors)
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0) for v in vectors)
    assert vectors[0] == vectors[2] != vectors[1]
    assert answer["usage"] == {"prompt_tokens": 5, "total_tokens": 5}  # 2 + 1 + 2
    assert response.usage == Usage(input_tokens=5)

    again = parsed(await sim.embed(embeddings(input="hello world")))
    assert again["data"][0]["embedding"] == vectors[0]
    sized = parsed(await sim.embed(embeddings(dimensions=64)))
    assert len(sized["data"][0]["embedding"]) == 64
    default = parsed(await make_sim()[0].embed(embeddings()))
    assert len(default["data"][0]["embedding"]) == 256


async def test_embeddings_in_base64(make_sim: MakeSim) -> None:
    sim, _ = make_sim()
    plain = parsed(await sim.embed(embeddings()))["data"][0]["embedding"]
    packed = parsed(await sim.embed(embeddings(encoding_format="base64")))["data"][0]["embedding"]
    decoded = struct.unpack("<256f", base64.b64decode(packed))
    assert all(
        math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(plain, decoded, strict=True)
    )


async def test_error_rate_fails_about_that_share_and_retries_can_succeed(
    make_sim: MakeSim,
) -> None:
    sim, _ = make_sim(error_rate=0.2, seed=3)
    outcomes: list[ProviderError | None] = []
    for _ in range(1000):
        try:
            await sim.complete(chat())
        except ProviderError as exc:
            outcomes.append(exc)
        else:
            outcomes.append(None)
    failures = [error for error in outcomes if error is not None]
    assert 150 <= len(failures) <= 250
    assert {error.category for error in failures} == {ErrorCategory.server_error}
    assert {error.status_code for error in failures} == {500}
    assert {error.body["error"]["type"] for error in failures} == {"server_error"}
    assert all(str(error.request_id).startswith("req_sim_") for error in failures)
    # The same request failed and then succeeded on the next call.
    assert any(a is not None and b is None for a, b in itertools.pairwise(outcomes))


async def test_rate_limit_raises_429_with_retry_after(make_sim: MakeSim) -> None:
    sim, clock = make_sim(rate_limit_rpm=60)
    for _ in range(60):
        response = await sim.complete(chat())
    assert response.rate_limits is not None
    assert response.rate_limits.limit_requests == 60
    assert response.rate_limits.remaining_requests == 0
    with pytest.raises(ProviderError) as caught:
        await sim.complete(chat())
    error = caught.value
    assert error.category is ErrorCategory.rate_limited
    assert error.status_code == 429
    assert error.retry_after == pytest.approx(1.0)
    assert error.body["error"]["code"] == "rate_limit_exceeded"
    clock.elapsed += 0.5
    with pytest.raises(ProviderError) as caught:
        await sim.embed(embeddings())
    assert caught.value.retry_after == pytest.approx(0.5)
    clock.elapsed += 0.5
    await sim.embed(embeddings())  # one token has freed


async def test_fixed_latency_is_slept_on_the_clock(make_sim: MakeSim) -> None:
    sim, clock = make_sim(latency_ms=250)
    await sim.complete(chat())
    await sim.embed(embeddings())
    assert clock.sleeps == [0.25, 0.25]
    no_latency, clock = make_sim()
    await no_latency.complete(chat())
    assert clock.sleeps == []


async def test_lognormal_latency_has_the_median_asked_for(make_sim: MakeSim) -> None:
    sim, clock = make_sim(latency_ms=400, latency_dist="lognormal", latency_sigma=0.8)
    for _ in range(2001):
        await sim.complete(chat())
    assert statistics.median(clock.sleeps) == pytest.approx(0.4, rel=0.1)
    assert max(clock.sleeps) > 1.0 > 0.2 > min(clock.sleeps)


async def test_latency_past_the_timeout_is_a_timeout(make_sim: MakeSim) -> None:
    sim, clock = make_sim(latency_ms=5000)
    call = ProviderCall(endpoint=Endpoint.chat_completions, body=chat().body, timeout=2.0)
    with pytest.raises(ProviderError) as caught:
        await sim.complete(call)
    assert caught.value.category is ErrorCategory.timeout
    assert clock.sleeps == [2.0]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"latency": 10}, r"deployments\.sim\.options\.latency: unknown option; sim accepts"),
        ({"error_rate": 1.5}, r"deployments\.sim\.options\.error_rate: .*less than or equal to 1"),
        ({"latency_ms": -1}, r"deployments\.sim\.options\.latency_ms: .*greater than or equal"),
        ({"latency_dist": "uniform"}, r"deployments\.sim\.options\.latency_dist: .*'fixed'"),
        ({"rate_limit_rpm": 0}, r"deployments\.sim\.options\.rate_limit_rpm: .*greater than 0"),
        ({"seed": "abc"}, r"deployments\.sim\.options\.seed: "),
        ({"embedding_dimensions": 0}, r"deployments\.sim\.options\.embedding_dimensions: "),
    ],
)
def test_bad_options_raise_config_error_naming_the_key(
    make_sim: MakeSim, options: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        make_sim(**options)


def _without_messages(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "messages"}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"messages": []}, "messages"),
        (
            {"messages": [{"role": "user", "content": "hi"}, {"content": "no role"}]},
            "messages[1].role",
        ),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"model": "reject-everything"}, "model"),
        ({"n": 0}, "n"),
        ({"max_tokens": -3}, "max_tokens"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format.json_schema.schema",
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"schema": {"type": "string", "pattern": "("}},
                }
            },
            "response_format",
        ),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice",
        ),
        ({"tool_choice": "required"}, "tool_choice"),
    ],
)
async def test_bad_chat_bodies_are_bad_requests(
    make_sim: MakeSim, fields: dict[str, Any], param: str
) -> None:
    sim, clock = make_sim(latency_ms=100)
    with pytest.raises(ProviderError) as caught:
        await sim.complete(chat(**fields))
    error = caught.value
    assert error.category is ErrorCategory.bad_request
    assert error.status_code == 400
    assert error.body["error"]["param"] == param
    assert error.body["error"]["type"] == "invalid_request_error"
    assert param.split("[")[0].split(".")[0] in error.message or param == "n"
    assert clock.sleeps == []  # rejected before any simulated work


async def test_missing_messages_and_input_are_bad_requests(make_sim: MakeSim) -> None:
    sim, _ = make_sim()
    body = _without_messages(chat().body)
    with pytest.raises(ProviderError, match="'messages'") as caught:
        await sim.complete(ProviderCall(endpoint=Endpoint.chat_completions, body=body, timeout=60))
    assert caught.value.body["error"]["param"] == "messages"
    bodies: list[tuple[dict[str, Any], str]] = [
        ({"model": "m"}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": ["ok", ""]}, "input"),
        ({"model": "m", "input": "ok", "dimensions": 0}, "dimensions"),
        ({"model": "reject", "input": "ok"}, "model"),
    ]
    for body, param in bodies:
        call = ProviderCall(endpoint=Endpoint.embeddings, body=body, timeout=60)
        with pytest.raises(ProviderError) as caught:
            await sim.embed(call)
        assert caught.value.category is ErrorCategory.bad_request
        assert caught.value.body["error"]["param"] == param


async def test_aclose_does_nothing(make_sim: MakeSim) -> None:
    sim, _ = make_sim()
    await sim.aclose()
    await sim.complete(chat())


async def test_a_stream_adds_up_to_the_completion(make_sim: MakeSim) -> None:
    sim, clock = make_sim(latency_ms=40)
    call = chat(tools=[WEATHER], tool_choice="auto")
    whole = parsed(await sim.complete(call))

    stream = await sim.stream(call)
    assert clock.sleeps[-1] == pytest.approx(0.04)  # the latency passes before the first chunk
    chunks = [chunk async for chunk in stream.chunks]
    await stream.close()

    streamed = completion_from_chunks(chunks)
    [choice] = streamed["choices"]
    [expected] = whole["choices"]
    assert choice["finish_reason"] == expected["finish_reason"]
    for key in ("content", "tool_calls"):
        assert choice["message"].get(key) == expected["message"].get(key)
    assert streamed["usage"] == whole["usage"]
    assert len(chunks) > 4
    assert stream.request_id.startswith("req_sim_")
