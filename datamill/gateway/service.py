"""The chat gateway: interactive calls through the same deployments, gates and fallbacks as
batch work.

`GatewayService` routes a checked request (gateway/requests.py) to its plan and calls each
deployment as an interactive call (`scheduler.dispatch`: ahead of waiting batch calls, its
wait at the gate counted against its timeout). It walks the plan as the retry decision says
(`scheduler.retry`, one round, no backoff): a 429, a 5xx, a timeout, a dead connection or an
open circuit moves the call to the next deployment, as long as nothing was sent to the
client yet, and a deployment whose network setup failed is dropped for the next one. Once a
stream has started, a failure ends it with an error event. An adapter that raises
unexpectedly (`AdapterFailed`) is answered as the internal error it is. Every call, answered
or not, is reported to ``on_call`` (usage, cost and latency accounting).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from datamill.clock import Clock
from datamill.errors import (
    AdapterFailed,
    ModelNotFound,
    ProviderError,
    UpstreamFailed,
    upstream_param_and_code,
)
from datamill.gateway.models import ModelCatalog
from datamill.gateway.ratelimits import ratelimit_headers
from datamill.gateway.requests import GatewayRequest
from datamill.nlp.tokens import estimate_request_tokens, estimate_response_tokens
from datamill.protocol.responses import FINAL_EVENTS
from datamill.providers.base import (
    ChatChunk,
    Endpoint,
    ProviderCall,
    ProviderResponse,
    ProviderStream,
    Usage,
)
from datamill.providers.sse import DONE, encode_data, encode_event
from datamill.scheduler.dispatch import Dispatcher, answer
from datamill.scheduler.gate import Permit
from datamill.scheduler.retry import RetryAction, RetryDecision
from datamill.scheduler.router import Attempts, Route, Router
from datamill.storage.schema import DEFAULT_PROJECT_ID

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
    project_id: str = DEFAULT_PROJECT_ID
    key_id: str | None = None  # the API key that asked (its spend counts against it)


CallSink = Callable[[CallRecord], None]


@dataclass(frozen=True, slots=True)
class GatewayAnswer:
    body: bytes  # OpenAI-format JSON, as the provider's adapter made it
    deployment: str
    request_id: str
    rate_limits: dict[str, str] = field(default_factory=dict)  # x-ratelimit-* headers


@dataclass(frozen=True, slots=True)
class GatewayStream:
    """An open stream: ``events`` yields server-sent events (``data: ...``) up to and with
    ``data: [DONE]``; ``close()`` must be called however the client stops reading."""

    events: AsyncIterator[bytes]
    deployment: str
    request_id: str
    rate_limits: dict[str, str] = field(default_factory=dict)  # x-ratelimit-* headers

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
        self._dispatch = Dispatcher(clock)
        self.catalog = ModelCatalog(router, clock)

    async def complete(self, request: GatewayRequest) -> GatewayAnswer:
        """A chat completion or a response (not streamed), or embeddings, from the first
        deployment of the plan that answers."""
        started = time.monotonic()
        response, route, _ = await self._first_answer(request, started)
        assert isinstance(response, ProviderResponse)
        self._report(request, route, started, ok=True, usage=response.usage)
        return GatewayAnswer(
            response.body, route.handle.name, response.request_id, self._rate_limits(route)
        )

    async def open_stream(self, request: GatewayRequest) -> GatewayStream:
        """A streamed chat completion (chunks) or response (Responses events), once a
        deployment accepted it."""
        started = time.monotonic()
        stream, route, permit = await self._first_answer(request, started)
        assert isinstance(stream, ProviderStream)
        assert permit is not None
        events = self._relay(request, route, stream, permit, started)
        return GatewayStream(events, route.handle.name, stream.request_id, self._rate_limits(route))

    # -- walking the plan ------------------------------------------------------------------

    async def _first_answer(
        self, request: GatewayRequest, started: float
    ) -> tuple[ProviderResponse | ProviderStream, Route, Permit | None]:
        """The first deployment's answer (or open stream). A stream's permit is returned
        held: the call is out until the stream ends."""
        plan = self._router.plan(request.model, request.endpoint)
        if plan is None:
            raise ModelNotFound(
                f"The model `{request.model}` is not served here on {request.endpoint.value}; "
                "GET /v1/models lists what is"
            )
        attempts = Attempts(plan, self._rng)
        retries: RetryDecision | None = None  # made at the first failure
        tokens: int | None = None
        tries = 0
        while True:
            route = attempts.next()
            handle = route.handle
            if tokens is None and handle.gate.counts_tokens:
                responses = request.endpoint is Endpoint.responses
                estimate = estimate_response_tokens if responses else estimate_request_tokens
                tokens = sum(estimate(request.body))
            call = _call_for(request, route)
            # The wait for the gate counts against the call's timeout; a client that leaves
            # ends it (the cancel), with nothing taken.
            deadline = self._clock.monotonic() + call.timeout
            tries += 1
            try:
                if request.stream:
                    stream, permit = await self._dispatch.open_stream(
                        route, call, tokens or 0, deadline=deadline
                    )
                    return stream, route, permit
                response = await self._dispatch.call_deployment(
                    route, call, tokens or 0, send=answer, interactive=True, deadline=deadline
                )
                assert response is not None  # only a batch call's wait is withdrawn
                return response, route, None
            except AdapterFailed:
                raise  # a bug, not the upstream's answer: a 500, as any bug
            except ProviderError as exc:
                error = exc
            if retries is None:
                retries = RetryDecision(attempts, max_retries=None, rng=self._rng)
            if retries.after(error, tries=tries) is not RetryAction.give_up:
                continue
            self._report(request, route, started, ok=False, error_code=error.category.value)
            raise UpstreamFailed(
                error, deployment=handle.name, rate_limits=self._rate_limits(route)
            ) from None

    def _rate_limits(self, route: Route) -> dict[str, str]:
        return ratelimit_headers(route.handle.gate, self._clock.monotonic())

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
        responses = request.endpoint is Endpoint.responses
        sequence = 0
        try:
            async for chunk in stream.chunks:
                if first_token is None:
                    first_token = time.monotonic() - started
                if responses:
                    # Responses events go on as they are; the last one carries the usage.
                    sequence = int(chunk.get("sequence_number") or sequence) + 1
                    final = chunk.get("response") if chunk.get("type") in FINAL_EVENTS else None
                    if isinstance(final, dict) and final.get("usage"):
                        usage = Usage.of(final)
                    yield encode_event(str(chunk.get("type")), chunk)
                    continue
                reported = chunk.get("usage")
                if reported:
                    usage = Usage.of(chunk)
                if not request.include_usage and "usage" in chunk:
                    if not chunk.get("choices"):
                        continue  # the usage chunk the client did not ask for
                    chunk = _without_usage(chunk)
                yield encode_data(chunk)
            finished = True
            if not responses:
                yield DONE
        except ProviderError as exc:
            error = exc
            log.warning("stream from %s failed midway: %s", route.handle.name, exc.message)
            if responses:
                yield encode_event("error", _error_event(exc, sequence))
                return
            # The same error object a failed call answers, in the stream.
            yield encode_data(UpstreamFailed(exc, deployment=route.handle.name).to_body())
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
                    project_id=request.project_id,
                    key_id=request.key_id,
                )
            )
        except Exception:  # accounting must never fail a call
            log.exception("could not account for a gateway call")

    async def aclose(self) -> None:
        """End the model catalog's refreshes and the watcher of the calls' deadlines."""
        await self.catalog.aclose()
        await self._dispatch.aclose()

    def models(self) -> list[dict[str, Any]]:
        """The names configured in ``datamill.toml`` (aliases, deployments' models and
        pass-through deployments), in OpenAI's model-list shape; `catalog` adds what
        upstreams list."""
        return self.catalog.configured_models()


def _call_for(request: GatewayRequest, route: Route) -> ProviderCall:
    timeout = route.handle.config.timeout
    if route.upstream_model == request.model and not request.stream:
        return ProviderCall(request.endpoint, request.body, timeout, raw=request.raw)
    return ProviderCall(request.endpoint, {**request.body, "model": route.upstream_model}, timeout)


def _error_event(error: ProviderError, sequence: int) -> dict[str, Any]:
    """Responses' ``error`` event, for a stream that failed midway: the upstream's own
    ``param`` and ``code`` where it sent them, as in every other error datamill relays."""
    param, code = upstream_param_and_code(error)
    return {
        "type": "error",
        "code": code,
        "message": error.message,
        "param": param,
        "sequence_number": sequence,
        "datamill_category": error.category.value,
    }


def _without_usage(chunk: ChatChunk) -> ChatChunk:
    return {key: value for key, value in chunk.items() if key != "usage"}
