"""The `openai` provider against real HTTP servers on loopback: the mock provider process for
answers and faults, and a small recording server for what exactly goes over the wire."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from pydantic import SecretStr

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.base import Endpoint, ProviderCall, RateLimitHints, Usage
from datamill.providers.http import HttpPool
from datamill.providers.openai import OpenAIProvider
from datamill.settings import DeploymentConfig

C = ErrorCategory
API_KEY = "sk-test-d4t4m1ll-very-secret"


@pytest.fixture
async def http() -> AsyncIterator[HttpPool]:
    pool = HttpPool()
    yield pool
    await pool.aclose()


def provider_for(base_url: str, http: HttpPool, *, api_key: str | None = API_KEY, **config: Any):
    deployment = DeploymentConfig(
        name="d",
        base_url=base_url,
        api_key=SecretStr(api_key) if api_key else None,
        **config,
    )
    return OpenAIProvider(deployment, http)


@pytest.fixture
def provider(mock_provider, http) -> OpenAIProvider:
    return provider_for(mock_provider.base_url, http)


def chat_call(model: str = "mock-model", text: str = "hello", *, raw: bool = True) -> ProviderCall:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return ProviderCall(
        Endpoint.chat_completions, body, timeout=10, raw=orjson.dumps(body) if raw else None
    )


# -- a recording upstream ---------------------------------------------------------------------


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Upstream:
    """Answers every POST with ``status``/``headers``/``body`` and records what it got."""

    base_url: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"{}"
    content_type: str = "application/json"
    seen: list[Seen] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(Seen(request.path, dict(request.headers), await request.read()))
        return web.Response(
            status=self.status,
            headers=self.headers,
            body=self.body,
            content_type=self.content_type,
        )


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    recorder = Upstream()
    app = web.Application()
    app.router.add_post("/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    recorder.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    yield recorder
    await runner.cleanup()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- success ----------------------------------------------------------------------------------


async def test_a_chat_completion_with_its_usage(provider, mock_provider):
    response = await provider.complete(chat_call(text="what is datamill?"))

    answer = orjson.loads(response.body)
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == "mock answer to what is datamill?"
    usage = answer["usage"]
    assert response.usage == Usage(
        input_tokens=usage["prompt_tokens"], output_tokens=usage["completion_tokens"]
    )
    assert response.usage.total_tokens == usage["total_tokens"]
    assert response.status_code == 200
    assert response.request_id.startswith("req_")  # the upstream's x-request-id
    assert response.rate_limits is None  # the mock sends no x-ratelimit-* without an rpm
    assert mock_provider.stats()["by_status"] == {"200": 1}


async def test_the_answer_bytes_are_kept_verbatim(upstream, http):
    upstream.body = b'{ "id":"chatcmpl-1",  "object" : "chat.completion", "z": 1.50, "a": []}'
    provider = provider_for(upstream.base_url, http)

    response = await provider.complete(chat_call())

    assert response.body == upstream.body
    assert response.request_id == "chatcmpl-1"  # no x-request-id: the body's id
    assert response.usage == Usage()


async def test_a_multi_line_answer_is_put_on_one_line(upstream, http):
    upstream.body = b'{\n  "id": "x",\n  "text": "two\\nlines"\n}\n'
    provider = provider_for(upstream.base_url, http)

    response = await provider.complete(chat_call())

    assert b"\n" not in response.body
    assert orjson.loads(response.body) == {"id": "x", "text": "two\nlines"}


async def test_usage_details_are_read(upstream, http):
    upstream.body = orjson.dumps(
        {
            "id": "x",
            "usage": {
                "prompt_tokens": 100,
                "completion_tokens": 40,
                "prompt_tokens_details": {"cached_tokens": 64},
                "completion_tokens_details": {"reasoning_tokens": 30},
            },
        }
    )
    response = await provider_for(upstream.base_url, http).complete(chat_call())
    assert response.usage == Usage(
        input_tokens=100, output_tokens=40, cached_tokens=64, reasoning_tokens=30
    )


async def test_embeddings(provider):
    body = {"model": "mock-model", "input": ["a", "b"], "dimensions": 4}
    response = await provider.embed(ProviderCall(Endpoint.embeddings, body, timeout=10))

    answer = orjson.loads(response.body)
    assert [len(item["embedding"]) for item in answer["data"]] == [4, 4]
    assert response.usage.input_tokens == answer["usage"]["prompt_tokens"]
    assert response.usage.output_tokens == 0


async def test_the_body_goes_with_its_rewritten_model(provider):
    # The engine rewrites ``model`` for a deployment with an upstream model and drops ``raw``.
    response = await provider.complete(chat_call("upstream-model", raw=False))
    assert orjson.loads(response.body)["model"] == "upstream-model"


async def test_raw_bytes_are_sent_unchanged(upstream, http):
    raw = b'{"model":"m",  "messages":[{"role":"user","content":"hi"}], "x": 1.0}'
    call = ProviderCall(Endpoint.chat_completions, orjson.loads(raw), timeout=10, raw=raw)

    await provider_for(upstream.base_url, http).complete(call)

    [seen] = upstream.seen
    assert (seen.path, seen.body) == ("/v1/chat/completions", raw)


async def test_rate_limit_hints_come_back_with_the_answer(provider, mock_provider):
    mock_provider.control(rpm=600)
    response = await provider.complete(chat_call())
    hints = response.rate_limits
    assert isinstance(hints, RateLimitHints)
    assert hints.limit_requests == 600
    assert hints.remaining_requests is not None
    assert hints.reset_requests is not None


# -- errors -----------------------------------------------------------------------------------


ERROR_STATUSES = {
    400: C.bad_request,
    401: C.auth,
    403: C.auth,
    404: C.not_found,
    408: C.timeout,
    409: C.server_error,
    422: C.bad_request,
    429: C.rate_limited,
    500: C.server_error,
    503: C.server_error,
}


async def test_error_statuses_map_to_categories(provider, mock_provider):
    # One mock process for every status (a loop, not parametrize: spawning costs ~0.3 s).
    for status, category in ERROR_STATUSES.items():
        mock_provider.control(force_status=status)

        with pytest.raises(ProviderError) as caught:
            await provider.complete(chat_call())

        error = caught.value
        assert (error.category, error.status_code) == (category, status)
        assert set(error.body["error"]) == {"message", "type", "param", "code"}
        assert error.message == error.body["error"]["message"]
        assert "forced" in error.message
        assert error.request_id.startswith("req_")
        # The mock's 429 says retry-after-ms: 1000 (and Retry-After: 1).
        assert error.retry_after == (1.0 if status == 429 else None), status


async def test_the_upstream_error_body_is_kept(provider):
    for model, category, status in [
        ("reject-me", C.bad_request, 400),
        ("unauthorized", C.auth, 401),
        ("missing-model", C.not_found, 404),
    ]:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(chat_call(model))

        assert (caught.value.category, caught.value.status_code) == (category, status)
        assert caught.value.body["error"]["message"] == caught.value.message
        assert caught.value.body["error"]["code"] is not None


async def test_a_rate_limited_answer_carries_the_servers_hint(provider, mock_provider):
    mock_provider.control(rpm=6)  # one request of burst, then one every 10 s

    await provider.complete(chat_call())
    with pytest.raises(ProviderError) as caught:
        await provider.complete(chat_call())

    error = caught.value
    assert error.category is C.rate_limited
    assert error.body["error"]["code"] == "rate_limit_exceeded"
    assert 5.0 < error.retry_after <= 10.0  # from retry-after-ms, not the rounded Retry-After


async def test_fail_next_then_success(provider, mock_provider):
    mock_provider.control(fail_next=2, error_status=502)
    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            await provider.complete(chat_call())
        assert (caught.value.category, caught.value.status_code) == (C.server_error, 502)
    assert (await provider.complete(chat_call())).status_code == 200
    assert mock_provider.stats()["by_status"] == {"200": 1, "502": 2}


async def test_a_2xx_answer_that_is_not_json_is_a_server_error(upstream, http):
    upstream.body = b"<html>maintenance</html>"
    with pytest.raises(ProviderError) as caught:
        await provider_for(upstream.base_url, http).complete(chat_call())
    assert (caught.value.category, caught.value.status_code) == (C.server_error, 200)
    assert caught.value.body == {"error": {"message": "<html>maintenance</html>"}}


async def test_a_closed_port_is_a_connection_error(http):
    provider = provider_for(f"http://127.0.0.1:{free_port()}/v1", http)

    with pytest.raises(ProviderError) as caught:
        await provider.complete(chat_call())

    assert caught.value.category is C.connection
    assert caught.value.status_code is None
    assert "cannot connect to http://127.0.0.1" in caught.value.message


async def test_a_dropped_connection_is_a_connection_error(http):
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ProviderError) as caught:
            await provider_for(f"http://127.0.0.1:{port}/v1", http).complete(chat_call())
    finally:
        server.close()
        await server.wait_closed()
    assert caught.value.category is C.connection


async def test_a_hung_call_can_be_given_up_and_the_pool_stays_usable(provider, mock_provider):
    mock_provider.control(hang_rate=1.0)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await provider.complete(chat_call())
    assert mock_provider.stats()["hung"] == 1

    mock_provider.control(hang_rate=0.0)
    assert (await provider.complete(chat_call())).status_code == 200


# -- the API key ------------------------------------------------------------------------------


async def test_the_api_key_is_sent_as_a_bearer_token(upstream, http):
    await provider_for(upstream.base_url, http).complete(chat_call())
    await provider_for(upstream.base_url, http, api_key=None).complete(chat_call())

    with_key, without_key = upstream.seen
    assert with_key.headers["Authorization"] == f"Bearer {API_KEY}"
    assert with_key.headers["Content-Type"] == "application/json"
    assert "Authorization" not in without_key.headers


async def test_the_api_key_never_appears_in_errors(upstream, http, mock_provider):
    upstream.status = 401
    upstream.body = (
        b'{"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}'
    )
    errors: list[ProviderError] = []
    for base_url in (
        upstream.base_url,
        mock_provider.base_url,
        f"http://127.0.0.1:{free_port()}/v1",
    ):
        with pytest.raises(ProviderError) as caught:
            await provider_for(base_url, http).complete(chat_call("unauthorized"))
        errors.append(caught.value)

    assert [e.category for e in errors] == [C.auth, C.auth, C.connection]
    for error in errors:
        for text in (repr(error), str(error), str(error.body), str(error.args)):
            assert API_KEY not in text
            assert API_KEY[3:15] not in text


# -- streaming --------------------------------------------------------------------------------


async def collect(stream) -> list[dict[str, Any]]:
    try:
        return [chunk async for chunk in stream.chunks]
    finally:
        await stream.close()


async def test_a_streamed_completion_ends_with_its_usage(provider, mock_provider):
    stream = await provider.stream(chat_call(text="stream me please", raw=False))
    assert stream.request_id.startswith("req_")

    chunks = await collect(stream)

    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "mock answer to stream me please"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    # Usage was asked for upstream even though the client did not.
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    assert mock_provider.stats()["streams_completed"] == 1


async def test_a_refused_stream_raises_before_any_chunk(provider, mock_provider):
    mock_provider.control(force_status=429)
    with pytest.raises(ProviderError) as caught:
        await provider.stream(chat_call(raw=False))
    assert caught.value.category is C.rate_limited
    assert caught.value.retry_after == 1.0


async def test_closing_a_stream_midway_stops_the_upstream(provider, mock_provider):
    mock_provider.control(stream_chunk_ms=50)
    stream = await provider.stream(chat_call(text="a long answer of many words", raw=False))
    first = await stream.chunks.__anext__()
    assert first["choices"][0]["delta"]["role"] == "assistant"

    await stream.close()

    for _ in range(100):
        if mock_provider.stats()["streams_disconnected"]:
            break
        await asyncio.sleep(0.02)
    stats = mock_provider.stats()
    assert (stats["streams_disconnected"], stats["streams_completed"]) == (1, 0)


async def test_an_error_event_midway_is_a_server_error(upstream, http):
    upstream.content_type = "text/event-stream"
    upstream.body = (
        b'data: {"id":"c","object":"chat.completion.chunk","choices":[]}\n\n'
        b'data: {"error":{"message":"overloaded midway","type":"server_error"}}\n\n'
    )
    stream = await provider_for(upstream.base_url, http).stream(chat_call(raw=False))

    with pytest.raises(ProviderError) as caught:
        await collect(stream)

    assert caught.value.category is C.server_error
    assert "overloaded midway" in caught.value.message
    sent = orjson.loads(upstream.seen[0].body)
    assert (sent["stream"], sent["stream_options"]) == (True, {"include_usage": True})


@pytest.mark.parametrize(
    ("base_url", "options", "expected"),
    [
        ("https://api.openai.com/v1", {}, True),
        ("http://127.0.0.1:9/v1", {}, False),
        ("http://127.0.0.1:9/v1", {"responses_api": True}, True),
        ("https://api.openai.com/v1", {"responses_api": False}, False),
    ],
)
async def test_whether_responses_pass_through(http, base_url, options, expected):
    provider = provider_for(base_url, http, options=options)

    assert provider.capabilities.responses is expected


async def test_responses_usage_details_are_read(upstream, http):
    upstream.body = orjson.dumps(
        {
            "id": "resp_1",
            "object": "response",
            "usage": {
                "input_tokens": 100,
                "input_tokens_details": {"cached_tokens": 64},
                "output_tokens": 40,
                "output_tokens_details": {"reasoning_tokens": 30},
                "total_tokens": 140,
            },
        }
    )
    provider = provider_for(upstream.base_url, http, options={"responses_api": True})
    call = ProviderCall(Endpoint.responses, {"model": "m", "input": "x"}, timeout=5)

    response = await provider.complete(call)

    assert upstream.seen[-1].path == "/v1/responses"
    assert response.usage == Usage(
        input_tokens=100, output_tokens=40, cached_tokens=64, reasoning_tokens=30
    )
