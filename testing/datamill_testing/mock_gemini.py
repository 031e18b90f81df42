"""A mock of Google's Gemini API: real HTTP on loopback, on the OpenAI mock's core.

Routes (under ``/v1beta``, or ``/v1``): ``models/{model}:generateContent``,
``:streamGenerateContent`` (``?alt=sse``: ``data: <GenerateContentResponse>`` events; without
it, a JSON array), ``:embedContent``, ``:batchEmbedContents``, ``:batchGenerateContent``,
``GET batches/{id}`` and ``POST batches/{id}:cancel``, and ``GET models`` (the model list,
paginated with ``pageToken``: `listed_models` as models that generate content, and
``listed_embedding_models`` that only embed). Like the OpenAI mock it has ``/control``
(every `MockConfig` switch, plus the batch switches of `GeminiSwitches`), ``/stats``,
``/stats/reset`` and ``/health``; ``GET /requests`` returns the last request bodies received,
so tests can check the exact wire body. Requests are validated as Gemini validates them
(`gemini_checks`); errors come in Google's ``google.rpc.Status`` shape, with ``RetryInfo`` on
429s. Answers are deterministic; prompt markers ask for the rare cases: ``[blocked]`` (the
prompt is blocked), ``[safety]`` (the answer stops for safety), ``[cached]`` (cached tokens),
``[parallel]`` (every allowed function is called).

Run it with ``python -m datamill_testing.mock_gemini --port 0`` (``READY port=<port>``), or
in-process with ``start_mock(build=build_gemini_app)``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import random
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from datamill_testing import mock_provider
from datamill_testing.gemini_answers import candidate, key_of, prompt_text, stream_events
from datamill_testing.gemini_checks import (
    Invalid,
    camel_case,
    check_batch,
    check_embed,
    check_embed_batch,
    check_generate,
)
from datamill_testing.mock_provider import Bucket, Counters, MockConfig

DEFAULT_DIMENSIONS = 16
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch"
_OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatchOutput"


class GeminiSwitches(BaseModel):
    """Batch and embedding switches of the Gemini mock (set through ``POST /control``)."""

    model_config = ConfigDict(extra="forbid")

    batch_polls: int = Field(1, ge=0, description="GETs of a batch answered running first")
    batch_state: Literal["succeeded", "expired", "failed"] = "succeeded"
    batch_fail_every: int = Field(0, ge=0, description="every Nth request fails (0: none)")
    batch_expire_after: int = Field(0, ge=0, description="expired: requests that ran")
    embed_usage: bool = Field(False, description="report usageMetadata in embed answers")
    listed_embedding_models: list[str] = Field(
        default_factory=lambda: ["text-embedding-004"],
        description="models GET models lists with embedContent only (beside listed_models)",
    )
    models_page_size: int = Field(1000, ge=1, description="at most this many models per page")


def google_error(
    status: int, message: str, *, retry_delay: str | None = None, reason: str | None = None
) -> web.Response:
    """An error answer in Google's shape."""
    details: list[dict[str, Any]] = []
    if reason is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
            }
        )
    if retry_delay is not None:
        details.append({"@type": _RETRY_INFO, "retryDelay": retry_delay})
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": _STATUS_NAMES.get(status, "FAILED_PRECONDITION" if status < 500 else "INTERNAL"),
    }
    if details:
        error["details"] = details
    return web.Response(
        body=orjson.dumps({"error": error}), status=status, content_type="application/json"
    )


def _injected(status: int, why: str) -> web.Response:
    if status == 429:
        return google_error(429, f"Resource has been exhausted ({why}).", retry_delay="2s")
    return google_error(status, f"Request failed ({why}).")


def _json(payload: Any) -> web.Response:
    return web.Response(body=orjson.dumps(payload), content_type="application/json")


@dataclass
class _Batch:
    name: str
    model: str
    display_name: str
    requests: list[dict[str, Any]]
    created: str
    polls_left: int
    switches: GeminiSwitches  # as they were when the batch was created, as a real run is fixed
    state: str = "BATCH_STATE_PENDING"
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None


