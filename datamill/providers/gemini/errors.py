"""Gemini's errors: ``google.rpc.Status`` bodies to `ProviderError`.

Gemini answers an error as ``{"error": {"code": <HTTP status>, "message": ..., "status":
"RESOURCE_EXHAUSTED", "details": [...]}}``. The ``status`` name decides the category (it is
more precise than the HTTP status: a 504 is ``DEADLINE_EXCEEDED``, a timeout); a
``google.rpc.RetryInfo`` detail's ``retryDelay`` (a protobuf Duration, ``"30s"``) is the retry
hint. Inside a batch, a request's error is a bare ``google.rpc.Status`` whose ``code`` is the
gRPC code number, not an HTTP status.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.fields import unsupported
from datamill.providers.http import HttpAnswer, category_for_status, retry_after_seconds

C = ErrorCategory
PROVIDER = "gemini"

# google.rpc.Code names (google/rpc/code.proto) and what each means for a retry.
_BY_STATUS: dict[str, ErrorCategory] = {
    "INVALID_ARGUMENT": C.bad_request,
    "FAILED_PRECONDITION": C.bad_request,  # e.g. the free tier is not offered in a region
    "OUT_OF_RANGE": C.bad_request,
    "ALREADY_EXISTS": C.bad_request,
    "UNIMPLEMENTED": C.bad_request,  # the model does not offer this method
    "UNAUTHENTICATED": C.auth,
    "PERMISSION_DENIED": C.auth,
    "NOT_FOUND": C.not_found,
    "RESOURCE_EXHAUSTED": C.rate_limited,
    "DEADLINE_EXCEEDED": C.timeout,
    "INTERNAL": C.server_error,
    "UNAVAILABLE": C.server_error,
    "UNKNOWN": C.server_error,
    "ABORTED": C.server_error,
    "DATA_LOSS": C.server_error,
    "CANCELLED": C.server_error,
}
# The gRPC code numbers of the same names, for errors of single requests in a batch.
_GRPC_NAMES = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
# ErrorInfo reasons that say more than the status: Gemini answers a bad key 400
# INVALID_ARGUMENT, but no change to the request will help.
_BY_REASON = {"API_KEY_INVALID": C.auth, "API_KEY_SERVICE_BLOCKED": C.auth}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)s\s*$")


def refused(field: str, why: str) -> ProviderError:
    """The `bad_request` for a value of ``field`` Gemini cannot take, naming the field."""
    return unsupported(field, PROVIDER, why)


def error_from_answer(answer: HttpAnswer) -> ProviderError:
    """The `ProviderError` of an HTTP error answer from Gemini."""
    try:
        body: Any = orjson.loads(answer.body) if answer.body else None
    except orjson.JSONDecodeError:
        body = {"error": {"message": answer.body[:2000].decode("utf-8", "replace")}}
    return error_from_body(answer.status, body, answer.headers)


def error_from_body(
    status_code: int | None, body: Any, headers: Mapping[str, str] | None = None
) -> ProviderError:
    """The `ProviderError` of an error body (kept whole) and the HTTP status it came with."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    name = error.get("status")
    category = _reason_category(error.get("details"))
    if category is None and isinstance(name, str):
        category = _BY_STATUS.get(name)
    if category is None and status_code is not None:
        category = C.timeout if status_code == 504 else category_for_status(status_code, None)
    retry_after = retry_delay(error.get("details"))
    if retry_after is None and headers is not None:
        retry_after = retry_after_seconds(headers)
    message = error.get("message")
    return ProviderError(
        category or C.server_error,
        str(message) if message else f"HTTP {status_code}",
        status_code=status_code,
        body=body,
        retry_after=retry_after,
    )


def error_from_status(status: Any) -> ProviderError:
    """The `ProviderError` of a bare ``google.rpc.Status`` (one request's error in a batch)."""
    status = status if isinstance(status, dict) else {"message": str(status)}
    code = status.get("code")
    name = status.get("status") or (_GRPC_NAMES.get(code) if isinstance(code, int) else None)
    category = _BY_STATUS.get(name, C.server_error) if isinstance(name, str) else C.server_error
    return ProviderError(
        category,
        str(status.get("message") or name or "the request failed in the batch"),
        body={"error": status},
        retry_after=retry_delay(status.get("details")),
    )


def _reason_category(details: Any) -> ErrorCategory | None:
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and detail.get("@type") == _ERROR_INFO:
            category = _BY_REASON.get(str(detail.get("reason")))
            if category is not None:
                return category
    return None


def retry_delay(details: Any) -> float | None:
    """Seconds of the ``RetryInfo.retryDelay`` among a Status's details, if there is one."""
    if not isinstance(details, list):
        return None
    for detail in details:
        if isinstance(detail, dict) and detail.get("@type") == _RETRY_INFO:
            seconds = parse_duration(detail.get("retryDelay"))
            if seconds is not None:
                return seconds
    return None


def parse_duration(value: Any) -> float | None:
    """A protobuf Duration in its JSON form (``"30s"``, ``"1.5s"``), in seconds."""
    if not isinstance(value, str):
        return None
    match = _DURATION.match(value)
    return float(match.group(1)) if match else None
