"""The built-in `sim` provider: an in-process LLM simulator, for users with no keys and for tests.

It answers chat completions and embeddings in OpenAI's format, with plausible text, valid
structured outputs and tool calls. Answers are deterministic functions of the request (and the
deployment's ``seed``): the same body gets the same content, only ``id`` and ``created`` differ.
Faults are not: latency, injected 500s and the rate limit come from one random stream per
provider instance, so a retry of a failed request can succeed.

Options (``deployments.<name>.options``), all optional: ``latency_ms``, ``latency_dist``
(``fixed`` or ``lognormal`` with median ``latency_ms`` and ``latency_sigma``), ``error_rate``,
``rate_limit_rpm`` (a token bucket holding one minute of requests), ``seed`` and
``embedding_dimensions``.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import secrets
import struct
from collections.abc import AsyncIterator
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from datamill.clock import Clock
from datamill.errors import ErrorCategory, ProviderError
from datamill.nlp.tokens import estimate_request_tokens, estimate_tokens
from datamill.providers.base import (
    Capabilities,
    ChatChunk,
    ProviderCall,
    ProviderContext,
    ProviderResponse,
    ProviderStream,
    RateLimitHints,
    Usage,
)
from datamill.providers.chunks import chunks_from_completion
from datamill.providers.fields import (
    CHAT_FIELDS,
    EMBEDDING_FIELDS,
    MESSAGE_FEATURES,
    YES,
    FieldTable,
)
from datamill.providers.options import parse_options as parse_provider_options
from datamill.providers.sim.schema_instance import instance_for_schema
from datamill.settings import DeploymentConfig

_MAX_DIMENSIONS = 16384
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_IGNORED_FIELDS = frozenset({"stream", "stream_options", "user"})  # no effect on the content
_WORDS = (
    "approach",
    "context",
    "detail",
    "evidence",
    "example",
    "outcome",
    "pattern",
    "question",
    "request",
    "result",
    "signal",
    "summary",
)
_QUALITIES = ("clear", "careful", "concise", "consistent", "direct", "practical", "simple")
_SENTENCES = (
    "The {q} {w} points to a {q2} {w2}.",
    "A {q} {w} works well here, with a {q2} {w2} to check it.",
    "In short, the {w} looks {q}, and the {w2} is {q2}.",
    "Start from the {q} {w}, then confirm the {w2}.",
)


class SimOptions(BaseModel):
    """What ``deployments.<name>.options`` may say for a `sim` deployment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: float = Field(default=0.0, ge=0, description="fixed latency, or lognormal median")
    latency_dist: Literal["fixed", "lognormal"] = "fixed"
    latency_sigma: float = Field(default=0.5, ge=0, description="lognormal shape")
    error_rate: float = Field(default=0.0, ge=0, le=1, description="share of calls failing 500")
    rate_limit_rpm: int | None = Field(default=None, gt=0, description="requests per minute")
    seed: int = 0
    embedding_dimensions: int = Field(default=256, gt=0, le=_MAX_DIMENSIONS)


def parse_options(deployment: DeploymentConfig) -> SimOptions:
    """Validate a deployment's options; `ConfigError` names ``deployments.<name>.options.<key>``."""
    return parse_provider_options(deployment, SimOptions)


class _TokenBucket:
    """Requests per minute, refilled continuously; holds one minute's worth at most."""

    def __init__(self, rpm: int, clock: Clock) -> None:
        self.capacity = float(rpm)
        self.rate = rpm / 60.0  # tokens per second
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock.monotonic()

    def take(self) -> float | None:
        """Take one token; return None, or the seconds until one is free."""
        now = self.clock.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) / self.rate

    def hints(self) -> RateLimitHints:
        return RateLimitHints(
            limit_requests=int(self.capacity),
            remaining_requests=int(self.tokens),
            reset_requests=(self.capacity - self.tokens) / self.rate,
        )