class GeminiMock:
    """The mock's state and handlers; one event loop, so the counters are exact."""

    def __init__(self, config: MockConfig) -> None:
        self.counters = Counters()
        self.switches = GeminiSwitches()
        self.requests: deque[dict[str, Any]] = deque(maxlen=200)
        self._batches: dict[str, _Batch] = {}
        self._prefix = secrets.token_hex(4)
        self._sequence = 0
        self.configure(config, changed=set(MockConfig.model_fields))

    def configure(self, config: MockConfig, *, changed: set[str]) -> None:
        self.config = config
        if "seed" in changed:
            self._random = random.Random(config.seed)
        if changed & {"rpm", "burst_seconds"}:
            self._bucket = None
            if config.rpm is not None:
                self._bucket = Bucket(config.rpm, max(1.0, config.rpm / 60 * config.burst_seconds))

    # -- the model routes ---------------------------------------------------------------------

    async def models(self, request: web.Request) -> web.StreamResponse:
        target = request.match_info["target"]
        model, _, method = target.rpartition(":")
        handlers: dict[str, Callable[..., Any]] = {
            "generateContent": self._generate,
            "streamGenerateContent": self._stream,
            "embedContent": self._embed,
            "batchEmbedContents": self._embed,
            "batchGenerateContent": self._create_batch,
        }
        handler = handlers.get(method)
        if handler is None or not model:
            return google_error(404, f"Method not found: {target}")
        counters = self.counters
        raw = await request.read()
        counters.total += 1
        counters.in_flight += 1
        counters.peak_in_flight = max(counters.peak_in_flight, counters.in_flight)
        try:
            response: web.StreamResponse = await self._admit(request, raw, model, method)
            if response.status == 200:
                body = camel_case(orjson.loads(raw))
                response = await handler(request, body, model, method)
            counters.by_status[response.status] += 1
            return response
        finally:
            counters.in_flight -= 1

    async def _admit(
        self, request: web.Request, raw: bytes, model: str, method: str
    ) -> web.StreamResponse:
        """Parse, authenticate and validate; apply the fault switches. 200 means go on."""
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return google_error(400, "Invalid JSON payload received.")
        self.requests.append({"path": request.path, "query": request.query_string, "body": body})
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return google_error(
                403,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
            )
        if key == "invalid-key":
            return google_error(
                400, "API key not valid. Please pass a valid API key.", reason="API_KEY_INVALID"
            )
        if model == "missing-model":
            return google_error(
                404,
                f"models/{model} is not found for API version "
                f"{request.match_info['version']}, or is not supported for "
                f"{method}.",
            )
        self.counters.count_call(key_of(body))
        config = self.config
        if config.force_status is not None:
            return _injected(config.force_status, "forced")
        if config.fail_next:
            config.fail_next -= 1
            return _injected(config.error_status, "fail_next")
        body = camel_case(body)
        try:
            if method in ("generateContent", "streamGenerateContent"):
                check_generate(body)
            elif method == "embedContent":
                check_embed(body, f"models/{model}")
            elif method == "batchEmbedContents":
                check_embed_batch(body, f"models/{model}")
            else:
                check_batch(body)
        except Invalid as exc:
            return google_error(400, str(exc))
        if config.max_concurrency and self.counters.in_flight > config.max_concurrency:
            return _injected(429, "max_concurrency")
        if self._bucket is not None:
            wait = self._bucket.take(time.monotonic())
            if wait:
                return google_error(
                    429,
                    f"Resource has been exhausted: {config.rpm} requests per minute.",
                    retry_delay=f"{max(1, math.ceil(wait))}s",
                )
        if config.error_rate and self._random.random() < config.error_rate:
            return _injected(config.error_status, "error_rate")
        if config.hang_rate and self._random.random() < config.hang_rate:
            self.counters.hung += 1
            await asyncio.sleep(config.hang_seconds)
        if config.latency_ms:
            await asyncio.sleep(config.latency_ms / 1000)
        return web.Response(status=200)

    async def _generate(
        self, request: web.Request, body: dict[str, Any], model: str, method: str
    ) -> web.StreamResponse:
        answer = self._answer(body, model)
        self.counters.count_ok(key_of(body))
        return _json(answer)

    async def _stream(
        self, request: web.Request, body: dict[str, Any], model: str, method: str
    ) -> web.StreamResponse:
        events = stream_events(self._answer(body, model))
        self.counters.count_ok(key_of(body))
        if request.query.get("alt") != "sse":
            return _json(events)  # without alt=sse Gemini streams one JSON array
        counters = self.counters
        counters.streams += 1
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await stream.prepare(request)
        pause = self.config.stream_chunk_ms / 1000
        try:
            for event in events:
                await stream.write(b"data: " + orjson.dumps(event) + b"\r\n\r\n")
                if pause:
                    await asyncio.sleep(pause)
            await stream.write_eof()
        except (asyncio.CancelledError, ConnectionError):
            counters.streams_disconnected += 1
            raise
        counters.streams_completed += 1
        return stream

    async def _embed(
        self, request: web.Request, body: dict[str, Any], model: str, method: str
    ) -> web.StreamResponse:
        single = method == "embedContent"
        items = [body] if single else body["requests"]
        vectors = []
        tokens = 0
        for item in items:
            text = " ".join(p.get("text", "") for p in item["content"]["parts"])
            tokens += max(1, len(text) // 4)
            dimensions = item.get("outputDimensionality") or DEFAULT_DIMENSIONS
            vectors.append({"values": mock_provider._vector(text, dimensions)})
        answer: dict[str, Any] = {"embedding": vectors[0]} if single else {"embeddings": vectors}
        if self.switches.embed_usage:
            answer["usageMetadata"] = {"promptTokenCount": tokens, "totalTokenCount": tokens}
        self.counters.count_ok(key_of(body))
        return _json(answer)

    # -- batches ------------------------------------------------------------------------------

    async def _create_batch(
        self, request: web.Request, body: dict[str, Any], model: str, method: str
    ) -> web.StreamResponse:
        self._sequence += 1
        name = f"batches/{self._prefix}{self._sequence:08d}"
        spec = body["batch"]
        batch = _Batch(
            name=name,
            model=f"models/{model}",
            display_name=spec["displayName"],
            requests=spec["inputConfig"]["requests"]["requests"],
            created=_now(),
            polls_left=self.switches.batch_polls,
            switches=self.switches,
        )
        self._batches[name] = batch
        self.counters.count_ok(name)
        return _json(self._operation(batch))

    async def _batch_call(self, request: web.Request) -> web.Response | None:
        """Log a call on a batch and check its key; an error answer, or None to go on."""
        raw = await request.read()
        body = orjson.loads(raw) if raw else None
        self.requests.append({"path": request.path, "query": request.query_string, "body": body})
        if not (request.headers.get("x-goog-api-key") or request.query.get("key")):
            return google_error(403, "Method doesn't allow unregistered callers.")
        return None

    async def get_batch(self, request: web.Request) -> web.Response:
        refused = await self._batch_call(request)
        if refused is not None:
            return refused
        batch = self._batches.get(f"batches/{request.match_info['name']}")
        if batch is None:
            return google_error(404, "Requested entity was not found.")
        if batch.state in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING"):
            if batch.polls_left > 0:
                batch.polls_left -= 1
                batch.state = "BATCH_STATE_RUNNING"
            else:
                self._finish(batch)
        return _json(self._operation(batch))

    async def post_batch(self, request: web.Request) -> web.Response:
        refused = await self._batch_call(request)
        if refused is not None:
            return refused
        name, _, method = request.match_info["name"].partition(":")
        batch = self._batches.get(f"batches/{name}")
        if method != "cancel":
            return google_error(404, f"Method not found: {method}")
        if batch is None:
            return google_error(404, "Requested entity was not found.")
        if batch.state in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING"):
            batch.state = "BATCH_STATE_CANCELLED"
        return _json({})

    def _finish(self, batch: _Batch) -> None:
        switches = batch.switches
        if switches.batch_state == "failed":
            batch.state = "BATCH_STATE_FAILED"
            batch.error = {"code": 3, "message": "The batch input could not be processed."}
            return
        expired = switches.batch_state == "expired"
        batch.state = "BATCH_STATE_EXPIRED" if expired else "BATCH_STATE_SUCCEEDED"
        for position, item in enumerate(batch.requests):
            if expired and position >= switches.batch_expire_after:
                continue  # never ran
            outcome: dict[str, Any] = {}
            if "metadata" in item:
                outcome["metadata"] = item["metadata"]
            if switches.batch_fail_every and (position + 1) % switches.batch_fail_every == 0:
                outcome["error"] = {"code": 13, "message": "Internal error encountered."}
            else:
                outcome["response"] = self._answer(item["request"], batch.model)
            batch.outcomes.append(outcome)

    def _operation(self, batch: _Batch) -> dict[str, Any]:
        failed = sum("error" in outcome for outcome in batch.outcomes)
        done = batch.state not in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING")
        metadata: dict[str, Any] = {
            "@type": _BATCH_TYPE,
            "model": batch.model,
            "displayName": batch.display_name,
            "createTime": batch.created,
            "updateTime": _now(),
            "batchStats": {
                "requestCount": str(len(batch.requests)),
                "successfulRequestCount": str(len(batch.outcomes) - failed),
                "failedRequestCount": str(failed),
                "pendingRequestCount": str(0 if done else len(batch.requests)),
            },
            "state": batch.state,
        }
        operation: dict[str, Any] = {"name": batch.name, "metadata": metadata, "done": done}
        if batch.error is not None:
            operation["error"] = batch.error
        elif done:
            output = {"inlinedResponses": {"inlinedResponses": batch.outcomes}}
            metadata["output"] = output
            metadata["endTime"] = _now()
            operation["response"] = {"@type": _OUTPUT_TYPE, **output}
        return operation

    # -- answers ------------------------------------------------------------------------------

    def _answer(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        self._sequence += 1
        prompt = prompt_text(body)
        key = key_of(body)
        config = body.get("generationConfig") or {}
        prompt_tokens = max(1, len(prompt) // 4)
        usage: dict[str, Any] = {"promptTokenCount": prompt_tokens}
        answer: dict[str, Any] = {
            "usageMetadata": usage,
            "modelVersion": model.removeprefix("models/"),
            "responseId": f"{self._prefix}{self._sequence:012x}",
        }
        if "[blocked]" in prompt:
            answer["promptFeedback"] = {"blockReason": "SAFETY"}
            usage["totalTokenCount"] = prompt_tokens
            return answer
        rng = random.Random(
            hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).digest()
        )
        candidates = []
        output_tokens = 0
        for index in range(config.get("candidateCount") or 1):
            found, tokens = candidate(body, key, index, rng)
            candidates.append(found)
            output_tokens += tokens
        answer["candidates"] = candidates
        usage["candidatesTokenCount"] = output_tokens
        thoughts = 5 if config.get("thinkingConfig") else 0
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        if "[cached]" in prompt:
            usage["cachedContentTokenCount"] = prompt_tokens // 2
        usage["totalTokenCount"] = prompt_tokens + output_tokens + thoughts
        return answer

    # -- control ------------------------------------------------------------------------------

    async def list_models(self, request: web.Request) -> web.Response:
        """``GET models``: `listed_models` (generateContent) then the embedding-only ones, a
        page of at most ``pageSize`` (default 50, at most 1000) and `models_page_size`;
        ``nextPageToken`` is opaque (base64 with ``+``: it needs escaping in a URL)."""
        self.requests.append({"path": request.path, "query": request.query_string, "body": None})
        self.counters.total += 1
        if not (request.headers.get("x-goog-api-key") or request.query.get("key")):
            return google_error(403, "Method doesn't allow unregistered callers.")
        if self.config.force_status is not None:
            return _injected(self.config.force_status, "forced")
        methods = ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]
        models = [(name, methods) for name in self.config.listed_models] + [
            (name, ["embedContent"]) for name in self.switches.listed_embedding_models
        ]
        try:
            size = min(int(request.query.get("pageSize", "50")), 1000)
            start = _page_start(request.query.get("pageToken"))
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return google_error(400, "Invalid pageSize or pageToken.")
        page = models[start : start + min(max(size, 1), self.switches.models_page_size)]
        body: dict[str, Any] = {
            "models": [
                {
                    "name": f"models/{name}",
                    "version": "001",
                    "displayName": name.replace("-", " ").title(),
                    "inputTokenLimit": 1_048_576,
                    "outputTokenLimit": 8192,
                    "supportedGenerationMethods": supported,
                }
                for name, supported in page
            ]
        }
        if start + len(page) < len(models):
            body["nextPageToken"] = _page_token(start + len(page))
        return _json(body)

    async def health(self, request: web.Request) -> web.Response:
        return _json({"ok": True})

    async def get_control(self, request: web.Request) -> web.Response:
        return _json({**self.config.model_dump(), **self.switches.model_dump()})

    async def post_control(self, request: web.Request) -> web.Response:
        try:
            changes = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return google_error(400, "Invalid JSON payload received.")
        if not isinstance(changes, dict):
            return google_error(400, "The control body must be a JSON object.")
        ours = {k: changes.pop(k) for k in list(changes) if k in GeminiSwitches.model_fields}
        try:
            config = MockConfig.model_validate({**self.config.model_dump(), **changes})
            switches = GeminiSwitches.model_validate({**self.switches.model_dump(), **ours})
        except ValidationError as exc:
            return google_error(400, mock_provider._describe(exc))
        self.configure(config, changed=set(changes))
        self.switches = switches
        return await self.get_control(request)

    async def get_stats(self, request: web.Request) -> web.Response:
        per_key = request.query.get("per_key", "") not in ("", "0", "false")
        return _json(self.counters.snapshot(per_key=per_key))

    async def reset_stats(self, request: web.Request) -> web.Response:
        self.counters.reset()
        self.requests.clear()
        return _json(self.counters.snapshot(per_key=False))

    async def get_requests(self, request: web.Request) -> web.Response:
        return _json({"requests": list(self.requests)})


_TOKEN_PREFIX = b"\xfb\xef\xbe"  # base64 "++++": a token sent unescaped reads as spaces


def _page_token(start: int) -> str:
    return base64.b64encode(_TOKEN_PREFIX + f"after {start}".encode()).decode()


def _page_start(token: str | None) -> int:
    """Where the page a ``pageToken`` asks for starts (ValueError if it is not ours)."""
    if not token:
        return 0
    decoded = base64.b64decode(token, validate=True)
    words = decoded.removeprefix(_TOKEN_PREFIX).decode().split(" ")
    if not decoded.startswith(_TOKEN_PREFIX) or len(words) != 2 or words[0] != "after":
        raise ValueError(token)
    return int(words[1])


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


GEMINI_MOCK = web.AppKey("gemini_mock", GeminiMock)


def build_gemini_app(config: MockConfig) -> web.Application:
    """The Gemini mock as an aiohttp app; its state is ``app[GEMINI_MOCK]``."""
    mock = GeminiMock(config)
    app = web.Application(client_max_size=64 * 1024**2)
    app[GEMINI_MOCK] = mock
    app.router.add_get(r"/{version:v1beta|v1}/models", mock.list_models)
    app.router.add_post(r"/{version:v1beta|v1}/models/{target}", mock.models)
    app.router.add_get(r"/{version:v1beta|v1}/batches/{name}", mock.get_batch)
    app.router.add_post(r"/{version:v1beta|v1}/batches/{name}", mock.post_batch)
    app.router.add_get("/health", mock.health)
    app.router.add_get("/control", mock.get_control)
    app.router.add_post("/control", mock.post_control)
    app.router.add_get("/stats", mock.get_stats)
    app.router.add_post("/stats/reset", mock.reset_stats)
    app.router.add_get("/requests", mock.get_requests)
    return app


def main(argv: list[str] | None = None) -> None:
    mock_provider.main(argv, build=build_gemini_app)


if __name__ == "__main__":
    main()
