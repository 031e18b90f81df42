"""Message Batches through `native_batches`, against the mock's batch API: submit, polls,
results (streamed line by line), partial failures, expiry and cancellation."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.anthropic import AnthropicProvider
from datamill.providers.base import (
    Endpoint,
    NativeBatchState,
    NativeBatchStatus,
    NativeRequest,
    NativeResult,
)
from tests.providers.anthropic.conftest import seen_requests

C = ErrorCategory
CHAT = Endpoint.chat_completions


def request(key: str, text: str | None = None, **fields: Any) -> NativeRequest:
    body = {"model": "claude-test", "messages": [{"role": "user", "content": text or key}]}
    return NativeRequest(key=key, endpoint=CHAT, body={**body, **fields})


async def results_of(provider: AnthropicProvider, batch_id: str) -> dict[str, NativeResult]:
    results = {}
    async for result in provider.native_batches.results(batch_id):
        assert result.key not in results
        results[result.key] = result
    return results


def content(result: NativeResult) -> str:
    assert result.response is not None
    assert result.error is None
    answer = orjson.loads(result.response.body)
    assert answer["object"] == "chat.completion"
    text: str = answer["choices"][0]["message"]["content"]
    return text


async def test_submit_poll_until_ended_then_read_the_results(provider, anthropic):
    anthropic.control(batch_polls=2)
    batches = provider.native_batches
    assert (batches.max_requests, batches.max_bytes) == (100_000, 256 * 1024 * 1024)

    batch_id = await batches.submit(
        [request("k1", "first"), request("k2", "second", temperature=0.5)], endpoint=CHAT
    )

    created = seen_requests(anthropic)[-1]
    assert (created["method"], created["path"]) == ("POST", "/v1/messages/batches")
    assert created["body"]["requests"][1] == {
        "custom_id": "k2",
        "params": {
            "model": "claude-test",
            "max_tokens": 4096,
            "messages": [{"role": "user", "content": "second"}],
            "temperature": 0.5,
        },
    }
    running = NativeBatchStatus(NativeBatchState.running, total=2, finished=0)
    assert await batches.poll(batch_id) == running
    assert await batches.poll(batch_id) == running
    assert await batches.poll(batch_id) == NativeBatchStatus(
        NativeBatchState.ended, total=2, finished=2
    )

    results = await results_of(provider, batch_id)
    assert {key: content(result) for key, result in results.items()} == {
        "k1": "mock answer to first",
        "k2": "mock answer to second",
    }
    first = results["k1"].response
    assert first is not None
    assert first.usage.input_tokens > 0
    assert first.request_id.startswith("msg_")


async def test_a_batch_that_partly_fails(provider, anthropic):
    anthropic.control(batch_errored=["k2"])
    # Translatable, but Anthropic refuses it: a named tool that is not among the tools.
    unknown_tool = {"type": "function", "function": {"name": "nowhere"}}
    other = {"type": "function", "function": {"name": "elsewhere"}}
    batch_id = await provider.native_batches.submit(
        [
            request("k1"),
            request("k2"),
            request("k3", tools=[other], tool_choice=unknown_tool),
        ],
        endpoint=CHAT,
    )
    status = await provider.native_batches.poll(batch_id)
    assert (status.state, status.total, status.finished) == (NativeBatchState.ended, 3, 3)

    results = await results_of(provider, batch_id)

    assert content(results["k1"]) == "mock answer to k1"
    overloaded, refused = results["k2"].error, results["k3"].error
    assert overloaded is not None
    assert refused is not None
    assert (overloaded.category, overloaded.status_code) == (C.server_error, 500)
    assert overloaded.category.retryable
    assert overloaded.request_id.startswith("req_")
    assert (refused.category, refused.status_code) == (C.bad_request, 400)
    assert "nowhere" in refused.message
    assert refused.body["error"]["type"] == "invalid_request_error"  # the upstream's body


async def test_expired_requests_get_no_result(provider, anthropic):
    anthropic.control(batch_expired=["k2", "k3"], batch_polls=1)
    keys = ["k1", "k2", "k3", "k4"]
    batch_id = await provider.native_batches.submit([request(k) for k in keys], endpoint=CHAT)

    assert (await provider.native_batches.poll(batch_id)).state is NativeBatchState.running
    status = await provider.native_batches.poll(batch_id)
    assert (status.state, status.total, status.finished) == (NativeBatchState.ended, 4, 2)

    results = await results_of(provider, batch_id)
    assert sorted(results) == ["k1", "k4"]


async def test_cancel_keeps_what_finished_before(provider, anthropic):
    anthropic.control(batch_polls=3)  # four requests, one processed per poll
    batches = provider.native_batches
    batch_id = await batches.submit([request(f"k{n}") for n in range(4)], endpoint=CHAT)
    assert (await batches.poll(batch_id)).state is NativeBatchState.running

    await batches.cancel(batch_id)
    await batches.cancel(batch_id)  # again, as after a crash: no harm

    status = await batches.poll(batch_id)
    assert (status.state, status.total, status.finished) == (NativeBatchState.cancelled, 4, 1)
    results = await results_of(provider, batch_id)
    assert list(results) == ["k0"]
    assert content(results["k0"]) == "mock answer to k0"
    cancels = [r for r in seen_requests(anthropic) if r["path"].endswith("/cancel")]
    assert [r["method"] for r in cancels] == ["POST", "POST"]


async def test_many_results_are_read_line_by_line(provider):
    keys = [f"req-{n:04d}" for n in range(400)]
    batch_id = await provider.native_batches.submit(
        [request(key, "x" * 200 + key) for key in keys], endpoint=CHAT
    )
    await provider.native_batches.poll(batch_id)

    results = await results_of(provider, batch_id)

    assert sorted(results) == keys
    assert all(content(results[key]).endswith(key) for key in keys)


async def test_each_request_is_translated_on_its_own(provider, anthropic):
    batches = provider.native_batches
    assert batches.translate(request("ok"))["max_tokens"] == 4096
    with pytest.raises(ProviderError) as caught:
        batches.translate(request("bad", n=2))
    assert (caught.value.category, caught.value.param) == (C.bad_request, "n")
    embedding = NativeRequest(key="e", endpoint=Endpoint.embeddings, body={"input": "x"})
    with pytest.raises(ProviderError):
        batches.translate(embedding)

    # submit refuses a batch holding one anyway, naming it, before anything is sent.
    with pytest.raises(ProviderError) as caught:
        await batches.submit([request("ok"), request("bad", n=2)], endpoint=CHAT)
    assert caught.value.param == "n"
    assert "request bad:" in caught.value.message
    assert seen_requests(anthropic) == []


async def test_results_of_a_running_batch_are_refused(provider, anthropic):
    anthropic.control(batch_polls=5)
    batch_id = await provider.native_batches.submit([request("k1")], endpoint=CHAT)
    with pytest.raises(ProviderError, match="no results yet"):
        await results_of(provider, batch_id)


async def test_upstream_errors_and_bad_ids(provider, anthropic):
    with pytest.raises(ProviderError) as caught:
        await provider.native_batches.poll("msgbatch_unknown")
    assert caught.value.category is C.not_found

    with pytest.raises(ProviderError) as caught:
        await provider.native_batches.poll("../../v1/messages")
    assert caught.value.category is C.not_found
    assert all(".." not in seen["path"] for seen in seen_requests(anthropic))

    anthropic.control(force_status=529)
    with pytest.raises(ProviderError) as caught:
        await provider.native_batches.submit([request("k1")], endpoint=CHAT)
    assert (caught.value.category, caught.value.status_code) == (C.server_error, 529)


def test_the_key_only_goes_to_the_apis_origin(provider):
    batches = provider.native_batches
    own = batches._results_target("msgbatch_1", f"{batches._root}/msgbatch_1/results?page=2")
    foreign = batches._results_target("msgbatch_1", "https://files.example.com/msgbatch_1")
    assert own.head.startswith(b"GET /v1/messages/batches/msgbatch_1/results?page=2 ")
    assert foreign.origin == own.origin
    assert foreign.head.startswith(b"GET /v1/messages/batches/msgbatch_1/results ")
