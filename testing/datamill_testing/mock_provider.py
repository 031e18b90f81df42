"""A mock OpenAI-compatible provider: real HTTP on loopback, fault switches, call counters.

Besides chat completions and embeddings it serves OpenAI's Responses API (`mock_responses`)
and its Files and Batches API (`mock_batches`), for native batch delegation.

Run it with ``python -m datamill_testing.mock_provider --port 0``: it prints one line
``READY port=<port>`` once listening. Tests change its behaviour at any time with
``POST /control`` (partial :class:`MockConfig` updates) and read what it saw at ``GET /stats``.

Benchmarks push ~10k requests/s through it, so the hot path stays lean: no per-request
logging, orjson, precomputed error bodies, no sleep when there is no latency, uvloop when
installed. Every counter and switch lives in one process and one event loop, so they are
exact without locks.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import math
import os
import random
import secrets
import signal
import ssl
import time
from array import array
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, Literal

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from datamill_testing.mock_batches import MockBatches
from datamill_testing.mock_ratelimits import Convention, ratelimit_headers
from datamill_testing.mock_responses import (
    responses_answer,
    responses_key,
    responses_problem,
    stream_responses,
)

MODEL_ID = "mock-model"
DEFAULT_DIMENSIONS = 8


class MockConfig(BaseModel):
    """How the mock behaves; every field can change at runtime through ``POST /control``."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(0.0, ge=0, description="answer delay (median for lognormal)")
    latency_dist: Literal["fixed", "lognormal"] = Field("fixed", description="fixed|lognormal")
    latency_sigma: float = Field(0.5, ge=0, description="sigma of the lognormal latency")
    seed: int | None = Field(None, description="seed of the fault and latency draws")
    error_rate: float = Field(0.0, ge=0, le=1, description="share answered error_status")
    error_status: int = Field(500, ge=400, le=599, description="status of injected errors")
    errors_spend_budget: bool = Field(
        True, description="injected errors are answered after the rpm bucket admits the call"
    )
    hang_rate: float = Field(0.0, ge=0, le=1, description="share that hangs hang_seconds")
    hang_seconds: float = Field(
        3600.0, ge=0, description="a hung request sleeps this, then answers"
    )
    rpm: int | None = Field(None, gt=0, description="requests per minute (token bucket)")
    burst_seconds: float = Field(1.0, gt=0, description="bucket capacity in seconds of rpm")
    tpm: int = Field(100_000_000, gt=0, description="tokens per minute (reported only)")
    max_concurrency: int = Field(0, ge=0, description="in-flight cap, 0 = unlimited")
    ratelimit_headers: bool = Field(True, description="send rate-limit headers when rpm is set")
    ratelimit_convention: Convention = Field(
        "openai", description="whose rate-limit headers and behaviour (mock_ratelimits)"
    )
    retry_after_ms: bool = Field(True, description="429s carry retry-after-ms besides Retry-After")
    fail_next: int = Field(0, ge=0, description="the next N requests answer error_status")
    stream_chunk_ms: float = Field(0.0, ge=0, description="delay between streamed chunks")
    force_status: int | None = Field(None, ge=400, le=599, description="answer this to all")
    listed_models: list[str] = Field(
        default_factory=lambda: [MODEL_ID], description="the ids GET /v1/models lists"
    )
    # The Files/Batches API (mock_batches): how upstream batches behave.
    batch_polls: int = Field(1, ge=1, description="retrieves until an upstream batch ends")
    batch_fail_lines: int = Field(0, ge=0, description="the next N batch lines fail")
    batch_line_error_status: int = Field(
        500, ge=400, le=599, description="status of the lines batch_fail_lines fails"
    )
    batch_expire_next: int = Field(0, ge=0, description="the next N batches expire")
    batch_expire_processed: float = Field(
        0.5, ge=0, le=1, description="share of an expiring batch's lines that run"
    )
    batch_fail_next: int = Field(0, ge=0, description="the next N batches fail as a whole")


