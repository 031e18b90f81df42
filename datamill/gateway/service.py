"""The chat gateway: interactive calls through the same deployments, gates and fallbacks as
batch work.

`GatewayService` routes a checked request (gateway/requests.py) to its plan, passes each
deployment's gate as an interactive call (ahead of waiting batch calls), and walks the plan
on retryable failures: a 429, a 5xx, a timeout, a dead connection or an open circuit moves
the call to the next deployment, as long as nothing was sent to the client yet. Once a stream
has started, a failure ends it with an error event. Every call, answered or not, is reported
to ``on_call`` (usage, cost and latency accounting).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from datamill.clock import Clock
from datamill.errors import ErrorCategory, NotFound, ProviderError, UpstreamFailed
from datamill.gateway.requests import GatewayRequest
from datamill.nlp.tokens import estimate_request_tokens
from datamill.providers.base import (
    ChatChunk,
    Endpoint,
    ProviderCall,
    ProviderResponse,
    ProviderStream,
    Usage,
)
from datamill.providers.sse import DONE, encode_data
from datamill.scheduler.gate import Permit
from datamill.scheduler.router import Attempts, Route, Router

log = logging.getLogger("datamill.gateway")


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One gateway call as it ended, for accounting."""

    model: str  # what the client asked for
    deployment: str | None  # who answered (or failed last); None if none was tried
    endpoint: Endpoint
    stream: bool
    ok: bool
    error_code: str | None
    usage: Usage
    latency: float  # seconds from the request to its last byte
    first_token: float | None  # seconds to the first streamed chunk
    started_at: float  # wall clock


CallSink = Callable[[CallRecord], None]


@dataclass(frozen=True, slots=True)
class GatewayAnswer:
    body: bytes  # OpenAI-format JSON, as the provider's adapter made it
    deployment: str
    request_id: str


@dataclass(frozen=True, slots=True)
class GatewayStream:
    """An open stream: ``events`` yields server-sent events (``data: ...``) up to and with
    ``data: [DONE]``; ``close()`` must be called however the client stops reading."""

    events: AsyncIterator[bytes]
    deployment: str
    request_id: str

    async def close(self) -> None:
        await self.events.aclose()  # type: ignore[attr-defined]


