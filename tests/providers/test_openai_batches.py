"""The `openai` provider's native batch API against the mock provider's Files and Batches
endpoints (OpenAI's wire format), over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from pydantic import SecretStr

from datamill.errors import ConfigError, ErrorCategory, ProviderError
from datamill.providers.base import (
    Endpoint,
    NativeBatchLookup,
    NativeBatchState,
    NativeRequest,
    NativeResult,
)
from datamill.providers.http import HttpPool
from datamill.providers.openai import OpenAIProvider
from datamill.providers.openai_batches import OpenAIBatches
from datamill.settings import DeploymentConfig
from datamill_testing.mock_provider import MOCK_PROVIDER, start_mock

CHAT = Endpoint.chat_completions


@pytest.fixture
async def http() -> AsyncIterator[HttpPool]:
    pool = HttpPool()
    yield pool
    await pool.aclose()


@pytest.fixture
async def mock() -> AsyncIterator[tuple[web.AppRunner, str]]:
    runner, port = await start_mock()
    yield runner, f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()


def switch(mock: tuple[web.AppRunner, str], **changes: Any) -> None:
    """Flip the in-process mock's switches, as ``POST /control`` does."""
    provider = mock[0].app[MOCK_PROVIDER]
    config = provider.config.model_copy(update=changes)
    provider.configure(config, changed=set(changes))


def stats(mock: tuple[web.AppRunner, str]) -> dict[str, Any]:
    return mock[0].app[MOCK_PROVIDER].counters.snapshot(per_key=True)


def api_for(base_url: str, http: HttpPool, **options: Any) -> OpenAIBatches:
    deployment = DeploymentConfig(
        name="d", base_url=base_url, api_key=SecretStr("sk-test"), options=options
    )
    provider = OpenAIProvider(deployment, http)
    assert provider.capabilities.native_batch
    assert provider.native_batches is not None
    return provider.native_batches


def requests(n: int, *, model: str = "mock-model", start: int = 0) -> list[NativeRequest]:
    return [
        NativeRequest(
            key=f"r{i}",
            endpoint=CHAT,
            body={"model": model, "messages": [{"role": "user", "content": f"q{i}"}]},
        )
        for i in range(start, start + n)
    ]


async def collect(api: OpenAIBatches, batch_id: str) -> dict[str, NativeResult]:
    found: dict[str, NativeResult] = {}
    async for result in api.results(batch_id):
        assert result.key not in found
        found[result.key] = result
    return found


async def test_a_batch_is_submitted_polled_and_collected(mock, http):
    switch(mock, batch_polls=2)
    api = api_for(mock[1], http)

    batch_id = await api.submit(requests(3), endpoint=CHAT, label="njob_1")

    first = await api.poll(batch_id)
    assert first.state is NativeBatchState.running
    assert (first.total, first.finished) == (3, 2)  # ran its first share
    ended = await api.poll(batch_id)
    assert ended.state is NativeBatchState.ended
    assert (ended.total, ended.finished) == (3, 3)
    results = await collect(api, batch_id)
    assert set(results) == {"r0", "r1", "r2"}
    answer = results["r1"].response
    assert answer is not None
    assert results["r1"].error is None
    body = orjson.loads(answer.body)
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "mock answer to q1"
    assert answer.usage.input_tokens > 0
    assert answer.usage.output_tokens > 0
    assert answer.request_id.startswith("req_")
    assert b"\n" not in answer.body
    seen = stats(mock)
    assert (seen["upstream_batches"], seen["files_uploaded"], seen["batch_lines"]) == (1, 1, 3)
    assert seen["total"] == 0  # no chat call: the lines ran inside the batch


async def test_a_batch_is_found_again_by_its_label(mock, http):
    api = api_for(mock[1], http)
    assert isinstance(api, NativeBatchLookup)
    ids = [
        await api.submit(requests(1, start=i), endpoint=CHAT, label=f"njob_{i}") for i in range(3)
    ]

    assert await api.find("njob_1") == ids[1]
    assert await api.find("njob_9") is None