class Bucket:
    """A token bucket refilled at ``per_minute / 60`` per second."""

    __slots__ = ("capacity", "level", "rate", "updated")

    def __init__(self, per_minute: float, capacity: float) -> None:
        self.rate = per_minute / 60
        self.capacity = capacity
        self.level = capacity
        self.updated = time.monotonic()

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def take(self, now: float) -> float:
        """Take one token: 0.0 when granted, else the seconds until one frees."""
        self.refill(now)
        if self.level >= 1:
            self.level -= 1
            return 0.0
        return (1 - self.level) / self.rate

    def reset_after(self) -> float:
        return (self.capacity - self.level) / self.rate


class Counters:
    """What the mock saw; ``reset()`` keeps ``in_flight``, those requests are still running."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        self.total = 0
        self.hung = 0
        self.by_status: Counter[int] = Counter()
        self.peak_in_flight = self.in_flight
        self.calls: dict[str, int] = {}
        self.repeats = 0
        self.repeated_keys = 0
        self.oks: dict[str, int] = {}
        self.ok_repeats = 0
        self.streams = 0  # streamed answers started
        self.streams_completed = 0  # ... sent to their end
        self.streams_disconnected = 0  # ... whose client went away midway
        self.files_uploaded = 0
        self.upstream_batches = 0  # batches created through /v1/batches
        self.batch_lines = 0  # lines of those batches run

    def count_call(self, key: str) -> None:
        seen = self.calls.get(key, 0) + 1
        self.calls[key] = seen
        if seen > 1:
            self.repeats += 1
            self.repeated_keys += seen == 2

    def count_ok(self, key: str) -> None:
        seen = self.oks.get(key, 0) + 1
        self.oks[key] = seen
        self.ok_repeats += seen > 1

    def snapshot(self, *, per_key: bool) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "total": self.total,
            "by_status": {str(status): n for status, n in sorted(self.by_status.items())},
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "hung": self.hung,
            "keys": len(self.calls),
            "repeats": self.repeats,
            "repeated_keys": self.repeated_keys,
            "completed_keys": len(self.oks),
            "ok_repeats": self.ok_repeats,
            "streams": self.streams,
            "streams_completed": self.streams_completed,
            "streams_disconnected": self.streams_disconnected,
            "files_uploaded": self.files_uploaded,
            "upstream_batches": self.upstream_batches,
            "batch_lines": self.batch_lines,
        }
        if per_key:
            stats["per_key"] = dict(self.calls)
        return stats


def _sse(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


@functools.lru_cache(maxsize=256)
def _error_body(message: str, kind: str, code: str | None, param: str | None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def _error(
    status: int,
    message: str,
    kind: str = "invalid_request_error",
    *,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = _error_body(message, kind, code, param)
    return web.Response(body=body, status=status, headers=headers, content_type="application/json")


def _injected(status: int, why: str) -> web.Response:
    """An error answered on purpose, typed the way OpenAI types that status."""
    if status == 429:
        return _error(
            429,
            f"Rate limit reached ({why}).",
            "requests",
            code="rate_limit_exceeded",
            headers={"Retry-After": "1", "retry-after-ms": "1000"},
        )
    if status in (401, 403):
        return _error(status, f"Not allowed ({why}).", "authentication_error")
    if status < 500:
        return _error(status, f"Request refused ({why}).")
    return _error(status, f"The server had an error ({why}).", "server_error")


# Models that always fail the same way, so tests can exercise final (non-retryable) errors.
_MODEL_ERRORS: dict[str, Callable[[], web.Response]] = {
    "reject-me": lambda: _error(
        400, "The model `reject-me` is refused by the mock.", code="invalid_value", param="model"
    ),
    "unauthorized": lambda: _error(
        401, "Incorrect API key provided.", "authentication_error", code="invalid_api_key"
    ),
    "missing-model": lambda: _error(
        404, "The model `missing-model` does not exist.", code="model_not_found", param="model"
    ),
}


def _missing(param: str) -> web.Response:
    return _error(
        400,
        f"Missing required parameter: '{param}'.",
        code="missing_required_parameter",
        param=param,
    )


def _check_model(body: dict[str, Any]) -> web.Response | None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return _error(400, "You must provide a model parameter.", param="model")
    failure = _MODEL_ERRORS.get(model)
    return failure() if failure else None


def _dump(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _chat_key(body: dict[str, Any]) -> str | None:
    if "user" in body:
        return _dump(body["user"])
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        return _dump(messages[-1].get("content"))
    return None


def _chat_problem(body: dict[str, Any]) -> web.Response | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _check_model(body) or _missing("messages")
    if not all(isinstance(message, dict) for message in messages):
        return _error(400, "Each message must be an object.", param="messages")
    return _check_model(body)


def _chat_answer(body: dict[str, Any], key: str, answer_id: str) -> tuple[bytes, int]:
    content = f"mock answer to {key}"
    chars = sum(len(_dump(message.get("content", ""))) for message in body["messages"])
    prompt_tokens = max(1, chars // 4)
    completion_tokens = max(1, len(content) // 4)
    payload = {
        "id": f"chatcmpl-{answer_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    return orjson.dumps(payload), prompt_tokens + completion_tokens


def _embeddings_key(body: dict[str, Any]) -> str | None:
    if "user" in body:
        return _dump(body["user"])
    return orjson.dumps(body["input"]).decode() if "input" in body else None


def _embeddings_problem(body: dict[str, Any]) -> web.Response | None:
    given = body.get("input")
    if not isinstance(given, str | list) or not given:
        return _missing("input")
    dimensions = body.get("dimensions", DEFAULT_DIMENSIONS)
    if not isinstance(dimensions, int) or not 1 <= dimensions <= 8192:
        return _error(400, "dimensions must be an integer in 1..8192.", param="dimensions")
    return _check_model(body)


def _vector(item: Any, dimensions: int) -> list[float]:
    """A unit vector derived from the text alone, so equal inputs embed equally."""
    data = item.encode() if isinstance(item, str) else orjson.dumps(item)
    raw = array("H", hashlib.shake_128(data).digest(2 * dimensions))
    vector = [value / 32767.5 - 1.0 for value in raw]
    norm = math.sqrt(sum(value * value for value in vector)) or 1.0
    return [value / norm for value in vector]


def _embeddings_answer(body: dict[str, Any], key: str, answer_id: str) -> tuple[bytes, int]:
    given = body["input"]
    items = [given] if isinstance(given, str) else given
    dimensions = body.get("dimensions", DEFAULT_DIMENSIONS)
    prompt_tokens = max(1, sum(len(_dump(item)) for item in items) // 4)
    payload = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": _vector(item, dimensions)}
            for index, item in enumerate(items)
        ],
        "model": body["model"],
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
    return orjson.dumps(payload), prompt_tokens


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


_RATELIMIT_PREFIXES = ("x-ratelimit-", "x-tokenlimit-", "anthropic-ratelimit-")
_Key = Callable[[dict[str, Any]], str | None]
_Problem = Callable[[dict[str, Any]], web.Response | None]
_Answer = Callable[[dict[str, Any], str, str], tuple[bytes, int]]


class MockProvider:
    """The mock's state and handlers. Counts every call, whatever it is answered."""

    def __init__(self, config: MockConfig) -> None:
        self.counters = Counters()
        self._prefix = secrets.token_hex(4)  # ids stay unique across restarts
        self._sequence = 0
        self.configure(config, changed=set(MockConfig.model_fields))

    def configure(self, config: MockConfig, *, changed: set[str]) -> None:
        """Apply a config; buckets and the random draws restart only when theirs changed."""
        self.config = config
        if "seed" in changed:
            self._random = random.Random(config.seed)
        if changed & {"rpm", "burst_seconds", "tpm"}:
            self._admitted = 0  # calls the rpm bucket let through (the daily figures)
            self._requests = None
            if config.rpm is not None:
                capacity = max(1.0, config.rpm / 60 * config.burst_seconds)
                self._requests = Bucket(config.rpm, capacity)
            self._tokens = Bucket(config.tpm, config.tpm)

    def _ratelimit_headers(self, requests: Bucket, now: float) -> dict[str, str]:
        tokens = self._tokens
        tokens.refill(now)
        config = self.config
        assert config.rpm is not None
        return ratelimit_headers(
            config.ratelimit_convention,
            requests,
            tokens,
            rpm=config.rpm,
            tpm=config.tpm,
            used_today=self._admitted,
        )

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, _chat_key, _chat_problem, _chat_answer)

    async def responses(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, responses_key, responses_problem, responses_answer)

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, _embeddings_key, _embeddings_problem, _embeddings_answer)

    async def _handle(
        self, request: web.Request, key_of: _Key, problem_of: _Problem, answer: _Answer
    ) -> web.StreamResponse:
        raw = await request.read()
        counters = self.counters
        counters.total += 1
        counters.in_flight += 1
        counters.peak_in_flight = max(counters.peak_in_flight, counters.in_flight)
        self._sequence += 1
        answer_id = f"{self._prefix}{self._sequence:012x}"
        try:
            response = await self._respond(raw, answer_id, key_of, problem_of, answer)
            counters.by_status[response.status] += 1
            response.headers["x-request-id"] = f"req_{answer_id}"
            if response.status == 200 and b'"stream"' in raw:
                options = orjson.loads(raw)
                if options.get("stream") is True and answer is _chat_answer:
                    return await self._stream(request, response, options)
                if options.get("stream") is True and answer is responses_answer:
                    return await stream_responses(request, response)
        finally:
            counters.in_flight -= 1
        return response

    async def _stream(
        self, request: web.Request, answer: web.Response, options: dict[str, Any]
    ) -> web.StreamResponse:
        """The answer as OpenAI streams it: a role chunk, one chunk per word, the finish
        chunk, the usage chunk when ``stream_options.include_usage``, then ``[DONE]``."""
        assert isinstance(answer.body, bytes)
        completion = orjson.loads(answer.body)
        counters = self.counters
        counters.streams += 1
        stream = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "x-request-id": answer.headers["x-request-id"],
            }
        )
        for name, value in answer.headers.items():
            if name.lower().startswith(_RATELIMIT_PREFIXES):
                stream.headers[name] = value
        await stream.prepare(request)
        base = {key: completion[key] for key in ("id", "created", "model")}
        base["object"] = "chat.completion.chunk"
        content = completion["choices"][0]["message"]["content"]
        words = content.split(" ")
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        deltas += [{"content": word if i == 0 else " " + word} for i, word in enumerate(words)]
        pause = self.config.stream_chunk_ms / 1000
        try:
            for delta in deltas:
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
                await stream.write(_sse({**base, "choices": [choice]}))
                if pause:
                    await asyncio.sleep(pause)
            finish = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
            await stream.write(_sse({**base, "choices": [finish]}))
            stream_options = options.get("stream_options")
            if isinstance(stream_options, dict) and stream_options.get("include_usage"):
                await stream.write(_sse({**base, "choices": [], "usage": completion["usage"]}))
            await stream.write(b"data: [DONE]\n\n")
            await stream.write_eof()
        except (asyncio.CancelledError, ConnectionError):
            counters.streams_disconnected += 1
            raise
        counters.streams_completed += 1
        return stream

    async def _respond(
        self, raw: bytes, answer_id: str, key_of: _Key, problem_of: _Problem, answer: _Answer
    ) -> web.Response:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.")
        counters, config = self.counters, self.config
        key = key_of(body)
        if key is not None:
            counters.count_call(key)
        # Deterministic faults win over everything, rates come after validation.
        if config.force_status is not None:
            return _injected(config.force_status, "forced")
        if config.fail_next:
            config.fail_next -= 1
            return _injected(config.error_status, "fail_next")
        problem = problem_of(body)
        if problem is not None or key is None:
            return problem or _error(400, "Invalid request body.")
        if config.max_concurrency and counters.in_flight > config.max_concurrency:
            return _injected(429, "max_concurrency")
        draw = self._random.random
        if not config.errors_spend_budget and config.error_rate and draw() < config.error_rate:
            # Refused before admission (a front end's error): the rpm budget is not spent.
            return _injected(config.error_status, "error_rate")
        now = time.monotonic()
        requests = self._requests
        if requests is not None:
            wait = requests.take(now)
            if wait and config.ratelimit_convention == "vllm":
                # No 429: the call waits its turn in the server's queue, then runs.
                requests.level -= 1
                await asyncio.sleep(-requests.level / requests.rate)
                wait = 0.0
            if wait:
                # Answered at once, however slow the successes are.
                headers = {"Retry-After": str(max(1, math.ceil(wait)))}
                if config.retry_after_ms:
                    headers["retry-after-ms"] = str(math.ceil(wait * 1000))
                if config.ratelimit_headers:
                    headers.update(self._ratelimit_headers(requests, now))
                return _error(
                    429,
                    f"Rate limit reached: {config.rpm} requests per minute.",
                    "requests",
                    code="rate_limit_exceeded",
                    headers=headers,
                )
            self._admitted += 1
        if config.errors_spend_budget and config.error_rate and draw() < config.error_rate:
            return _injected(config.error_status, "error_rate")
        if config.hang_rate and draw() < config.hang_rate:
            counters.hung += 1
            # Cancelled when the client disconnects (handler_cancellation), then nothing counts.
            await asyncio.sleep(config.hang_seconds)
        delay = self._latency(config)
        if delay:
            await asyncio.sleep(delay)
        payload, used = answer(body, key, answer_id)
        counters.count_ok(key)
        response = web.Response(body=payload, content_type="application/json")
        if requests is not None and config.ratelimit_headers:
            now = time.monotonic()
            self._tokens.refill(now)
            self._tokens.level = max(0.0, self._tokens.level - used)
            requests.refill(now)
            response.headers.update(self._ratelimit_headers(requests, now))
        return response

    def _latency(self, config: MockConfig) -> float:
        if not config.latency_ms:
            return 0.0
        if config.latency_dist == "fixed":
            return config.latency_ms / 1000
        return self._random.lognormvariate(math.log(config.latency_ms), config.latency_sigma) / 1000

    async def models(self, request: web.Request) -> web.Response:
        """The model list; ``force_status`` fails it too."""
        if self.config.force_status is not None:
            return _injected(self.config.force_status, "force_status")
        data = [
            {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "mock"}
            for name in self.config.listed_models
        ]
        return _json({"object": "list", "data": data})

    async def health(self, request: web.Request) -> web.Response:
        return _json({"ok": True})

    async def get_control(self, request: web.Request) -> web.Response:
        return _json(self.config.model_dump())

    async def post_control(self, request: web.Request) -> web.Response:
        try:
            changes = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.")
        if not isinstance(changes, dict):
            return _error(400, "The control body must be a JSON object.")
        try:
            config = MockConfig.model_validate({**self.config.model_dump(), **changes})
        except ValidationError as exc:
            return _error(400, _describe(exc), code="invalid_value")
        self.configure(config, changed=set(changes))
        return _json(config.model_dump())

    async def get_stats(self, request: web.Request) -> web.Response:
        per_key = request.query.get("per_key", "") not in ("", "0", "false")
        return _json(self.counters.snapshot(per_key=per_key))

    async def reset_stats(self, request: web.Request) -> web.Response:
        self.counters.reset()
        return _json(self.counters.snapshot(per_key=False))


