"""What a native job's requests end with: keys upstream, and the results recorded.

A request travels upstream under the key ``r<request id>`` (``[A-Za-z0-9_-]``, as every
provider accepts); its result comes back under the same key. Results are built as the
online executor builds them, with ``native`` set when the provider's batch API produced them
(those are billed at its batch prices).
"""

from __future__ import annotations

import re

from datamill.engine.outcomes import answered, failed
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
    return answered(
        member,
        batch_id,
        response,
        deployment=deployment,
        attempts=member.attempts,
        model=model,
        cost=cost,
        now=now,
        native=True,
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
    return failed(
        member,
        batch_id,
        error,
        deployment=deployment,
        attempts=member.attempts,
        now=now,
        native=native,
    )


def bad_body() -> ProviderError:
    return ProviderError(
        ErrorCategory.bad_request, "the request body is not a JSON object with a model"
    )