class GatewayService:
    def __init__(
        self,
        router: Router,
        clock: Clock,
        *,
        on_call: CallSink | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._router = router
        self._clock = clock
        self._on_call = on_call or (lambda record: None)
        self._rng = rng or random.Random()

    async def complete(self, request: GatewayRequest) -> GatewayAnswer:
        """A chat completion (not streamed) or embeddings, from the first deployment of the
        plan that answers."""
        started = time.monotonic()
        response, route, _ = await self._first_answer(request, started)
        assert isinstance(response, ProviderResponse)
        self._report(request, route, started, ok=True, usage=response.usage)
        return GatewayAnswer(response.body, route.handle.name, response.request_id)

    async def open_stream(self, request: GatewayRequest) -> GatewayStream:
        """A streamed chat completion, once a deployment accepted it."""
        started = time.monotonic()
        stream, route, permit = await self._first_answer(request, started)
        assert isinstance(stream, ProviderStream)
        events = self._relay(request, route, stream, permit, started)
        return GatewayStream(events, route.handle.name, stream.request_id)

    # -- walking the plan ------------------------------------------------------------------

    async def _first_answer(
        self, request: GatewayRequest, started: float
    ) -> tuple[ProviderResponse | ProviderStream, Route, Permit]:
        """The first deployment's answer (or open stream). A stream's permit is returned
        held: the call is out until the stream ends."""
        plan = self._router.plan(request.model, request.endpoint)
        if plan is None:
            raise NotFound(
                f"The model `{request.model}` is not served here on {request.endpoint.value}; "
                "GET /v1/models lists what is",
                param="model",
            )
        attempts = Attempts(plan, self._rng)
        tokens: int | None = None
        while True:
            route = attempts.next()
            handle = route.handle
            if tokens is None and handle.gate.counts_tokens:
                tokens = sum(estimate_request_tokens(request.body))
            call = _call_for(request, route)
            waited_from = time.monotonic()
            answer: ProviderResponse | ProviderStream
            try:
                # The wait for the gate counts against the call's timeout; a client that
                # leaves ends it (the cancel), with nothing taken.
                permit = await handle.gate.acquire(
                    tokens or 0, interactive=True, timeout=call.timeout
                )
            except ProviderError as exc:
                if attempts.advance():
                    continue
                self._report(request, route, started, ok=False, error_code=exc.category.value)
                raise UpstreamFailed(exc, deployment=handle.name) from None
            left = call.timeout - (time.monotonic() - waited_from)
            try:
                async with asyncio.timeout(max(left, 0.0)):
                    if request.stream:
                        answer = await handle.provider.stream(call)
                    elif request.endpoint is Endpoint.embeddings:
                        answer = await handle.provider.embed(call)
                    else:
                        answer = await handle.provider.complete(call)
            except TimeoutError:
                error = ProviderError(
                    ErrorCategory.timeout, f"no answer from {handle.name} in {call.timeout:g} s"
                )
            except ProviderError as exc:
                error = exc
            except BaseException:
                handle.gate.abandon(permit)  # the client went away (or a bug): no answer
                raise
            else:
                if isinstance(answer, ProviderResponse):
                    handle.gate.release(
                        permit, error=None, usage=answer.usage, hints=answer.rate_limits
                    )
                return answer, route, permit
            handle.gate.release(permit, error=error)
            if error.category.retryable and attempts.advance():
                continue
            self._report(request, route, started, ok=False, error_code=error.category.value)
            raise UpstreamFailed(error, deployment=handle.name)

    # -- streaming -------------------------------------------------------------------------

    async def _relay(
        self,
        request: GatewayRequest,
        route: Route,
        stream: ProviderStream,
        permit: Permit,
        started: float,
    ) -> AsyncIterator[bytes]:
        usage = Usage()
        first_token: float | None = None
        error: ProviderError | None = None
        finished = False
        try:
            async for chunk in stream.chunks:
                if first_token is None:
                    first_token = time.monotonic() - started
                reported = chunk.get("usage")
                if reported:
                    usage = Usage.of(chunk)
                if not request.include_usage and "usage" in chunk:
                    if not chunk.get("choices"):
                        continue  # the usage chunk the client did not ask for
                    chunk = _without_usage(chunk)
                yield encode_data(chunk)
            finished = True
            yield DONE
        except ProviderError as exc:
            error = exc
            log.warning("stream from %s failed midway: %s", route.handle.name, exc.message)
            yield encode_data(
                {
                    "error": {
                        "message": exc.message,
                        "type": "upstream_error",
                        "param": None,
                        "code": exc.category.value,
                    }
                }
            )
        finally:
            await stream.close()
            route.handle.gate.release(permit, error=error, usage=usage if finished else None)
            self._report(
                request,
                route,
                started,
                ok=finished,
                error_code=error.category.value
                if error
                else (None if finished else "disconnected"),
                usage=usage,
                first_token=first_token,
            )

    def _report(
        self,
        request: GatewayRequest,
        route: Route | None,
        started: float,
        *,
        ok: bool,
        error_code: str | None = None,
        usage: Usage | None = None,
        first_token: float | None = None,
    ) -> None:
        try:
            self._on_call(
                CallRecord(
                    model=request.model,
                    deployment=route.handle.name if route else None,
                    endpoint=request.endpoint,
                    stream=request.stream,
                    ok=ok,
                    error_code=error_code,
                    usage=usage or Usage(),
                    latency=time.monotonic() - started,
                    first_token=first_token,
                    started_at=self._clock.now(),
                )
            )
        except Exception:  # accounting must never fail a call
            log.exception("could not account for a gateway call")

    def models(self) -> list[dict[str, Any]]:
        """What clients may ask for, in OpenAI's model-list shape: aliases, the names
        deployments serve, and the pass-through deployments."""
        entries: dict[str, dict[str, Any]] = {}
        for alias in self._router.aliases.values():
            entries[alias.name] = _model(alias.name, "alias", list(alias.members))
        for handle in self._router.handles:
            config = handle.config
            name = config.public_alias
            if name is None:
                entry = _model(config.name, "passthrough", [config.name])
                entry["datamill"]["models"] = list(config.models) if config.models else ["*"]
                entries.setdefault(config.name, entry)
            elif name in entries:
                entries[name]["datamill"]["deployments"].append(config.name)
            else:
                entries[name] = _model(name, "deployment", [config.name])
        return list(entries.values())


def _call_for(request: GatewayRequest, route: Route) -> ProviderCall:
    timeout = route.handle.config.timeout
    if route.upstream_model == request.model and not request.stream:
        return ProviderCall(request.endpoint, request.body, timeout, raw=request.raw)
    return ProviderCall(request.endpoint, {**request.body, "model": route.upstream_model}, timeout)


def _without_usage(chunk: ChatChunk) -> ChatChunk:
    return {key: value for key, value in chunk.items() if key != "usage"}


def _model(name: str, kind: str, deployments: list[str]) -> dict[str, Any]:
    return {
        "id": name,
        "object": "model",
        "created": 0,
        "owned_by": "datamill",
        "datamill": {"kind": kind, "deployments": deployments},
    }
