"""What OpenAI's clients read from gateway answers besides the body: an upstream's error
with its own ``param`` and ``code`` (and datamill's category beside them), and the
``x-ratelimit-*`` headers of the deployment's budget. The official `openai` SDK against the
app served on 127.0.0.1, in front of the mock provider."""

from __future__ import annotations

import re

import httpx
import openai
import pytest

from datamill.providers.http import parse_duration
from tests.api.test_models import sdk
from tests.conftest import mock_deployment

HELLO = [{"role": "user", "content": "hello"}]
RESET = re.compile(r"^(\d+h)?(\d+m)?(\d+(\.\d+)?s|\d+ms)$")


async def test_a_provider_400_keeps_its_param_and_code(make_api, serve, mock):
    api = await make_api([mock_deployment(mock)])
    served = await serve(api)

    async with sdk(served.url) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="reject-me", messages=HELLO)

    error = caught.value
    assert (error.code, error.param, error.type) == (
        "invalid_value",
        "model",
        "invalid_request_error",
    )
    assert isinstance(error.body, dict)
    assert error.body["datamill_category"] == "bad_request"
    assert "reject-me" in error.body["message"]


async def post(api, model: str = "mock-model") -> httpx.Response:
    return await api.client.post("/v1/chat/completions", json={"model": model, "messages": HELLO})


def limits(answer: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in answer.headers.items() if k.startswith("x-ratelimit-")}


async def test_answers_carry_the_configured_budget(make_api, mock):
    api = await make_api([mock_deployment(mock, rpm=600, tpm=60_000)])

    answer = await post(api)

    assert answer.status_code == 200, answer.text
    headers = limits(answer)
    assert set(headers) == {
        f"x-ratelimit-{what}-{kind}"
        for what in ("limit", "remaining", "reset")
        for kind in ("requests", "tokens")
    }
    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-limit-tokens"]) == (
        "600",
        "60000",
    )
    assert 0 <= int(headers["x-ratelimit-remaining-requests"]) < 600  # one call was just spent
    assert 0 <= int(headers["x-ratelimit-remaining-tokens"]) <= 60_000
    for kind in ("requests", "tokens"):
        reset = headers[f"x-ratelimit-reset-{kind}"]
        assert RESET.match(reset), reset
        assert 0 <= (parse_duration(reset) or 0) <= 60


async def test_a_stream_carries_them_too(make_api, mock):
    api = await make_api([mock_deployment(mock, rpm=600)])

    answer = await api.client.post(
        "/v1/chat/completions", json={"model": "mock-model", "messages": HELLO, "stream": True}
    )

    assert answer.status_code == 200
    assert answer.content.endswith(b"data: [DONE]\n\n")
    assert limits(answer)["x-ratelimit-limit-requests"] == "600"


async def test_a_budget_announced_upstream_is_passed_on(make_api, mock):
    mock.control(rpm=1200, tpm=500_000)  # the mock announces them in its own headers
    api = await make_api([mock_deployment(mock)])

    first = await post(api)
    second = await post(api)

    assert first.status_code == second.status_code == 200
    assert limits(second)["x-ratelimit-limit-requests"] == "1200"
    assert limits(second)["x-ratelimit-limit-tokens"] == "500000"


async def test_no_headers_for_a_budget_nobody_knows(make_api, mock):
    api = await make_api([mock_deployment(mock)])

    answer = await post(api)

    assert answer.status_code == 200
    assert limits(answer) == {}


async def test_a_429_says_no_request_remains_until_the_pause_ends(make_api, mock):
    api = await make_api([mock_deployment(mock, rpm=600)])
    mock.control(force_status=429)

    answer = await post(api)

    assert answer.status_code == 429
    assert answer.json()["error"]["datamill_category"] == "rate_limited"
    headers = limits(answer)
    # The 429 taught datamill a lower rate (scheduler/rate.py): that is the limit it says now.
    assert 0 < int(headers["x-ratelimit-limit-requests"]) < 600
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert 0 < (parse_duration(headers["x-ratelimit-reset-requests"]) or 0) <= 1


def sdk_limits(headers: httpx.Headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("x-ratelimit-")}


@pytest.mark.parametrize("store", [True, False])
async def test_responses_carry_the_same_headers_as_chat_completions(make_api, serve, mock, store):
    api = await make_api([mock_deployment(mock, rpm=600, tpm=60_000)])
    served = await serve(api)

    async with sdk(served.url) as client:
        chat = await client.chat.completions.with_raw_response.create(
            model="mock-model", messages=HELLO
        )
        raw = await client.responses.with_raw_response.create(
            model="mock-model", input="hello", store=store
        )
        response = raw.parse()

    assert response.object == "response"
    assert response.output_text
    assert set(sdk_limits(raw.headers)) == set(sdk_limits(chat.headers))
    assert len(sdk_limits(raw.headers)) == 6
    assert raw.headers["x-ratelimit-limit-requests"] == "600"
    assert raw.headers["x-ratelimit-limit-tokens"] == "60000"
    # At most the limit: 10 a second come back, so on a slow machine the two calls' use may
    # already be refilled (what the headers say is tested in tests/gateway).
    assert 0 <= int(raw.headers["x-ratelimit-remaining-requests"]) <= 600
    assert RESET.match(raw.headers["x-ratelimit-reset-tokens"])
    assert raw.headers["x-datamill-deployment"] == chat.headers["x-datamill-deployment"]
    assert raw.headers["x-request-id"]


@pytest.mark.parametrize("store", [True, False])
async def test_a_streamed_response_carries_them_too(make_api, serve, mock, store):
    api = await make_api([mock_deployment(mock, rpm=600)])
    served = await serve(api)

    async with sdk(served.url) as client:
        raw = await client.responses.with_raw_response.create(
            model="mock-model", input="hello", stream=True, store=store
        )
        events = [event.type async for event in raw.parse()]

    assert events[-1] == "response.completed"
    assert raw.headers["x-ratelimit-limit-requests"] == "600"
    assert raw.headers["x-datamill-deployment"]


async def test_an_adapter_that_raises_unexpectedly_is_an_internal_error(make_api, mock):
    """A bug in an adapter (`AdapterFailed` from the dispatch) is answered as any bug is:
    a 500 that shows nothing of it, not an upstream's error; the deployment's gate is left
    with nothing out."""
    api = await make_api([mock_deployment(mock)])
    handle = api.runtime.router.get("mock")
    assert handle is not None

    async def broken(call: object) -> object:
        raise KeyError("internal detail: sk-never-shown")

    handle.provider.complete = broken  # type: ignore[method-assign]
    # Starlette re-raises after answering; a real server logs it and the client sees the 500.
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        answer = await client.post(
            "/v1/chat/completions", json={"model": "mock-model", "messages": HELLO}
        )

    assert answer.status_code == 500, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == ("server_error", "internal_error")
    assert "sk-never-shown" not in answer.text
    assert handle.gate.sent == 0
