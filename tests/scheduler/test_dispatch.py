"""`Dispatcher.call_deployment` and `call_upstream`: the gate passed and settled, the one
timeout policy, and every failure a `ProviderError` (a bug in an adapter `AdapterFailed`)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from datamill.clock import SystemClock
from datamill.errors import AdapterFailed, ErrorCategory, ProviderError
from datamill.providers.types import (
    Capabilities,
    Endpoint,
    ProviderCall,
    ProviderResponse,
    ProviderStream,
    Usage,
)
from datamill.scheduler.dispatch import Dispatcher, answer, bounded_upstream, call_upstream
from datamill.scheduler.gate import DeploymentGate
from datamill.scheduler.router import DeploymentHandle, Route
from datamill.settings import DeploymentConfig

C = ErrorCategory


class ScriptedProvider:
    """Answers, fails, raises or hangs, as ``behaviour`` says."""

    capabilities = Capabilities(chat=True, embeddings=True, streaming=True)

    def __init__(self) -> None:
        self.behaviour = "answer"
        self.started = asyncio.Event()
        self.calls = 0

    async def _act(self) -> None:
        self.calls += 1
        self.started.set()
        if self.behaviour == "hang":
            await asyncio.Event().wait()
        if self.behaviour == "bug":
            raise KeyError("choices")
        if self.behaviour == "fail":
            raise ProviderError(C.server_error, "502 from upstream", status_code=502)

    async def complete(self, call: ProviderCall) -> ProviderResponse:
        await self._act()
        return ProviderResponse(b"{}", Usage(input_tokens=3, output_tokens=4), "req-1")

    async def embed(self, call: ProviderCall) -> ProviderResponse:
        return await self.complete(call)

    async def stream(self, call: ProviderCall) -> ProviderStream:
        await self._act()

        async def chunks() -> Any:
            yield {"choices": []}

        async def close() -> None:
            return None

        return ProviderStream(chunks(), "req-2", close)

    async def aclose(self) -> None:
        return None


def deployment(**config: Any) -> tuple[Route, ScriptedProvider]:
    settings = DeploymentConfig(name="a", base_url="http://127.0.0.1:9/v1", **config)
    provider = ScriptedProvider()
    gate = DeploymentGate(settings, SystemClock(), default_concurrency=4)
    return Route(DeploymentHandle(settings, provider, gate), "m"), provider  # type: ignore[arg-type]


def chat(timeout: float = 30.0) -> ProviderCall:
    return ProviderCall(Endpoint.chat_completions, {"model": "m"}, timeout)


async def test_an_answer_settles_the_gate():
    route, _ = deployment()
    dispatcher = Dispatcher(SystemClock())

    response = await dispatcher.call_deployment(route, chat(), 10, send=answer)

    assert response is not None
    assert response.request_id == "req-1"
    gate = route.handle.gate
    assert gate.sent == 0
    assert gate.stats.snapshot(SystemClock().monotonic())["calls"] == 1
    await dispatcher.aclose()


async def test_a_provider_error_passes_as_it_is_and_counts_for_the_breaker():
    route, provider = deployment()
    provider.behaviour = "fail"
    dispatcher = Dispatcher(SystemClock())

    with pytest.raises(ProviderError) as raised:
        await dispatcher.call_deployment(route, chat(), 10, send=answer)

    assert raised.value.status_code == 502
    assert route.handle.gate.sent == 0
    assert route.handle.gate.breaker.failures == 1


async def test_an_adapter_bug_is_an_adapter_failed_server_error(caplog):
    route, provider = deployment()
    provider.behaviour = "bug"
    dispatcher = Dispatcher(SystemClock())

    with pytest.raises(AdapterFailed) as raised:
        await dispatcher.call_deployment(route, chat(), 10, send=answer)

    assert raised.value.category is C.server_error
    assert raised.value.message == "a adapter failed: KeyError('choices')"
    assert "a adapter raised unexpectedly" in caplog.text
    assert route.handle.gate.sent == 0
    assert route.handle.gate.breaker.failures == 1


async def test_no_answer_in_the_calls_timeout_is_a_timeout():
    route, provider = deployment()
    provider.behaviour = "hang"
    dispatcher = Dispatcher(SystemClock())

    with pytest.raises(ProviderError) as raised:
        await dispatcher.call_deployment(route, chat(timeout=0.05), 10, send=answer)

    assert raised.value.category is C.timeout
    assert raised.value.message == "no answer from a in 0.05 s"
    assert route.handle.gate.sent == 0
    await dispatcher.aclose()


async def test_an_interactive_calls_wait_at_the_gate_counts_against_its_deadline():
    route, provider = deployment(max_concurrency=1)
    provider.behaviour = "hang"
    dispatcher = Dispatcher(SystemClock())
    holder = asyncio.create_task(dispatcher.call_deployment(route, chat(), 10, send=answer))
    await provider.started.wait()

    deadline = SystemClock().monotonic() + 0.05
    with pytest.raises(ProviderError) as raised:
        await dispatcher.call_deployment(
            route, chat(), 10, send=answer, interactive=True, deadline=deadline
        )

    assert raised.value.category is C.timeout
    # At the gate: nothing was sent.
    assert raised.value.message == "waited 0.05 s for this deployment's rate limit or concurrency"
    assert provider.calls == 1
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder
    assert route.handle.gate.sent == 0
    await dispatcher.aclose()


async def test_a_cancel_from_outside_goes_on_and_gives_everything_back():
    route, provider = deployment()
    provider.behaviour = "hang"
    dispatcher = Dispatcher(SystemClock())
    task = asyncio.create_task(dispatcher.call_deployment(route, chat(), 10, send=answer))
    await provider.started.wait()

    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    gate = route.handle.gate
    assert gate.sent == 0
    assert gate.breaker.failures == 0
    await dispatcher.aclose()


async def test_a_stream_opens_with_its_permit_held():
    route, _ = deployment()
    dispatcher = Dispatcher(SystemClock())

    stream, permit = await dispatcher.open_stream(route, chat(), 10)

    gate = route.handle.gate
    assert stream.request_id == "req-2"
    assert gate.sent == 1  # out until the relay ends it
    gate.release(permit, error=None, usage=Usage())
    assert gate.sent == 0


async def test_a_refused_stream_gives_its_permit_back():
    route, provider = deployment()
    provider.behaviour = "fail"
    dispatcher = Dispatcher(SystemClock())

    with pytest.raises(ProviderError):
        await dispatcher.open_stream(route, chat(), 10)

    assert route.handle.gate.sent == 0


async def test_an_upstream_call_has_the_same_policy():
    async def hang() -> None:
        await asyncio.Event().wait()

    async def bug() -> None:
        raise ValueError("bad page")

    async def refused() -> None:
        raise ProviderError(C.auth, "no key")

    with pytest.raises(ProviderError) as timed_out:
        await call_upstream(hang(), timeout=0.05, what="the batch poll")
    with pytest.raises(AdapterFailed) as failed:
        await call_upstream(bug(), timeout=1, what="the batch poll")
    with pytest.raises(ProviderError) as passed:
        await call_upstream(refused(), timeout=1, what="the batch poll")

    assert timed_out.value.category is C.timeout
    assert timed_out.value.message == "no answer to the batch poll in 0.05 s"
    assert failed.value.message == "the batch poll failed: ValueError('bad page')"
    assert passed.value.category is C.auth


async def test_a_stalled_download_times_out_item_by_item():
    async def items() -> Any:
        yield 1
        await asyncio.Event().wait()
        yield 2

    got: list[int] = []

    async def download() -> None:
        async for item in bounded_upstream(items(), timeout=0.05, what="the results"):
            got.append(item)

    with pytest.raises(ProviderError) as raised:
        await download()

    assert got == [1]
    assert raised.value.category is C.timeout
