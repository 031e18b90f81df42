"""The one final result of a request, as the executor and the native batch runner record it."""

from __future__ import annotations

from typing import Protocol

import orjson

from datamill.errors import ProviderError
from datamill.providers.base import ProviderResponse
from datamill.storage.records import RequestResult


class RequestRef(Protocol):
    """What a result needs to know of its request."""

    @property
    def id(self) -> int: ...

    @property
    def line(self) -> int: ...

    @property
    def custom_id(self) -> str: ...


def answered(
    request: RequestRef,
    batch_id: str,
    response: ProviderResponse,
    *,
    deployment: str,
    attempts: int,
    model: str | None,
    cost: float,
    now: float,
    native: bool = False,
) -> RequestResult:
    """A success line: the provider's body verbatim, its usage and what it cost."""
    usage = response.usage
    return RequestResult(
        request_id=request.id,
        batch_id=batch_id,
        line=request.line,
        custom_id=request.custom_id,
        ok=True,
        status_code=response.status_code,
        body=response.body,
        provider_request_id=response.request_id,
        error_code=None,
        error_message=None,
        deployment=deployment,
        attempts=attempts,
        input_tokens=usage.input_tokens,
        cached_tokens=usage.cached_tokens,
        output_tokens=usage.output_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        finished_at=now,
        native=native,
        model=model,
        cost=cost,
    )


def failed(
    request: RequestRef,
    batch_id: str,
    error: ProviderError,
    *,
    deployment: str | None,
    attempts: int,
    now: float,
    native: bool = False,
) -> RequestResult:
    """An error line: the category as its code, the provider's answer kept when it sent one."""
    return RequestResult(
        request_id=request.id,
        batch_id=batch_id,
        line=request.line,
        custom_id=request.custom_id,
        ok=False,
        status_code=error.status_code,
        body=orjson.dumps(error.body) if error.body is not None else None,
        provider_request_id=error.request_id,
        error_code=error.category.value,
        error_message=error.message,
        deployment=deployment,
        attempts=attempts,
        input_tokens=0,
        cached_tokens=0,
        output_tokens=0,
        reasoning_tokens=0,
        finished_at=now,
        native=native,
    )
