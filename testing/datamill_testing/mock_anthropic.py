"""A mock of Anthropic's API: the Messages API (plain and streamed), Message Batches and the
model list (``GET /v1/models``, paginated; `listed_models` says what it lists), on
the mock provider's core (its fault switches, counters, rate-limit bucket and process runner).

Run it with ``python -m datamill_testing.mock_anthropic --port 0`` (``READY port=<port>``), or
in-process with ``start_mock(build=build_app)``. Besides ``/control`` (`AnthropicMockConfig`:
the mock provider's switches plus the batch ones), ``/stats``, ``/stats/reset`` and
``/health``, it answers ``GET /requests`` with the last requests it received (method, path,
headers, body), so tests can assert the exact wire body a translation produced.

It validates requests as Anthropic does (unknown fields, ``max_tokens`` required, roles,
content blocks, tool_use/tool_result pairing, tool_choice, thinking), answers
deterministically (`anthropic_wire.answer`), streams the exact event sequence, and answers
errors in Anthropic's shape (``{"type": "error", "error": {"type", "message"}}``, the
``request-id`` header; 529 ``overloaded_error`` for an injected overload).
"""

from __future__ import annotations

import asyncio
import math
import random
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from pydantic import Field, ValidationError

from datamill_testing import anthropic_wire as wire
from datamill_testing.mock_provider import Bucket, Counters, MockConfig, main, start_mock

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_RECORDED = 100


class AnthropicMockConfig(MockConfig):
    """The mock provider's switches, plus Anthropic's own (set through ``POST /control``)."""

    batch_polls: int = Field(0, ge=0, description="polls that see a new batch in_progress")
    batch_errored: list[str] = Field(
        default_factory=list, description="custom_ids whose request errors (api_error); * all"
    )
    batch_expired: list[str] = Field(
        default_factory=list, description="custom_ids left unprocessed (expired); * all"
    )
    stream_error_after: int | None = Field(
        None, ge=0, description="send an overloaded_error event after this many events"
    )
    models_page_size: int = Field(
        1000, ge=1, description="at most this many models per GET /v1/models page"
    )


def _rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload), status=status, headers=headers, content_type="application/json"
    )