async def test_failed_lines_come_back_as_errors_with_their_category(mock, http):
    switch(mock, batch_fail_lines=1, batch_line_error_status=503)
    api = api_for(mock[1], http)

    batch_id = await api.submit(
        requests(2) + requests(1, model="reject-me", start=2), endpoint=CHAT
    )
    assert (await api.poll(batch_id)).state is NativeBatchState.ended
    results = await collect(api, batch_id)

    assert results["r0"].error is not None
    assert results["r0"].error.category is ErrorCategory.server_error
    assert results["r0"].error.status_code == 503
    assert results["r1"].response is not None
    refused = results["r2"].error
    assert refused is not None
    assert refused.category is ErrorCategory.bad_request
    assert refused.status_code == 400
    assert refused.body["error"]["param"] == "model"
    assert refused.request_id is not None


async def test_an_expired_batch_has_results_only_for_what_ran(mock, http):
    switch(mock, batch_expire_next=1, batch_expire_processed=0.5)
    api = api_for(mock[1], http)

    batch_id = await api.submit(requests(4), endpoint=CHAT)
    status = await api.poll(batch_id)

    assert status.state is NativeBatchState.ended
    results = await collect(api, batch_id)
    # The two it never ran are in OpenAI's error file as batch_expired: no outcome at all.
    assert set(results) == {"r0", "r1"}


async def test_a_batch_that_fails_as_a_whole_says_why(mock, http):
    switch(mock, batch_fail_next=1)
    api = api_for(mock[1], http)

    batch_id = await api.submit(requests(2), endpoint=CHAT)
    status = await api.poll(batch_id)

    assert status.state is NativeBatchState.failed
    assert status.message == "failed on purpose"
    assert await collect(api, batch_id) == {}


async def test_a_cancelled_batch_keeps_what_ran_before(mock, http):
    switch(mock, batch_polls=4)
    api = api_for(mock[1], http)
    batch_id = await api.submit(requests(8), endpoint=CHAT)
    assert (await api.poll(batch_id)).state is NativeBatchState.running  # 2 of 8 ran

    await api.cancel(batch_id)
    status = await api.poll(batch_id)

    assert status.state is NativeBatchState.cancelled
    assert set(await collect(api, batch_id)) == {"r0", "r1"}
    with pytest.raises(ProviderError) as refused:
        await api.cancel(batch_id)  # already over
    assert refused.value.category is ErrorCategory.bad_request


async def test_large_results_are_read_line_by_line(mock, http):
    api = api_for(mock[1], http)
    batch_id = await api.submit(requests(3000), endpoint=CHAT)
    await api.poll(batch_id)

    results = await collect(api, batch_id)

    assert len(results) == 3000
    assert all(result.response is not None for result in results.values())


async def test_an_unknown_batch_is_not_found(mock, http):
    api = api_for(mock[1], http)

    with pytest.raises(ProviderError) as missing:
        await api.poll("batch_nope")

    assert missing.value.category is ErrorCategory.not_found


async def test_the_options_can_turn_native_batches_off_or_limit_them(http):
    url = "http://127.0.0.1:9/v1"
    off = OpenAIProvider(
        DeploymentConfig(name="d", base_url=url, options={"native_batches": False}), http
    )
    assert not off.capabilities.native_batch
    assert off.native_batches is None
    assert OpenAIProvider.capabilities.native_batch  # the class default is untouched
    limited = api_for(url, http, batch_max_requests=10, batch_max_bytes=4096)
    assert (limited.max_requests, limited.max_bytes) == (10, 4096)

    with pytest.raises(ConfigError, match=r"deployments\.d\.options\.speed: unknown option"):
        OpenAIProvider(DeploymentConfig(name="d", base_url=url, options={"speed": 1}), http)
    with pytest.raises(ConfigError, match="batch_max_requests"):
        api_for(url, http, batch_max_requests=60_000)
