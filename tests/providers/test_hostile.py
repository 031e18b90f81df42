"""Hostile upstreams (datamill_testing.hostile): memory stays bounded, nothing wedges, and the
other batches keep running."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from datamill.clock import SystemClock
from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.base import Endpoint, ProviderCall, ProviderContext
from datamill.providers.gemini import GeminiProvider
from datamill.providers.http import HttpPool
from datamill.providers.network import network_for
from datamill.providers.openai import OpenAIProvider
from datamill.settings import DeploymentConfig
from datamill_testing.hostile import HostileUpstream
from datamill_testing.mock_provider import start_mock
from tests.helpers import chat_line, jsonl, running_worker, submit

C = ErrorCategory
MiB = 1024 * 1024


@pytest.fixture
async def upstream() -> AsyncIterator[HostileUpstream]:
    async with HostileUpstream() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[HttpPool]:
    pool = HttpPool()
    yield pool
    await pool.aclose()


def provider_for(base_url: str, http: HttpPool, **fields: Any) -> OpenAIProvider:
    deployment = DeploymentConfig(name="hostile", base_url=base_url, **fields)
    return OpenAIProvider(deployment, http.using(network_for(deployment, environ={})))


def chat_call(model: str = "hostile") -> ProviderCall:
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
    return ProviderCall(Endpoint.chat_completions, body, timeout=30, raw=orjson.dumps(body))


async def peak_memory(call: Callable[[], Awaitable[Any]]) -> tuple[BaseException | None, int]:
    """What ``call`` raised, and the peak of Python's heap above where it started."""
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        raised: BaseException | None = None
        try:
            await call()
        except Exception as exc:
            raised = exc
        return raised, tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


async def read_stream(provider: OpenAIProvider) -> None:
    stream = await provider.stream(chat_call())
    try:
        async for _ in stream.chunks:
            pass
    finally:
        await stream.close()


# -- bodies -----------------------------------------------------------------------------------


async def test_a_gzip_bomb_stops_at_the_cap_while_inflating(upstream, http):
    provider = provider_for(upstream.url("gzip-bomb"), http, max_answer_bytes=4 * MiB)

    error, peak = await peak_memory(lambda: provider.complete(chat_call()))

    assert isinstance(error, ProviderError)
    assert error.category is C.server_error
    assert "exceeds 4194304 bytes" in error.message
    assert "max_answer_bytes" in error.message
    assert peak < 24 * MiB  # the bomb inflates to 1 GiB
    # The pool is not wedged: the next call on it is answered.
    sane = provider_for(upstream.url("huge-usage"), http)
    assert (await sane.complete(chat_call())).status_code == 200


async def test_an_endless_body_stops_at_the_cap(upstream, http):
    provider = provider_for(upstream.url("endless-body"), http, max_answer_bytes=2 * MiB)

    error, peak = await peak_memory(lambda: provider.complete(chat_call()))

    assert isinstance(error, ProviderError)
    assert "exceeds 2097152 bytes" in error.message
    assert peak < 16 * MiB
    # Hung up on: the server got to write the cap and what the sockets buffer, no more.
    assert upstream.sent < 32 * MiB


async def test_a_streamed_answer_read_whole_is_capped_too(upstream, http):
    # An error status is read whole to report it: the same read stops at the cap.
    provider = provider_for(upstream.url("endless-body"), http, max_answer_bytes=MiB)
    stream_target = provider._stream_targets[Endpoint.chat_completions]
    stream = await http.open_stream(stream_target, data=b"{}")
    with pytest.raises(ProviderError) as caught:
        await stream.read()

    assert "exceeds 1048576 bytes" in caught.value.message


# -- streams ----------------------------------------------------------------------------------


async def test_an_endless_stream_line_is_cut_at_the_cap(upstream, http):
    provider = provider_for(upstream.url("endless-line"), http, max_answer_bytes=2 * MiB)

    error, peak = await peak_memory(lambda: read_stream(provider))

    assert isinstance(error, ProviderError)
    assert error.category is C.server_error
    assert "streamed a line over 2097152 characters" in error.message
    assert peak < 24 * MiB


