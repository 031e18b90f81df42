"""What a native job's requests end with: keys upstream, and the results recorded.

A request travels upstream under the key ``r<request id>`` (``[A-Za-z0-9_-]``, as every
provider accepts); its result comes back under the same key. Results are built as the
online executor builds them, with ``native`` set when the provider's batch API produced them
(those are billed at its batch prices).
"""

from __future__ import annotations

import re

import orjson

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.base import ProviderResponse
from datamill.storage.records import NativeMember, RequestResult

_KEY = re.compile(r"r([0-9]{1,19})")


def request_key(request_id: int) -> str:
    return f"r{request_id}"


def request_id_of(key: str) -> int | None:
    """The request id a key names; None for a key datamill did not make."""
    match = _KEY.fullmatch(key)
    return int(match.group(1)) if match else None


def success(
    member: NativeMember,
    batch_id: str,
    response: ProviderResponse,
    *,
    deployment: str,
    cost: float,
    model: str | None,
    now: float,
) -> RequestResult:
    usage = response.usage
    return RequestResult(
        request_id=member.id,
        batch_id=batch_id,
        line=member.line,
        custom_id=member.custom_id,
        ok=True,
        status_code=response.status_code,
        body=response.body,
        provider_request_id=response.request_id,
        error_code=None,
        error_message=None,
        deployment=deployment,
        attempts=member.attempts,
        input_tokens=usage.input_tokens,
        cached_tokens=usage.cached_tokens,
        output_tokens=usage.output_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        finished_at=now,
        native=True,
        model=model,
        cost=cost,
    )


def failure(
    member: NativeMember,
    batch_id: str,
    error: ProviderError,
    *,
    deployment: str | None,
    now: float,
    native: bool,
) -> RequestResult:
    """A final error line. ``native``: the upstream batch API answered it."""
    return RequestResult(
        request_id=member.id,
        batch_id=batch_id,
        line=member.line,
        custom_id=member.custom_id,
        ok=False,
        status_code=error.status_code,
        body=orjson.dumps(error.body) if error.body is not None else None,
        provider_request_id=error.request_id,
        error_code=error.category.value,
        error_message=error.message,
        deployment=deployment,
        attempts=member.attempts,
        input_tokens=0,
        cached_tokens=0,
        output_tokens=0,
        reasoning_tokens=0,
        finished_at=now,
        native=native,
    )


def bad_body() -> ProviderError:
    return ProviderError(
        ErrorCategory.bad_request, "the request body is not a JSON object with a model"
    )
