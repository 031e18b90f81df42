"""The values every side of a provider call shares: what a call is, what it answers.

Adapters (`providers/`), the scheduler and the engine all use them; they import nothing of
the providers package, so everything can depend on them without a loop (the adapter's
protocol is in `providers/base.py`).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from datamill.ratelimit_hints import RateLimitHints


class Endpoint(StrEnum):
    """The OpenAI endpoints a batch line or a gateway call can target."""

    chat_completions = "/v1/chat/completions"  # chat.completion objects
    embeddings = "/v1/embeddings"  # embedding lists
    responses = "/v1/responses"  # response objects (passed through or translated to chat)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an adapter can do; the router never sends a call a provider cannot serve."""

    chat: bool = True
    embeddings: bool = False
    streaming: bool = False
    native_batch: bool = False
    # The upstream has OpenAI's /v1/responses: Responses calls pass through instead of being
    # translated to chat completions (providers/responses).
    responses: bool = False


@dataclass(frozen=True, slots=True)
class ProviderCall:
    """One call to a provider.

    ``body`` is the OpenAI-format request with ``model`` already set to the upstream model.
    ``raw`` is the same body as bytes when it is unchanged from the client's line, so
    pass-through adapters can send it without serialising again.
    """

    endpoint: Endpoint
    body: dict[str, Any]
    timeout: float
    raw: bytes | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the provider reported them (OpenAI names), each clamped to
    ``0..MAX_TOKENS``: an upstream's absurd or negative figure must neither break the store
    (its columns are 32-bit) nor make a negative cost that budgets never see."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    def __post_init__(self) -> None:
        # The usual case (four sane ints) costs four checks; anything else is clamped.
        inputs, outputs = self.input_tokens, self.output_tokens
        cached, reasoning = self.cached_tokens, self.reasoning_tokens
        if not (
            type(inputs) is int
            and type(outputs) is int
            and type(cached) is int
            and type(reasoning) is int
            and 0 <= inputs <= MAX_TOKENS
            and 0 <= outputs <= MAX_TOKENS
            and 0 <= cached <= MAX_TOKENS
            and 0 <= reasoning <= MAX_TOKENS
        ):
            for name in _USAGE_FIELDS:
                object.__setattr__(self, name, clamp_tokens(getattr(self, name)))

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @classmethod
    def of(cls, answer: Any) -> Usage:
        """The usage an OpenAI-format answer reports (a chat completion, its last streamed
        chunk, an embeddings list, or a response object); zeros when it reports none."""
        usage = answer.get("usage") if isinstance(answer, dict) else None
        if not isinstance(usage, dict):
            return cls()
        prompt = usage.get("prompt_tokens") or usage.get("input_tokens") or 0
        completion = usage.get("completion_tokens") or usage.get("output_tokens") or 0
        prompt_details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
        completion_details = usage.get("completion_tokens_details") or usage.get(
            "output_tokens_details"
        )
        cached = prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else 0
        reasoning = (
            completion_details.get("reasoning_tokens")
            if isinstance(completion_details, dict)
            else 0
        )
        # Whatever the upstream sent: `__post_init__` clamps what is not a sane count.
        return cls(
            input_tokens=prompt,
            output_tokens=completion,
            cached_tokens=cached or 0,
            reasoning_tokens=reasoning or 0,
        )


MAX_TOKENS = 2**31 - 1  # more than any request can use, and what a 32-bit column holds
_USAGE_FIELDS = ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens")


def clamp_tokens(value: Any) -> int:
    """A reported token count as an int in ``0..MAX_TOKENS``; 0 for what is not a number."""
    number: int
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        number = int(value) if math.isfinite(value) else 0
    else:
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):
            return 0
    return min(max(number, 0), MAX_TOKENS)


@dataclass(frozen=True, slots=True)
class ProviderResponse:
    """A successful answer. ``body`` is the OpenAI-format JSON as bytes, kept verbatim."""

    body: bytes
    usage: Usage
    request_id: str
    status_code: int = 200
    rate_limits: RateLimitHints | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# One OpenAI ``chat.completion.chunk`` object, as a dict.
ChatChunk = dict[str, Any]


@dataclass(slots=True)
class ProviderStream:
    """A streaming chat completion the provider accepted (it answered 2xx). (A stream of
    ``Endpoint.responses`` yields Responses events instead, see providers/responses.)

    ``chunks`` yields OpenAI ``chat.completion.chunk`` objects, whatever the provider's own
    event format; when the provider reports token usage, the last chunk carries it (with
    ``choices: []``, as OpenAI's ``include_usage`` chunk does), whether or not the client
    asked for it. A failure midway raises `ProviderError` from the iteration. ``close()`` must
    be called in every case; closing before the end abandons the upstream call.
    """

    chunks: AsyncIterator[ChatChunk]
    request_id: str
    close: Callable[[], Awaitable[None]]
    status_code: int = 200
    rate_limits: RateLimitHints | None = None
