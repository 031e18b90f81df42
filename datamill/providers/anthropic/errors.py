"""Anthropic's errors and rate-limit headers, in datamill's terms.

An error answer is ``{"type": "error", "error": {"type": ..., "message": ...}}``, sometimes
with ``error.details.error_code`` and a ``request_id``. Its ``error.type`` decides the
category, the status when the type is unknown. The request id is the ``request-id`` header.

Rate limits come as ``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}``, read
by `datamill.providers.ratelimit_headers.anthropic_hints` (re-exported as
``rate_limit_hints``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.base import RateLimitHints
from datamill.providers.http import HttpAnswer, category_for_status, retry_after_seconds
from datamill.providers.ratelimit_headers import anthropic_hints

C = ErrorCategory
rate_limit_hints = anthropic_hints  # the name this adapter has always read them by

_CATEGORIES = {
    "invalid_request_error": C.bad_request,
    "authentication_error": C.auth,
    "permission_error": C.auth,
    "billing_error": C.auth,
    "not_found_error": C.not_found,
    "request_too_large": C.bad_request,
    "rate_limit_error": C.rate_limited,
    "timeout_error": C.timeout,
    "api_error": C.server_error,
    "overloaded_error": C.server_error,
    "conflict_error": C.server_error,
}

# The status each error type is answered with, for errors that arrive without one (a batch
# result, an ``error`` event midway through a stream).
STATUSES = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "conflict_error": 409,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def category_of(error_type: str | None, status: int | None, code: str | None) -> ErrorCategory:
    """The category of an Anthropic error: its type first, else its status."""
    # A spend limit answers 429 like a rate limit, but waiting does not lift it.
    if code is not None and code.endswith("spend_limit_reached"):
        return C.auth
    category = _CATEGORIES.get(error_type or "")
    if category is not None:
        return category
    return category_for_status(status, None) if status is not None else C.server_error


def _error_fields(body: Any) -> tuple[str | None, str | None, str | None]:
    """(type, message, details.error_code) of an error body."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None, None
    kind, message = error.get("type"), error.get("message")
    details = error.get("details")
    code = details.get("error_code") if isinstance(details, dict) else None
    return (
        kind if isinstance(kind, str) else None,
        message if isinstance(message, str) else None,
        code if isinstance(code, str) else None,
    )


def error_from_body(
    body: Any,
    *,
    status: int | None = None,
    retry_after: float | None = None,
    request_id: str | None = None,
    rate_limits: RateLimitHints | None = None,
) -> ProviderError:
    """The `ProviderError` of an Anthropic error body, kept as the error's ``body``."""
    kind, message, code = _error_fields(body)
    if request_id is None and isinstance(body, dict) and isinstance(body.get("request_id"), str):
        request_id = body["request_id"]
    return ProviderError(
        category_of(kind, status, code),
        message or (f"HTTP {status}" if status else f"Anthropic error {kind or 'unknown'}"),
        status_code=status if status is not None else STATUSES.get(kind or ""),
        body=body,
        retry_after=retry_after,
        request_id=request_id,
        rate_limits=rate_limits,
    )


def error_from_answer(answer: HttpAnswer, *, now: float) -> ProviderError:
    """The `ProviderError` of an error answer, with its retry hint, request id and
    rate-limit headers."""
    try:
        body: Any = orjson.loads(answer.body) if answer.body else None
    except orjson.JSONDecodeError:
        text = answer.body[:2000].decode("utf-8", "replace")
        body = {"type": "error", "error": {"type": None, "message": text}}
    hints = rate_limit_hints(answer.headers, now=now)
    retry_after = retry_after_seconds(answer.headers)
    if retry_after is None and answer.status == 429:
        retry_after = _exhausted_reset(hints)
    return error_from_body(
        body,
        status=answer.status,
        retry_after=retry_after,
        request_id=request_id(answer.headers),
        rate_limits=hints,
    )


def request_id(headers: Mapping[str, str]) -> str | None:
    return headers.get("request-id") or headers.get("x-request-id")


def _exhausted_reset(hints: RateLimitHints | None) -> float | None:
    """Without a retry-after, a 429 is over when the exhausted windows reset."""
    if hints is None:
        return None
    resets = [
        reset
        for remaining, reset in (
            (hints.remaining_requests, hints.reset_requests),
            (hints.remaining_tokens, hints.reset_tokens),
        )
        if remaining == 0 and reset is not None
    ]
    return max(resets) if resets else None
