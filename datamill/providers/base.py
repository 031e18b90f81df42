"""The provider contract.

A provider adapter translates one call (an OpenAI-format body) to its API family and back.
It never retries, never sleeps for rate limits and never touches the store: the engine and the
scheduler do that. It raises `ProviderError` with the right `ErrorCategory` for every failure,
so the engine can decide retry or final without knowing the provider.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from datamill.clock import Clock
from datamill.errors import ProviderError

# The shared values live below the adapters and the scheduler (types.py); importable from here.
from datamill.providers.types import MAX_TOKENS as MAX_TOKENS
from datamill.providers.types import Capabilities as Capabilities
from datamill.providers.types import ChatChunk as ChatChunk
from datamill.providers.types import Endpoint as Endpoint
from datamill.providers.types import ProviderCall as ProviderCall
from datamill.providers.types import ProviderResponse as ProviderResponse
from datamill.providers.types import ProviderStream as ProviderStream
from datamill.providers.types import Usage as Usage
from datamill.providers.types import clamp_tokens as clamp_tokens

# Lives beside errors.py (a ProviderError carries the hints of its answer); importable from here.
from datamill.ratelimit_hints import RateLimitHints as RateLimitHints

if TYPE_CHECKING:
    from datamill.providers.fields import FieldTable
    from datamill.providers.http import HttpPool
    from datamill.settings import DeploymentConfig


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