async def test_a_stream_silent_after_its_head_times_out(upstream, http):
    provider = provider_for(upstream.url("silent-stream"), http, stream_idle_timeout=0.2)

    stream = await provider.stream(chat_call())  # the head arrives at once
    with pytest.raises(ProviderError) as caught:
        async for _ in stream.chunks:
            pass
    await stream.close()

    assert caught.value.category is C.timeout
    assert "no byte for 0.2 s" in caught.value.message
    assert "stream_idle_timeout" in caught.value.message


# -- usage ------------------------------------------------------------------------------------


async def test_absurd_and_negative_usage_is_clamped_and_recorded(make_runtime, upstream):
    priced = {"input_price": 1.0, "output_price": 1.0}
    runtime = await make_runtime(
        [
            {"name": "huge", "base_url": upstream.url("huge-usage"), "models": ["huge*"], **priced},
            {
                "name": "negative",
                "base_url": upstream.url("negative-usage"),
                "models": ["negative*"],
                **priced,
            },
        ]
    )
    batch = await submit(
        runtime, jsonl([chat_line("big", model="huge-1"), chat_line("neg", model="negative-1")])
    )
    async with running_worker(runtime):
        batch = await runtime.batches.wait(batch.id, timeout=60, poll=0.05)

    assert (batch.status, batch.completed_count, batch.failed_count) == ("completed", 2, 0)
    assert batch.input_tokens == 2**31 - 1  # 2^64-1 clamped; -5 read as 0
    assert (batch.output_tokens, batch.cached_tokens) == (0, 0)
    assert 0 <= batch.cost <= (2**31 - 1) / 1e6 + 1e-9


# -- isolation --------------------------------------------------------------------------------


async def test_a_hostile_deployment_never_holds_up_other_batches(make_runtime, upstream):
    runner, port = await start_mock()
    try:
        runtime = await make_runtime(
            [
                {
                    "name": "bad",
                    "base_url": upstream.url("endless-body"),
                    "models": ["bad*"],
                    "max_answer_bytes": MiB,
                },
                {"name": "good", "base_url": f"http://127.0.0.1:{port}/v1", "models": ["mock*"]},
            ]
        )
        # Two requests tried twice: four failures, one short of opening the circuit (whose
        # cooldowns would only make the test slow).
        bad = await submit(runtime, jsonl(chat_line(f"b{i}", model="bad-1") for i in range(2)))
        good = await submit(runtime, jsonl(chat_line(f"g{i}") for i in range(50)))
        async with running_worker(runtime, max_retries=1):
            good, bad = await asyncio.gather(
                runtime.batches.wait(good.id, timeout=60, poll=0.05),
                runtime.batches.wait(bad.id, timeout=60, poll=0.05),
            )
    finally:
        await runner.cleanup()

    assert (good.status, good.completed_count, good.failed_count) == ("completed", 50, 0)
    assert (bad.status, bad.completed_count, bad.failed_count) == ("completed", 0, 2)


# -- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("../../files/x", "models/..%2F..%2Ffiles%2Fx:generateContent"),
        (
            "gemini-2.5-flash:batchGenerateContent?alt=",
            "models/gemini-2.5-flash%3AbatchGenerateContent%3Falt%3D:generateContent",
        ),
        ("models/../cachedContents", "models/..%2FcachedContents:generateContent"),
        ("tunedModels/mine#frag", "tunedModels/mine%23frag:generateContent"),
    ],
)
async def test_crafted_gemini_model_names_never_reach_another_route(upstream, http, model, path):
    deployment = DeploymentConfig(
        name="g",
        provider="gemini",
        base_url=f"http://127.0.0.1:{upstream.port}/gemini",
        api_key=SecretStr("AIza-test"),
    )
    provider = GeminiProvider(deployment, ProviderContext(http=http, clock=SystemClock()))

    with pytest.raises(ProviderError) as caught:
        await provider.complete(chat_call(model))

    assert caught.value.category is C.not_found  # the hostile server's 404 for any route
    assert upstream.seen == [f"POST /gemini/v1beta/{path} HTTP/1.1"]


async def test_a_gemini_model_named_dot_dot_is_refused_before_sending(upstream, http):
    deployment = DeploymentConfig(
        name="g", provider="gemini", base_url=f"http://127.0.0.1:{upstream.port}/gemini"
    )
    provider = GeminiProvider(deployment, ProviderContext(http=http, clock=SystemClock()))

    with pytest.raises(ProviderError) as caught:
        await provider.complete(chat_call(".."))

    assert caught.value.category is C.bad_request
    assert upstream.seen == []
