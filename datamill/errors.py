"""The exception tree of datamill.

    DatamillError
    ├── ConfigError                 invalid settings or datamill.toml; start-up stops
    ├── ApiError                    rendered as an OpenAI-style error body with its HTTP status
    │   ├── InvalidRequest          400: bad input, names the parameter (and line) at fault
    │   │   └── InvalidLines        400: an uploaded JSONL with bad lines, each one located
    │   ├── NotFound                404: unknown id
    │   ├── ModelNotFound           404: a model name no deployment serves
    │   ├── Conflict                409: the object is in a state that forbids the action
    │   ├── PayloadTooLarge         413: over a configured size limit
    │   └── ServerBusy              503: a bounded resource is full; try again later
    │   └── UpstreamFailed          a gateway call every deployment failed; status by category
    ├── ProviderError               a failed call to a provider; carries category and retry hint
    │   └── AdapterFailed           an adapter raised something else (a bug): a server_error
    ├── StorageError                the store is unreachable or not migrated
    └── SideTaskFailed              a critical side task failed, or one kept failing;
                                    its owner (a worker, the process) stops

Foreign exceptions (aiohttp, asyncpg, sqlite3) are translated at their boundary:
providers/http.py for provider calls, storage/ for the store (database.py: the store not
usable; a repository: a unique key taken, as its own error).
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

from datamill.ratelimit_hints import RateLimitHints


class ErrorCategory(StrEnum):
    """What went wrong with a provider call; decides retry or final (DESIGN.md, Errors)."""

    rate_limited = "rate_limited"  # 429: retry after the server's hint
    server_error = "server_error"  # 5xx: retry with backoff, counts toward the breaker
    timeout = "timeout"  # no answer in time: retry with backoff, counts toward the breaker
    connection = "connection"  # refused, reset, DNS: retry with backoff, counts toward the breaker
    auth = "auth"  # 401/403: final
    bad_request = "bad_request"  # 400/422: final, the provider's message is kept
    content_filter = "content_filter"  # refused by the provider's safety system: final
    not_found = "not_found"  # unknown model or route: final
    # The way to the provider is misconfigured (untrusted certificate, failed TLS handshake,
    # unknown host, a proxy refusing): final, the message names the fix.
    network_setup = "network_setup"

    @property
    def retryable(self) -> bool:
        return self in _RETRYABLE

    @property
    def trips_breaker(self) -> bool:
        """Failures that say the deployment is unhealthy, not that the request is bad."""
        return self in _BREAKER


_RETRYABLE = frozenset(
    {
        ErrorCategory.rate_limited,
        ErrorCategory.server_error,
        ErrorCategory.timeout,
        ErrorCategory.connection,
    }
)
_BREAKER = frozenset({ErrorCategory.server_error, ErrorCategory.timeout, ErrorCategory.connection})


class DatamillError(Exception):
    """Base of every error datamill raises on purpose."""


class ConfigError(DatamillError):
    """Invalid configuration. The message names the key and the fix."""


class StorageError(DatamillError):
    """The store cannot be used (unreachable, not migrated, corrupt)."""


class SideTaskFailed(DatamillError):
    """A side task (supervisor.py) that was critical failed, or one kept failing: its owner
    stops, and a command exits with this message."""

    def __init__(self, name: str, cause: BaseException, *, failures: int = 1) -> None:
        self.name = name
        self.cause = cause
        self.failures = failures
        if isinstance(cause, SideTaskFailed):  # a worker stopped by one of its own side tasks
            super().__init__(f"side task {name!r} stopped: {cause}")
            return
        times = f" {failures} times in a row" if failures > 1 else ""
        super().__init__(f"side task {name!r} failed{times}: {type(cause).__name__}: {cause}")


class ApiError(DatamillError):
    """An error answered to an API client in OpenAI's error shape."""

    status_code = 400
    error_type = "invalid_request_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.line = line

    def headers(self) -> dict[str, str]:
        """Headers the error answer carries besides its body."""
        return {}

    def to_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.error_type,
            "param": self.param,
            "code": self.code,
        }
        if self.line is not None:
            error["line"] = self.line
        return {"error": error}


class InvalidRequest(ApiError):
    status_code = 400


class InvalidLines(InvalidRequest):
    """An uploaded JSONL file with invalid lines: every problem (up to a cap) with its line,
    the field at fault and why, in the error body's ``errors``; ``line`` is the first."""

    def __init__(
        self, message: str, *, problems: list[dict[str, Any]], param: str = "file", code: str
    ) -> None:
        first = problems[0]["line"] if problems else None
        super().__init__(message, param=param, code=code, line=first)
        self.problems = problems

    def to_body(self) -> dict[str, Any]:
        body = super().to_body()
        body["error"]["errors"] = self.problems
        return body


class NotFound(ApiError):
    status_code = 404

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message, param=param, code="not_found")


class ModelNotFound(ApiError):
    """404 for a model name no deployment serves, as OpenAI answers an unknown model."""

    status_code = 404

    def __init__(self, message: str) -> None:
        super().__init__(message, param="model", code="model_not_found")


class Conflict(ApiError):
    status_code = 409