class SimProvider:
    """A simulated provider. Never does I/O; sleeps only through the injected clock."""

    capabilities = Capabilities(chat=True, embeddings=True, streaming=True)
    # It simulates an OpenAI-compatible server: every field is accepted, as such a server does.
    chat_fields: FieldTable = dict.fromkeys(CHAT_FIELDS + MESSAGE_FEATURES, YES)
    embedding_fields: FieldTable = dict.fromkeys(EMBEDDING_FIELDS, YES)

    def __init__(self, deployment: DeploymentConfig, context: ProviderContext) -> None:
        self.options = parse_options(deployment)
        self._clock = context.clock
        self._faults = random.Random(self.options.seed)
        self._seed = f"sim:{self.options.seed}:".encode()  # mixed into every answer's hash
        self._bucket = (
            _TokenBucket(self.options.rate_limit_rpm, context.clock)
            if self.options.rate_limit_rpm
            else None
        )
        latency = self.options.latency_ms / 1000.0
        self._log_median = math.log(latency) if latency > 0 else 0.0

    async def complete(self, call: ProviderCall) -> ProviderResponse:
        request_id = f"req_sim_{secrets.token_hex(12)}"
        hints = self._admit(request_id)
        body = call.body
        try:
            _check_chat(body)
            answer, usage = _chat_answer(body, random.Random(self._request_seed(body)))
        except _BadRequest as exc:
            raise _bad_request(exc.message, exc.param, request_id) from None
        await self._delay(call.timeout, request_id)
        answer["created"] = int(self._clock.now())
        return ProviderResponse(
            body=orjson.dumps(answer), usage=usage, request_id=request_id, rate_limits=hints
        )

    async def stream(self, call: ProviderCall) -> ProviderStream:
        """The completion `complete` would give, as OpenAI streams it: the latency passes
        before the first chunk, the rest follows at once."""
        response = await self.complete(call)
        chunks = chunks_from_completion(orjson.loads(response.body))

        async def produce() -> AsyncIterator[ChatChunk]:
            for chunk in chunks:
                yield chunk

        async def close() -> None:
            return None

        return ProviderStream(
            chunks=produce(),
            request_id=response.request_id,
            close=close,
            rate_limits=response.rate_limits,
        )

    async def embed(self, call: ProviderCall) -> ProviderResponse:
        request_id = f"req_sim_{secrets.token_hex(12)}"
        hints = self._admit(request_id)
        body = call.body
        try:
            inputs = _check_embeddings(body)
        except _BadRequest as exc:
            raise _bad_request(exc.message, exc.param, request_id) from None
        dimensions = body.get("dimensions") or self.options.embedding_dimensions
        await self._delay(call.timeout, request_id)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(inputs):
            vector = _unit_vector(self._seed + orjson.dumps(item), dimensions)
            embedding: Any = (
                base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
                if as_base64
                else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        prompt_tokens, _ = estimate_request_tokens(body)
        answer = {
            "object": "list",
            "data": data,
            "model": body.get("model"),
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        }
        return ProviderResponse(
            body=orjson.dumps(answer),
            usage=Usage(input_tokens=prompt_tokens),
            request_id=request_id,
            rate_limits=hints,
        )

    async def aclose(self) -> None:
        return None

    def _admit(self, request_id: str) -> RateLimitHints | None:
        """Apply the rate limit: a 429 with the seconds until a request is allowed again."""
        if self._bucket is None:
            return None
        wait = self._bucket.take()
        if wait is None:
            return self._bucket.hints()
        message = (
            f"Rate limit reached: limit {self.options.rate_limit_rpm} requests per minute "
            f"(simulated). Please try again in {wait:.3f}s."
        )
        body = _error_body(message, "requests", code="rate_limit_exceeded")
        raise ProviderError(
            ErrorCategory.rate_limited,
            message,
            status_code=429,
            body=body,
            retry_after=wait,
            request_id=request_id,
            rate_limits=self._bucket.hints(),
        )

    async def _delay(self, timeout: float, request_id: str) -> None:
        """Sleep the simulated latency, then maybe fail with a simulated 500."""
        options = self.options
        if options.latency_ms > 0:
            if options.latency_dist == "lognormal":
                seconds = self._faults.lognormvariate(self._log_median, options.latency_sigma)
            else:
                seconds = options.latency_ms / 1000.0
            if seconds > timeout:
                await self._clock.sleep(timeout)
                raise ProviderError(
                    ErrorCategory.timeout,
                    f"no answer within {timeout:g}s (simulated latency {seconds:.3f}s)",
                    request_id=request_id,
                )
            await self._clock.sleep(seconds)
        if options.error_rate > 0 and self._faults.random() < options.error_rate:
            message = "The server had an error while processing your request (simulated)."
            raise ProviderError(
                ErrorCategory.server_error,
                message,
                status_code=500,
                body=_error_body(message, "server_error"),
                request_id=request_id,
            )

    def _request_seed(self, body: dict[str, Any]) -> int:
        content = {k: v for k, v in body.items() if k not in _IGNORED_FIELDS}
        digest = hashlib.sha256(self._seed + orjson.dumps(content, option=orjson.OPT_SORT_KEYS))
        return int.from_bytes(digest.digest()[:8], "big")


def create_sim_provider(deployment: DeploymentConfig, context: ProviderContext) -> SimProvider:
    """The `ProviderFactory` of the ``sim`` provider type."""
    return SimProvider(deployment, context)


# --- requests --------------------------------------------------------------------------------


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def _error_body(
    message: str, kind: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _bad_request(message: str, param: str | None, request_id: str) -> ProviderError:
    return ProviderError(
        ErrorCategory.bad_request,
        message,
        status_code=400,
        body=_error_body(message, "invalid_request_error", param=param),
        request_id=request_id,
    )


def _check_model(body: dict[str, Any]) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _BadRequest("you must provide a model parameter", "model")
    if model.startswith("reject"):
        raise _BadRequest(
            f"The model {model!r} rejects every request (simulated: model names starting "
            "with 'reject' test the error path).",
            "model",
        )


def _check_chat(body: dict[str, Any]) -> None:
    _check_model(body)
    messages = body.get("messages")
    if messages is None:
        raise _BadRequest("Missing required parameter: 'messages'.", "messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("'messages' must be a non-empty array of messages.", "messages")
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        param = f"messages[{index}].role"
        if role is None:
            raise _BadRequest(f"Missing required parameter: '{param}'.", param)
        if role not in _ROLES:
            raise _BadRequest(f"Invalid value for '{param}': {role!r}.", param)
    for key, most in (("max_tokens", None), ("max_completion_tokens", None), ("n", 128)):
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise _BadRequest(f"Invalid '{key}': expected an integer of at least 1.", key)
        if most is not None and value > most:
            raise _BadRequest(f"Invalid '{key}': at most {most}.", key)


def _check_embeddings(body: dict[str, Any]) -> list[Any]:
    _check_model(body)
    data = body.get("input")
    if data is None:
        raise _BadRequest("Missing required parameter: 'input'.", "input")
    items = [data] if isinstance(data, str) or _is_token_list(data) else data
    if not isinstance(items, list) or not items:
        raise _BadRequest("'input' must be a non-empty string or array.", "input")
    for index, item in enumerate(items):
        if not (isinstance(item, str) and item) and not _is_token_list(item):
            raise _BadRequest(f"'input[{index}]' must be a non-empty string.", "input")
    dimensions = body.get("dimensions")
    if dimensions is not None and (
        not isinstance(dimensions, int) or not 1 <= dimensions <= _MAX_DIMENSIONS
    ):
        message = f"Invalid 'dimensions': expected an integer from 1 to {_MAX_DIMENSIONS}."
        raise _BadRequest(message, "dimensions")
    return items


def _is_token_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(t, int) for t in value)


# --- answers ---------------------------------------------------------------------------------


def _chat_answer(body: dict[str, Any], rng: random.Random) -> tuple[dict[str, Any], Usage]:
    """The answer (``created`` left for the caller) and its usage."""
    prompt_tokens, budget = estimate_request_tokens(body)
    has_budget = "max_completion_tokens" in body or "max_tokens" in body
    tools = _forced_tools(body)
    choices = []
    completion_tokens = 0
    for index in range(body.get("n") or 1):
        if tools:
            message = _tool_call(rng.choice(tools), rng)
            function = message["tool_calls"][0]["function"]
            tokens = estimate_tokens(function["name"]) + estimate_tokens(function["arguments"])
            finish = "tool_calls"
        else:
            content = _content(body, rng)
            tokens = estimate_tokens(content)
            finish = "stop"
            if has_budget and tokens > budget:
                content, tokens, finish = *_truncate(content, budget), "length"
            message = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
        completion_tokens += tokens
        choices.append(
            {"index": index, "message": message, "logprobs": None, "finish_reason": finish}
        )
    answer = {
        "id": f"chatcmpl-sim-{secrets.token_hex(12)}",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
        "system_fingerprint": "sim",
    }
    return answer, Usage(input_tokens=prompt_tokens, output_tokens=completion_tokens)


def _content(body: dict[str, Any], rng: random.Random) -> str:
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_schema":
        spec = response_format.get("json_schema") if isinstance(response_format, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise _BadRequest(
                "Missing required parameter: 'response_format.json_schema.schema'.",
                "response_format.json_schema.schema",
            )
        try:
            value = instance_for_schema(schema, rng)
        except ValueError as exc:
            raise _BadRequest(
                f"Invalid schema for response_format: {exc}", "response_format"
            ) from None
        return orjson.dumps(value).decode()
    if kind == "json_object":
        answer = {"answer": _sentence(rng), "confidence": round(rng.uniform(0.5, 0.99), 2)}
        return orjson.dumps(answer).decode()
    text = f'Simulated answer to "{_topic(body["messages"])}": {_sentence(rng)}'
    return f"{text} {_sentence(rng)}" if rng.random() < 0.5 else text


def _sentence(rng: random.Random) -> str:
    template = rng.choice(_SENTENCES)
    return template.format(
        q=rng.choice(_QUALITIES),
        q2=rng.choice(_QUALITIES),
        w=rng.choice(_WORDS),
        w2=rng.choice(_WORDS),
    )


def _topic(messages: list[dict[str, Any]]) -> str:
    """The start of the last user message (else the last message), on one line."""
    chosen = next((m for m in reversed(messages) if m.get("role") == "user"), messages[-1])
    content = chosen.get("content")
    if isinstance(content, list):
        content = " ".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    if not isinstance(content, str) or not content.strip():
        return "your message"
    words = content[:240].split()
    topic = " ".join(words[:8])
    return topic if len(words) <= 8 and len(topic) <= 60 else topic[:60].rstrip() + "…"


def _truncate(text: str, budget: int) -> tuple[str, int]:
    """Cut ``text`` to at most ``budget`` estimated tokens, as a model stopped by max_tokens."""
    tokens = estimate_tokens(text)
    while tokens > budget and text:
        text = text[: min(len(text) - 1, len(text) * budget // tokens)]
        tokens = estimate_tokens(text)
    return text, tokens


def _forced_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The functions one of which the model must call (empty: it answers with text)."""
    choice = body.get("tool_choice")
    tools = [
        t["function"]
        for t in body.get("tools") or ()
        if isinstance(t, dict)
        and t.get("type") == "function"
        and isinstance(t.get("function"), dict)
    ]
    if choice == "required":
        if not tools:
            raise _BadRequest(
                "tool_choice is 'required' but no function tools are given.", "tool_choice"
            )
        return tools
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        named = [tool for tool in tools if tool.get("name") == name]
        if not named:
            message = f"tool_choice names function {name!r}, which is not in 'tools'."
            raise _BadRequest(message, "tool_choice")
        return named[:1]
    return []


def _tool_call(tool: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    parameters = tool.get("parameters")
    try:
        arguments = instance_for_schema(parameters, rng) if isinstance(parameters, dict) else {}
    except ValueError as exc:
        raise _BadRequest(
            f"Invalid schema for function {tool.get('name')!r}: {exc}", "tools"
        ) from None
    return {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "annotations": [],
        "tool_calls": [
            {
                "id": f"call_{rng.getrandbits(96):024x}",
                "type": "function",
                "function": {
                    "name": tool.get("name"),
                    "arguments": orjson.dumps(arguments).decode(),
                },
            }
        ],
    }


def _unit_vector(key: bytes, dimensions: int) -> list[float]:
    """A deterministic unit vector for ``key``, from SHAKE-256 bytes (fast: no Python RNG loop)."""
    raw = hashlib.shake_256(key).digest(2 * dimensions)
    values = struct.unpack(f"<{dimensions}h", raw)
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]