MOCK_PROVIDER = web.AppKey("mock_provider", MockProvider)


def build_app(config: MockConfig) -> web.Application:
    """The mock as an aiohttp app; its :class:`MockProvider` is ``app[MOCK_PROVIDER]``."""
    provider = MockProvider(config)
    app = web.Application(client_max_size=64 * 1024**2)
    app[MOCK_PROVIDER] = provider
    app.router.add_post("/v1/chat/completions", provider.chat_completions)
    app.router.add_post("/v1/embeddings", provider.embeddings)
    app.router.add_post("/v1/responses", provider.responses)
    app.router.add_get("/v1/models", provider.models)
    app.router.add_get("/health", provider.health)
    app.router.add_get("/control", provider.get_control)
    app.router.add_post("/control", provider.post_control)
    app.router.add_get("/stats", provider.get_stats)
    app.router.add_post("/stats/reset", provider.reset_stats)
    # OpenAI's Files and Batches API, answered with the same logic as the endpoints above.
    answers = {
        "/v1/chat/completions": (_chat_key, _chat_problem, _chat_answer),
        "/v1/embeddings": (_embeddings_key, _embeddings_problem, _embeddings_answer),
        "/v1/responses": (responses_key, responses_problem, responses_answer),
    }
    MockBatches(provider, answers).add_routes(app)
    return app