class Unauthenticated(ApiError):
    """401: no key, or one that is unknown, expired or revoked (``code`` says which)."""

    status_code = 401

    def __init__(self, message: str, *, code: str = "invalid_api_key") -> None:
        super().__init__(message, code=code)

    def headers(self) -> dict[str, str]:
        return {"www-authenticate": 'Bearer realm="datamill"'}


class PermissionDenied(ApiError):
    """403: the key's role may not do this (or a signed-in page's form lacked its token)."""

    status_code = 403

    def __init__(self, message: str, *, code: str = "insufficient_role") -> None:
        super().__init__(message, code=code)


class KeyLimitExceeded(ApiError):
    """429: the key's own request or spend limit, with when to try again."""

    status_code = 429
    error_type = "rate_limit_error"

    def __init__(self, message: str, *, code: str, retry_after: float) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"retry-after": str(max(1, math.ceil(self.retry_after)))}


class PayloadTooLarge(ApiError):
    status_code = 413


class ServerBusy(ApiError):
    """503 with ``Retry-After``: a bounded resource (the event stream's places) is full."""

    status_code = 503
    error_type = "server_error"

    def __init__(self, message: str, *, code: str, retry_after: int) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"retry-after": str(self.retry_after)}


class UpstreamFailed(ApiError):
    """A gateway call that no deployment could answer, rendered with the status its
    category calls for: a 429 stays a 429 (with the provider's ``Retry-After``), an
    upstream server error or a dead connection is a 502, a timeout a 504, and a request the
    provider refused keeps its 400. The upstream's own ``param`` and ``code`` are kept;
    datamill's category is in ``datamill_category`` (docs/errors.md)."""

    error_type = "upstream_error"

    def __init__(
        self,
        error: ProviderError,
        *,
        deployment: str | None,
        rate_limits: dict[str, str] | None = None,
    ) -> None:
        category = error.category
        self.rate_limits = rate_limits or {}
        param, code = upstream_param_and_code(error)
        super().__init__(error.message, param=param, code=code)
        self.category = category
        self.status_code = _UPSTREAM_STATUS.get(category, 502)
        self.retry_after = error.retry_after if category is ErrorCategory.rate_limited else None
        self.deployment = deployment
        if category in {ErrorCategory.bad_request, ErrorCategory.content_filter}:
            self.error_type = "invalid_request_error"
        elif category is ErrorCategory.rate_limited:
            self.error_type = "rate_limit_error"

    def to_body(self) -> dict[str, Any]:
        body = super().to_body()
        body["error"]["datamill_category"] = self.category.value
        return body

    def headers(self) -> dict[str, str]:
        headers = dict(self.rate_limits)
        if self.deployment is not None:
            headers["x-datamill-deployment"] = self.deployment
        if self.retry_after is not None:
            headers["retry-after"] = str(max(1, math.ceil(self.retry_after)))
            headers["retry-after-ms"] = str(math.ceil(self.retry_after * 1000))
        return headers


class ProviderError(DatamillError):
    """A provider call failed.

    ``status_code`` and ``body`` are the upstream's answer when there was one (kept verbatim in
    the error line); ``retry_after`` is the server's hint in seconds, when it gave one;
    ``param`` names the request field at fault, when one is (a field the provider cannot
    express, say); ``rate_limits`` is what the answer's rate-limit headers said (a 429's
    limit, remaining count and reset teach the scheduler as a success's do).
    """

    def __init__(
        self,
        category: ErrorCategory,
        message: str,
        *,
        status_code: int | None = None,
        body: Any = None,
        retry_after: float | None = None,
        request_id: str | None = None,
        param: str | None = None,
        rate_limits: RateLimitHints | None = None,
    ) -> None:
        super().__init__(message)
        self.category = category
        self.message = message
        self.status_code = status_code
        self.body = body
        self.retry_after = retry_after
        self.request_id = request_id
        self.param = param
        self.rate_limits = rate_limits

    def __repr__(self) -> str:
        return (
            f"ProviderError({self.category.value!r}, {self.message!r}, status={self.status_code})"
        )


class AdapterFailed(ProviderError):
    """An adapter raised something other than `ProviderError` (a bug in it): a
    ``server_error``, retried and counted by the breaker in batches like a 5xx, while the
    gateway answers it as the internal error it is (500, ``internal_error``). Made in one
    place, `scheduler.dispatch`."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCategory.server_error, message)


def upstream_param_and_code(error: ProviderError) -> tuple[str | None, str | None]:
    """The ``param`` and ``code`` of an upstream's error body, as OpenAI-style clients read
    them: from its ``error`` object (OpenAI and the compatible servers; Gemini's ``status``
    names its code), strings only; ``error.param`` when datamill named the field itself."""
    detail = error.body.get("error") if isinstance(error.body, dict) else None
    detail = detail if isinstance(detail, dict) else {}
    param = detail.get("param")
    code = detail.get("code")
    if not isinstance(code, str):
        code = detail.get("status")  # Gemini: {"code": 400, "status": "INVALID_ARGUMENT"}
    return (
        param if isinstance(param, str) else error.param,
        code if isinstance(code, str) else None,
    )


_UPSTREAM_STATUS = {
    ErrorCategory.rate_limited: 429,
    ErrorCategory.timeout: 504,
    ErrorCategory.bad_request: 400,
    ErrorCategory.content_filter: 400,
    ErrorCategory.not_found: 404,
}
