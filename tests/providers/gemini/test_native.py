"""Gemini batch mode as a native batch API, against the mock's batch endpoints."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.base import Endpoint, NativeBatchState, NativeRequest, NativeResult

from .conftest import seen

C = ErrorCategory
S = NativeBatchState


def request(key: str, text: str, model: str = "gemini-test", **fields: Any) -> NativeRequest:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **fields}
    return NativeRequest(key=key, endpoint=Endpoint.chat_completions, body=body)


async def results_of(batches, batch_id: str) -> dict[str, NativeResult]:
    return {result.key: result async for result in batches.results(batch_id)}


async def test_submit_poll_until_ended_then_results(provider, gemini_mock):
    gemini_mock.control(batch_polls=2)
    batches = provider.native_batches
    requests = [request(f"req_{i}", f"question {i}", max_tokens=20) for i in range(3)]

    batch_id = await batches.submit(requests, endpoint=Endpoint.chat_completions)

    assert batch_id.startswith("batches/")
    sent = seen(gemini_mock)[-1]
    assert sent["path"] == "/v1beta/models/gemini-test:batchGenerateContent"
    inlined = sent["body"]["batch"]["inputConfig"]["requests"]["requests"]
    assert sent["body"]["batch"]["displayName"] == "datamill"
    assert inlined[1] == {
        "request": {
            "contents": [{"role": "user", "parts": [{"text": "question 1"}]}],
            "generationConfig": {"maxOutputTokens": 20},
        },
        "metadata": {"key": "req_1"},
    }
    polls = [await batches.poll(batch_id) for _ in range(3)]
    assert [p.state for p in polls] == [S.running, S.running, S.ended]
    assert (polls[-1].total, polls[-1].finished) == (3, 3)

    results = await results_of(batches, batch_id)
    assert set(results) == {"req_0", "req_1", "req_2"}
    answer = orjson.loads(results["req_2"].response.body)
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == "mock answer to question 2"
    assert results["req_2"].error is None
    assert results["req_2"].response.usage.output_tokens == answer["usage"]["completion_tokens"]


async def test_a_batch_that_partly_fails(provider, gemini_mock):
    gemini_mock.control(batch_polls=0, batch_fail_every=2)
    batches = provider.native_batches
    requests = [request(f"k{i}", f"q {i}") for i in range(4)]
    requests.append(request("blocked", "[blocked] no"))
    batch_id = await batches.submit(requests, endpoint=Endpoint.chat_completions)

    status = await batches.poll(batch_id)
    results = await results_of(batches, batch_id)

    assert (status.state, status.total, status.finished) == (S.ended, 5, 5)
    assert {key for key, r in results.items() if r.response is not None} == {
        "k0",
        "k2",
        "blocked",
    } - {"blocked"}
    assert results["k1"].error.category is C.server_error
    assert results["k3"].error.message == "Internal error encountered."
    assert results["blocked"].error.category is C.content_filter


async def test_an_expired_batch_leaves_unrun_requests_without_results(provider, gemini_mock):
    gemini_mock.control(batch_polls=1, batch_state="expired", batch_expire_after=2)
    batches = provider.native_batches
    batch_id = await batches.submit(
        [request(f"k{i}", f"q {i}") for i in range(5)], endpoint=Endpoint.chat_completions
    )

    assert (await batches.poll(batch_id)).state is S.running
    status = await batches.poll(batch_id)
    results = await results_of(batches, batch_id)

    assert (status.state, status.total, status.finished) == (S.ended, 5, 2)
    assert set(results) == {"k0", "k1"}


async def test_cancel(provider, gemini_mock):
    gemini_mock.control(batch_polls=5)
    batches = provider.native_batches
    batch_id = await batches.submit([request("k", "q")], endpoint=Endpoint.chat_completions)
    assert (await batches.poll(batch_id)).state is S.running

    await batches.cancel(batch_id)

    assert (await batches.poll(batch_id)).state is S.cancelled
    assert await results_of(batches, batch_id) == {}
    assert seen(gemini_mock)[-3]["path"] == f"/v1beta/{batch_id}:cancel"


async def test_a_batch_gemini_fails_as_a_whole(provider, gemini_mock):
    gemini_mock.control(batch_polls=0, batch_state="failed")
    batches = provider.native_batches
    batch_id = await batches.submit([request("k", "q")], endpoint=Endpoint.chat_completions)
    status = await batches.poll(batch_id)
    assert status.state is S.failed
    assert "could not be processed" in status.message


async def test_requests_gemini_cannot_express_are_caught_one_by_one(provider, gemini_mock):
    batches = provider.native_batches
    good = request("good", "fine")
    bad = request("bad", "hi", logit_bias={"1": 3})

    assert batches.translate(good)["metadata"] == {"key": "good"}
    with pytest.raises(ProviderError) as caught:
        batches.translate(bad)
    assert (caught.value.category, caught.value.param) == (C.bad_request, "logit_bias")
    with pytest.raises(ProviderError) as caught:
        await batches.submit([good, bad], endpoint=Endpoint.chat_completions)
    assert "request bad" in caught.value.message
    assert gemini_mock.stats()["total"] == 0


async def test_what_a_gemini_batch_cannot_hold(provider, gemini_mock):
    batches = provider.native_batches
    with pytest.raises(ProviderError) as caught:
        await batches.submit(
            [request("a", "x"), request("b", "y", model="other")],
            endpoint=Endpoint.chat_completions,
        )
    assert caught.value.param == "model"
    embedding = NativeRequest("e", Endpoint.embeddings, {"model": "m", "input": "x"})
    with pytest.raises(ProviderError) as caught:
        await batches.submit([embedding], endpoint=Endpoint.embeddings)
    assert caught.value.param == "endpoint"
    with pytest.raises(ProviderError) as caught:
        await batches.poll("batches/../../models/x")
    assert caught.value.category is C.not_found
    with pytest.raises(ProviderError) as caught:
        await batches.poll("batches/unknown1")
    assert (caught.value.category, caught.value.status_code) == (C.not_found, 404)
    assert batches.max_bytes < 20_000_000
    assert batches.max_requests > 0