AppBuilder = Callable[[MockConfig], web.Application]


async def start_mock(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    build: AppBuilder = build_app,
    ssl_context: ssl.SSLContext | None = None,
    **config: Any,
) -> tuple[web.AppRunner, int]:
    """Serve the mock in this event loop; returns the runner (``await runner.cleanup()``).
    ``build`` makes the app: this OpenAI mock, or another provider's on the same core; with
    ``ssl_context`` it speaks https."""
    runner = web.AppRunner(
        build(MockConfig(**config)),
        access_log=None,
        handler_cancellation=True,  # a client that gives up ends its hung or slow request
        shutdown_timeout=0.1,  # a mock needs no graceful drain: stop() stays fast
    )
    await runner.setup()
    site = web.TCPSite(
        runner, host, port, reuse_address=True, backlog=4096, ssl_context=ssl_context
    )
    await site.start()
    return runner, int(runner.addresses[0][1])


def _parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, MockConfig]:
    parser = argparse.ArgumentParser(prog="python -m datamill_testing.mock_provider")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--parent-pid", type=int, help="exit when this parent process is gone")
    for name, field in MockConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if field.annotation is bool:
            action = argparse.BooleanOptionalAction
            parser.add_argument(
                flag, action=action, default=argparse.SUPPRESS, help=field.description
            )
        else:
            parser.add_argument(flag, default=argparse.SUPPRESS, help=field.description)
    args = parser.parse_args(argv)
    given = {name: getattr(args, name) for name in MockConfig.model_fields if hasattr(args, name)}
    given = {name: None if value in ("none", "null") else value for name, value in given.items()}
    try:
        return args, MockConfig.model_validate(given)
    except ValidationError as exc:
        parser.error(_describe(exc))


async def _watch_parent(parent_pid: int, stop: asyncio.Event) -> None:
    # Reparenting means the parent died without stopping us: never outlive it.
    while os.getppid() == parent_pid:  # noqa: ASYNC110 (no event exists for this)
        await asyncio.sleep(0.5)
    stop.set()


async def _serve(args: argparse.Namespace, config: MockConfig, build: AppBuilder) -> None:
    runner, port = await start_mock(args.host, args.port, build=build, **config.model_dump())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    watchdog = None
    if args.parent_pid:
        watchdog = asyncio.create_task(_watch_parent(args.parent_pid, stop))
    print(f"READY port={port}", flush=True)
    try:
        await stop.wait()
    finally:
        if watchdog is not None:
            watchdog.cancel()
        await runner.cleanup()


def _run(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def main(argv: list[str] | None = None, *, build: AppBuilder = build_app) -> None:
    """The command line of a mock server: ``--port 0`` prints ``READY port=<port>``."""
    args, config = _parse_args(argv)
    _run(_serve(args, config, build))


if __name__ == "__main__":
    main()
