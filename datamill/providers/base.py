"""The provider contract.

A provider adapter translates one call (an OpenAI-format body) to its API family and back.
It never retries, never sleeps for rate limits and never touches the store: the engine and the
scheduler do that. It raises `ProviderError` with the right `ErrorCategory` for every failure,
so the engine can decide retry or final without knowing the provider.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from datamill.clock import Clock
from datamill.errors import ProviderError

# Lives beside errors.py (a ProviderError carries the hints of its answer); importable from here.
from datamill.ratelimit_hints import RateLimitHints as RateLimitHints

if TYPE_CHECKING:
    from datamill.providers.fields import FieldTable
    from datamill.providers.http import HttpPool
    from datamill.settings import DeploymentConfig


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


class Provider(Protocol):
    """An adapter for one API family, bound to one deployment.

    ``chat_fields`` and ``embedding_fields`` say which OpenAI request fields it can express
    (`datamill.providers.fields`); a request setting one it cannot is refused with a
    `bad_request` naming the field, never sent with the field dropped."""

    capabilities: Capabilities
    chat_fields: FieldTable
    embedding_fields: FieldTable

    async def complete(self, call: ProviderCall) -> ProviderResponse:
        """Run a chat completion (non-streaming)."""
        ...

    async def stream(self, call: ProviderCall) -> ProviderStream:
        """Start a streaming chat completion; returns once the provider accepted it, so a
        refusal (an error status) raises `ProviderError` before anything was streamed.
        Only called when ``capabilities.streaming`` is true."""
        ...

    async def embed(self, call: ProviderCall) -> ProviderResponse:
        """Create embeddings."""
        ...

    async def aclose(self) -> None:
        """Release what the adapter holds (not the shared HTTP pool)."""
        ...


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """What every adapter may use: the process-wide HTTP pool and the clock."""

    http: HttpPool
    clock: Clock


# An upstream is untrusted: a model list is read for at most this many pages and models.
MAX_LISTED_MODELS = 5000
MAX_MODEL_PAGES = 50


@runtime_checkable
class ModelLister(Protocol):
    """An adapter that can ask its upstream which models it serves (optional)."""

    async def list_models(self) -> list[dict[str, Any]]:
        """The upstream's models as OpenAI's Model objects (``id``, ``created``,
        ``owned_by``); raises `ProviderError` when the upstream cannot say."""
        ...


class ProviderFactory(Protocol):
    """Builds the adapter of one deployment; registered under a provider type name."""

    def __call__(self, deployment: DeploymentConfig, context: ProviderContext) -> Provider: ...


# -- native batch APIs (optional) ---------------------------------------------------------------


class NativeBatchState(StrEnum):
    """Where an upstream batch is, in terms every provider's batch API maps to."""

    running = "running"  # accepted, not finished: poll again later
    ended = "ended"  # finished: every request has a result, an error, or expired unprocessed
    failed = "failed"  # refused as a whole (bad input file, say): nothing ran
    cancelled = "cancelled"  # cancelled upstream; what finished before has results


@dataclass(frozen=True, slots=True)
class NativeRequest:
    """One request of an upstream batch. ``key`` is datamill's id for it, which the results
    carry back (it matches ``[A-Za-z0-9_-]{1,64}``, which every provider accepts)."""

    key: str
    endpoint: Endpoint
    body: dict[str, Any]  # OpenAI format, ``model`` already the upstream model


@dataclass(frozen=True, slots=True)
class NativeBatchStatus:
    state: NativeBatchState
    total: int = 0
    finished: int = 0  # with a result or an error so far
    message: str | None = None  # why it failed, when it did


@dataclass(frozen=True, slots=True)
class NativeResult:
    """The upstream outcome of one request: exactly one of ``response`` and ``error``.

    A request the upstream never processed (its batch expired or was cancelled first) gets
    no `NativeResult` at all: the engine resubmits it while the completion window allows."""

    key: str
    response: ProviderResponse | None = None
    error: ProviderError | None = None


class NativeBatchAPI(Protocol):
    """A provider's own batch API (OpenAI Batch, Anthropic Message Batches, Gemini batch
    mode), offered by adapters whose ``capabilities.native_batch`` is true as
    ``provider.native_batches``. Calls raise `ProviderError` like any provider call; the engine
    keeps the upstream ids durably, so every method may be called again after a crash."""

    max_requests: int  # requests one upstream batch may hold
    max_bytes: int  # bytes of request bodies one upstream batch may hold

    async def submit(self, requests: list[NativeRequest], *, endpoint: Endpoint) -> str:
        """Create an upstream batch of ``requests``; returns its upstream id.

        A request the provider cannot express is refused before anything is sent, with a
        non-retryable `ProviderError` that has no ``status_code`` (as `fields.unsupported`
        makes): the engine then splits the group until that request stands alone, and ends
        it with that error, so one bad request never sinks the others."""
        ...

    async def poll(self, batch_id: str) -> NativeBatchStatus:
        """The upstream batch's state."""
        ...

    def results(self, batch_id: str) -> AsyncIterator[NativeResult]:
        """The outcomes of an ended (or cancelled) upstream batch, in any order."""
        ...

    async def cancel(self, batch_id: str) -> None:
        """Ask the upstream to stop the batch (it may still end with some results)."""
        ...


@runtime_checkable
class NativeBatchLookup(Protocol):
    """Optional, for a `NativeBatchAPI` that can label an upstream batch and find it again
    by its label (OpenAI: the batch's ``metadata``).

    The engine labels each upstream batch with its job id. A worker that dies after a submit
    reached the upstream but before the upstream id was stored leaves a job whose batch may
    or may not exist: with a lookup, the next worker finds it instead of submitting those
    requests a second time."""

    async def submit(
        self, requests: list[NativeRequest], *, endpoint: Endpoint, label: str | None = None
    ) -> str:
        """As `NativeBatchAPI.submit`, labelling the upstream batch with ``label``."""
        ...

    async def find(self, label: str) -> str | None:
        """The upstream id of the batch labelled ``label``, or None if there is none."""
        ...