def anthropic_error(
    status: int,
    message: str,
    *,
    kind: str | None = None,
    headers: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> web.Response:
    error: dict[str, Any] = {
        "type": kind
        or _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error"),
        "message": message,
    }
    if details is not None:
        error["details"] = details
    return _json({"type": "error", "error": error}, status, headers)


def _injected(status: int, why: str) -> web.Response:
    if status == 429:
        return anthropic_error(429, f"Rate limited ({why}).", headers={"retry-after": "1"})
    if status == 529:
        return anthropic_error(529, f"Overloaded ({why}).")
    return anthropic_error(status, f"Injected error ({why}).")


_MODEL_ERRORS = {
    "reject-me": lambda: anthropic_error(
        400, "model: the model `reject-me` is refused by the mock."
    ),
    "unauthorized": lambda: anthropic_error(401, "invalid x-api-key"),
    "missing-model": lambda: anthropic_error(404, "model: missing-model"),
    # A spend limit is a 429 that waiting does not lift: no retry-after.
    "spend-limit": lambda: anthropic_error(
        429,
        "You have reached your specified API usage limits.",
        details={"error_code": "enforced_spend_limit_reached"},
    ),
}


@dataclass(frozen=True, slots=True)
class _Answer:
    message: dict[str, Any]
    stream: bool
    headers: dict[str, str]


@dataclass
class _Batch:
    id: str
    requests: list[dict[str, Any]]
    created: float
    polls_left: int
    step: int  # requests processed per poll
    errored: set[str]
    expired: set[str]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    processed: int = 0
    cancel_initiated: float | None = None
    ended: float | None = None


class MockAnthropic:
    """The mock's state and handlers."""

    def __init__(self, config: AnthropicMockConfig) -> None:
        self.counters = Counters()
        self.requests: deque[dict[str, Any]] = deque(maxlen=_RECORDED)
        self.batches: dict[str, _Batch] = {}
        self._prefix = secrets.token_hex(4)
        self._sequence = 0
        self._tokens = Bucket(config.tpm, config.tpm)
        self.configure(config, changed=set(AnthropicMockConfig.model_fields))

    def configure(self, config: AnthropicMockConfig, *, changed: set[str]) -> None:
        self.config = config
        if "seed" in changed:
            self._random = random.Random(config.seed)
        if changed & {"rpm", "burst_seconds", "tpm"}:
            self._bucket = None
            if config.rpm is not None:
                self._bucket = Bucket(config.rpm, max(1.0, config.rpm / 60 * config.burst_seconds))
            self._tokens = Bucket(config.tpm, config.tpm)

    def _next_id(self) -> str:
        self._sequence += 1
        return f"{self._prefix}{self._sequence:012x}"

    # -- the gate every API call passes ---------------------------------------------------

    async def _read(self, request: web.Request) -> tuple[Any, web.Response | None]:
        """The body, recorded, and the refusal its headers or the faults decide."""
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "headers": {str(name): value for name, value in request.headers.items()},
                "body": body,
            }
        )
        self.counters.total += 1
        if raw and body is None:
            return None, anthropic_error(
                400, "There was an error parsing the body of your request."
            )
        has_key = request.headers.get("x-api-key") or request.headers.get(
            "authorization", ""
        ).startswith("Bearer ")
        if not has_key:
            return body, anthropic_error(401, "x-api-key header is required")
        version = request.headers.get("anthropic-version")
        if version is None:
            return body, anthropic_error(400, "anthropic-version: header is required")
        if version not in wire.VERSIONS:
            return body, anthropic_error(
                400, f"anthropic-version: {version!r} is not a valid version"
            )
        config = self.config
        if config.force_status is not None:
            return body, _injected(config.force_status, "forced")
        if config.fail_next:
            config.fail_next -= 1
            return body, _injected(config.error_status, "fail_next")
        return body, None

    def _finish(self, response: web.StreamResponse) -> web.StreamResponse:
        self.counters.by_status[response.status] += 1
        response.headers["request-id"] = f"req_{self._next_id()}"
        return response

    def _ratelimit_headers(self, bucket: Bucket, now: float) -> dict[str, str]:
        self._tokens.refill(now)
        wall = time.time()
        prefix = "anthropic-ratelimit-"
        return {
            prefix + "requests-limit": str(self.config.rpm),
            prefix + "requests-remaining": str(int(bucket.level)),
            prefix + "requests-reset": _rfc3339(wall + bucket.reset_after()),
            prefix + "tokens-limit": str(self.config.tpm),
            prefix + "tokens-remaining": str(int(self._tokens.level)),
            prefix + "tokens-reset": _rfc3339(wall + self._tokens.reset_after()),
        }

    # -- POST /v1/messages -----------------------------------------------------------------

    async def messages(self, request: web.Request) -> web.StreamResponse:
        counters = self.counters
        counters.in_flight += 1
        counters.peak_in_flight = max(counters.peak_in_flight, counters.in_flight)
        try:
            outcome = await self._message(request)
            if isinstance(outcome, web.Response):
                return self._finish(outcome)
            if outcome.stream:
                return await self._stream(request, outcome.message, outcome.headers)
            return self._finish(_json(outcome.message, headers=outcome.headers))
        finally:
            counters.in_flight -= 1

    async def _message(self, request: web.Request) -> web.Response | _Answer:
        body, refusal = await self._read(request)
        if refusal is not None:
            return refusal
        try:
            wire.validate(body, request.headers["anthropic-version"])
        except wire.Invalid as exc:
            return anthropic_error(400, str(exc))
        key = wire.key_of(body)
        self.counters.count_call(key)
        failure = _MODEL_ERRORS.get(body["model"])
        if failure is not None:
            return failure()
        config = self.config
        if config.max_concurrency and self.counters.in_flight > config.max_concurrency:
            return _injected(429, "max_concurrency")
        now = time.monotonic()
        headers: dict[str, str] = {}
        bucket = self._bucket
        if bucket is not None:
            wait = bucket.take(now)
            if config.ratelimit_headers:
                headers = self._ratelimit_headers(bucket, now)
            if wait:
                # Anthropic's retry-after is whole seconds.
                headers["retry-after"] = str(max(1, math.ceil(wait)))
                why = f"Rate limit of {config.rpm} requests per minute."
                return anthropic_error(429, why, headers=headers)
        draw = self._random.random
        if config.error_rate and draw() < config.error_rate:
            return _injected(config.error_status, "error_rate")
        if config.hang_rate and draw() < config.hang_rate:
            self.counters.hung += 1
            # Cancelled when the client disconnects (handler_cancellation): nothing counts.
            await asyncio.sleep(config.hang_seconds)
        delay = self._latency()
        if delay:
            await asyncio.sleep(delay)
        message = wire.answer(body, f"msg_{self._next_id()}")
        self.counters.count_ok(key)
        if bucket is not None:
            self._tokens.level = max(0.0, self._tokens.level - message["usage"]["output_tokens"])
        return _Answer(message, body.get("stream") is True, headers)

    def _latency(self) -> float:
        config = self.config
        if not config.latency_ms:
            return 0.0
        if config.latency_dist == "fixed":
            return config.latency_ms / 1000
        return self._random.lognormvariate(math.log(config.latency_ms), config.latency_sigma) / 1000

    async def _stream(
        self, request: web.Request, message: dict[str, Any], headers: dict[str, str]
    ) -> web.StreamResponse:
        counters = self.counters
        counters.streams += 1
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream", **headers})
        self._finish(stream)
        await stream.prepare(request)
        pause = self.config.stream_chunk_ms / 1000
        fail_after = self.config.stream_error_after
        try:
            for sent, (name, data) in enumerate(wire.stream_events(message)):
                if fail_after is not None and sent == fail_after:
                    error = {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                    }
                    await stream.write(wire.encode_event("error", error))
                    break
                await stream.write(wire.encode_event(name, data))
                if pause:
                    await asyncio.sleep(pause)
            await stream.write_eof()
        except (asyncio.CancelledError, ConnectionError):
            counters.streams_disconnected += 1
            raise
        counters.streams_completed += 1
        return stream

    # -- Message Batches ---------------------------------------------------------------------

    async def create_batch(self, request: web.Request) -> web.StreamResponse:
        body, refusal = await self._read(request)
        if refusal is not None:
            return self._finish(refusal)
        items = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return self._finish(anthropic_error(400, "requests: at least one request is required"))
        if len(items) > 100_000:
            return self._finish(anthropic_error(400, "requests: at most 100000 requests"))
        seen: set[str] = set()
        for index, item in enumerate(items):
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            if not isinstance(custom_id, str) or not wire.CUSTOM_ID.fullmatch(custom_id):
                return self._finish(anthropic_error(400, f"requests.{index}.custom_id: invalid"))
            if custom_id in seen:
                return self._finish(anthropic_error(400, f"requests.{index}.custom_id: duplicate"))
            if not isinstance(item.get("params"), dict) or set(item) - {"custom_id", "params"}:
                return self._finish(anthropic_error(400, f"requests.{index}.params: invalid"))
            seen.add(custom_id)
        config = self.config
        batch = _Batch(
            id=f"msgbatch_{self._next_id()}",
            requests=items,
            created=time.time(),
            polls_left=config.batch_polls,
            step=math.ceil(len(items) / (config.batch_polls + 1)),
            errored=set(config.batch_errored),
            expired=set(config.batch_expired),
        )
        self.batches[batch.id] = batch
        return self._finish(_json(self._batch_object(batch, request)))

    def _batch_object(self, batch: _Batch, request: web.Request) -> dict[str, Any]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if batch.ended is None:
            counts["processing"] = len(batch.requests)  # the others count only once it ends
        else:
            for result in batch.results.values():
                counts[result["type"]] += 1
        status = (
            "ended" if batch.ended else "canceling" if batch.cancel_initiated else "in_progress"
        )
        root = f"{request.scheme}://{request.host}/v1/messages/batches/{batch.id}"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "ended_at": _rfc3339(batch.ended) if batch.ended else None,
            "created_at": _rfc3339(batch.created),
            "expires_at": _rfc3339(batch.created + 86400),
            "cancel_initiated_at": _rfc3339(batch.cancel_initiated)
            if batch.cancel_initiated
            else None,
            "archived_at": None,
            "results_url": f"{root}/results" if batch.ended else None,
        }

    def _process(self, batch: _Batch, count: int) -> None:
        """Run the next ``count`` requests (those set to expire never run)."""
        for item in batch.requests[batch.processed : batch.processed + count]:
            custom_id = item["custom_id"]
            if custom_id in batch.expired or "*" in batch.expired:
                continue
            batch.results[custom_id] = self._run(item["params"], custom_id, batch)
        batch.processed = min(len(batch.requests), batch.processed + count)

    def _run(self, params: dict[str, Any], custom_id: str, batch: _Batch) -> dict[str, Any]:
        if custom_id in batch.errored or "*" in batch.errored:
            error = {"type": "api_error", "message": "Internal server error"}
        else:
            try:
                if "stream" in params:
                    raise wire.Invalid("stream: streaming is not supported in batches")
                wire.validate(params, wire.VERSIONS[0])
            except wire.Invalid as exc:
                error = {"type": "invalid_request_error", "message": str(exc)}
            else:
                message = wire.answer(params, f"msg_{self._next_id()}", service_tier="batch")
                return {"type": "succeeded", "message": message}
        return {
            "type": "errored",
            "error": {"type": "error", "error": error, "request_id": f"req_{self._next_id()}"},
        }

    def _end(self, batch: _Batch) -> None:
        for item in batch.requests:
            custom_id = item["custom_id"]
            if custom_id not in batch.results:
                expired = custom_id in batch.expired or "*" in batch.expired
                batch.results[custom_id] = {"type": "expired" if expired else "canceled"}
        batch.ended = time.time()

    def _batch(self, request: web.Request) -> _Batch | None:
        return self.batches.get(request.match_info["batch_id"])

    async def get_batch(self, request: web.Request) -> web.StreamResponse:
        _, refusal = await self._read(request)
        if refusal is not None:
            return self._finish(refusal)
        batch = self._batch(request)
        if batch is None:
            return self._finish(anthropic_error(404, "message batch not found"))
        if batch.ended is None:
            if batch.cancel_initiated is not None:
                self._end(batch)  # what had not run is canceled
            elif batch.polls_left:
                batch.polls_left -= 1
                self._process(batch, batch.step)
            else:
                self._process(batch, len(batch.requests))
                self._end(batch)
        return self._finish(_json(self._batch_object(batch, request)))

    async def cancel_batch(self, request: web.Request) -> web.StreamResponse:
        _, refusal = await self._read(request)
        if refusal is not None:
            return self._finish(refusal)
        batch = self._batch(request)
        if batch is None:
            return self._finish(anthropic_error(404, "message batch not found"))
        if batch.ended is None and batch.cancel_initiated is None:
            batch.cancel_initiated = time.time()
        return self._finish(_json(self._batch_object(batch, request)))

    async def batch_results(self, request: web.Request) -> web.StreamResponse:
        _, refusal = await self._read(request)
        if refusal is not None:
            return self._finish(refusal)
        batch = self._batch(request)
        if batch is None:
            return self._finish(anthropic_error(404, "message batch not found"))
        if batch.ended is None:
            return self._finish(anthropic_error(400, "message batch is still in progress"))
        stream = web.StreamResponse(headers={"Content-Type": "application/x-jsonl"})
        self._finish(stream)
        await stream.prepare(request)
        # Not in request order, as Anthropic warns: results are matched by custom_id.
        for item in reversed(batch.requests):
            custom_id = item["custom_id"]
            line = {"custom_id": custom_id, "result": batch.results[custom_id]}
            await stream.write(orjson.dumps(line) + b"\n")
        await stream.write_eof()
        return stream

    # -- control -------------------------------------------------------------------------

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/models``: `listed_models`, newest first, a page after ``after_id`` of
        at most ``limit`` (1 to 1000, default 20) and `models_page_size` entries."""
        _, refusal = await self._read(request)
        if refusal is not None:
            return self._finish(refusal)
        try:
            limit = int(request.query.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            return self._finish(anthropic_error(400, "limit: must be between 1 and 1000"))
        names = self.config.listed_models
        start = 0
        after = request.query.get("after_id")
        if after is not None:
            if after not in names:
                return self._finish(anthropic_error(404, f"model {after!r} not found"))
            start = names.index(after) + 1
        page = names[start : start + min(limit, self.config.models_page_size)]
        data = [
            {
                "type": "model",
                "id": name,
                "display_name": name.replace("-", " ").title(),
                "created_at": _rfc3339(1_740_000_000 - 86_400 * index),
            }
            for index, name in enumerate(page, start)
        ]
        body = {
            "data": data,
            "has_more": start + len(page) < len(names),
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
        }
        return self._finish(_json(body))

    async def health(self, request: web.Request) -> web.Response:
        return _json({"ok": True})

    async def get_control(self, request: web.Request) -> web.Response:
        return _json(self.config.model_dump())

    async def post_control(self, request: web.Request) -> web.Response:
        try:
            changes = orjson.loads(await request.read())
            config = AnthropicMockConfig.model_validate({**self.config.model_dump(), **changes})
        except (orjson.JSONDecodeError, TypeError):
            return anthropic_error(400, "The control body must be a JSON object.")
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            return anthropic_error(400, problems)
        self.configure(config, changed=set(changes))
        return _json(config.model_dump())

    async def get_stats(self, request: web.Request) -> web.Response:
        per_key = request.query.get("per_key", "") not in ("", "0", "false")
        stats = self.counters.snapshot(per_key=per_key)
        stats["batches"] = len(self.batches)
        return _json(stats)

    async def reset_stats(self, request: web.Request) -> web.Response:
        self.counters.reset()
        self.requests.clear()
        return _json(self.counters.snapshot(per_key=False))

    async def get_requests(self, request: web.Request) -> web.Response:
        return _json(list(self.requests))


MOCK_ANTHROPIC = web.AppKey("mock_anthropic", MockAnthropic)


def build_app(config: MockConfig) -> web.Application:
    """The mock as an aiohttp app; its state is ``app[MOCK_ANTHROPIC]``."""
    # Only the switches given: the OpenAI mock's defaults for its own Batch API (batch_polls)
    # must not override this mock's.
    given = config.model_dump(exclude_unset=True)
    mock = MockAnthropic(AnthropicMockConfig.model_validate(given))
    app = web.Application(client_max_size=300 * 1024**2)
    app[MOCK_ANTHROPIC] = mock
    app.router.add_post("/v1/messages", mock.messages)
    app.router.add_post("/v1/messages/batches", mock.create_batch)
    app.router.add_get("/v1/messages/batches/{batch_id}", mock.get_batch)
    app.router.add_post("/v1/messages/batches/{batch_id}/cancel", mock.cancel_batch)
    app.router.add_get("/v1/messages/batches/{batch_id}/results", mock.batch_results)
    app.router.add_get("/v1/models", mock.list_models)
    app.router.add_get("/health", mock.health)
    app.router.add_get("/control", mock.get_control)
    app.router.add_post("/control", mock.post_control)
    app.router.add_get("/stats", mock.get_stats)
    app.router.add_post("/stats/reset", mock.reset_stats)
    app.router.add_get("/requests", mock.get_requests)
    return app


async def start_anthropic_mock(
    host: str = "127.0.0.1", port: int = 0, **config: Any
) -> tuple[web.AppRunner, int]:
    """Serve the mock in this event loop (``await runner.cleanup()`` when done)."""
    return await start_mock(host, port, build=build_app, **config)


if __name__ == "__main__":
    main(build=build_app)
