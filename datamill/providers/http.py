"""The one HTTP client pool for provider calls, and the translation of HTTP failures.

aiohttp, not httpx: on this hot path it costs about a tenth of the CPU per request
(../shared/DEPS.md). Every foreign exception and every error status becomes a
`ProviderError` here, in one place, with its category and the server's retry hint.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.base import RateLimitHints


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]
    body: bytes


class HttpPool:
    """A process-wide aiohttp session, created lazily inside the running event loop."""

    def __init__(self, *, limit: int = 0, limit_per_host: int = 0) -> None:
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._session: aiohttp.ClientSession | None = None

    def _ensure(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit,
                limit_per_host=self._limit_per_host,
                ttl_dns_cache=300,
                enable_cleanup_closed=True,
            )
            # Timeouts are applied per call by the engine, not by the session.
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                skip_auto_headers=("User-Agent",),
                json_serialize=lambda obj: orjson.dumps(obj).decode(),
            )
        return self._session

    async def post(self, url: str, *, data: bytes, headers: Mapping[str, str]) -> HttpAnswer:
        """POST bytes; connection failures raise `ProviderError(connection)`."""
        session = self._ensure()
        try:
            async with session.post(url, data=data, headers=headers) as response:
                body = await response.read()
                return HttpAnswer(response.status, response.headers, body)
        except aiohttp.ClientConnectorError as exc:
            raise ProviderError(
                ErrorCategory.connection, f"cannot connect to {_origin(url)}: {exc.os_error}"
            ) from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise ProviderError(
                ErrorCategory.connection, f"{_origin(url)} closed the connection: {exc}"
            ) from None
        except aiohttp.ClientError as exc:
            raise ProviderError(
                ErrorCategory.connection, f"HTTP error talking to {_origin(url)}: {exc}"
            ) from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _origin(url: str) -> str:
    match = re.match(r"^(https?://[^/]+)", url)
    return match.group(1) if match else url


def category_for_status(status: int, body: Any) -> ErrorCategory:
    """The error category of an HTTP error answer."""
    code = _error_code(body)
    if code in {"content_filter", "content_policy_violation"}:
        return ErrorCategory.content_filter
    if status == 429:
        # Out of credit is not a rate limit: waiting will not help.
        return ErrorCategory.auth if code == "insufficient_quota" else ErrorCategory.rate_limited
    if status in {401, 403}:
        return ErrorCategory.auth
    if status == 404:
        return ErrorCategory.not_found
    if status == 408:
        return ErrorCategory.timeout
    if status == 409 or status >= 500:
        return ErrorCategory.server_error
    return ErrorCategory.bad_request


def error_from_answer(answer: HttpAnswer) -> ProviderError:
    """A `ProviderError` carrying the upstream's status, error body and retry hint."""
    try:
        body: Any = orjson.loads(answer.body) if answer.body else None
    except orjson.JSONDecodeError:
        body = {"error": {"message": answer.body[:2000].decode("utf-8", "replace")}}
    category = category_for_status(answer.status, body)
    return ProviderError(
        category,
        _error_message(body) or f"HTTP {answer.status}",
        status_code=answer.status,
        body=body,
        retry_after=retry_after_seconds(answer.headers),
        request_id=answer.headers.get("x-request-id"),
    )


def _error_code(body: Any) -> str | None:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code = error.get("code") or error.get("type")
            return str(code) if code is not None else None
    return None


def _error_message(body: Any) -> str | None:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """``retry-after-ms`` (OpenAI) wins over ``retry-after`` (seconds or an HTTP date).

    A value that is neither is no hint at all: it must never fail the error's translation."""
    value = headers.get("retry-after-ms")
    if value:
        milliseconds = _finite(value)
        if milliseconds is not None:
            return max(0.0, milliseconds / 1000)
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _finite(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - time.time())


def _finite(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(value: str) -> float | None:
    """OpenAI's reset durations: ``1s``, ``6m0s``, ``20ms``, ``1h2m3.5s``."""
    total = 0.0
    matched = False
    for number, unit in _DURATION.findall(value):
        matched = True
        total += float(number) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    if matched:
        return total
    try:
        return float(value)
    except ValueError:
        return None


def _names(suffix: str) -> tuple[str, ...]:
    return tuple(
        f"x-ratelimit-{field}-{kind}{suffix}"
        for kind in ("requests", "tokens")
        for field in ("limit", "remaining", "reset")
    )


_OPENAI_NAMES = _names("")
# Cerebras names the window of each figure. Its per-minute ones are what the hints carry; its
# ``-day`` ones are left out: a daily cap says nothing about the pace a minute allows.
_PER_MINUTE_NAMES = _names("-minute")


def rate_limit_hints(headers: Mapping[str, str]) -> RateLimitHints | None:
    """Read ``x-ratelimit-*`` headers (OpenAI's names, or Cerebras's ``-minute`` ones).

    The figures are passed on as sent; what their window is (Groq sends requests per day
    under OpenAI's per-minute name) is for the scheduler to judge."""
    if "x-ratelimit-limit-requests" in headers or "x-ratelimit-limit-tokens" in headers:
        names = _OPENAI_NAMES
    elif "x-ratelimit-limit-tokens-minute" in headers or (
        "x-ratelimit-limit-requests-minute" in headers
    ):
        names = _PER_MINUTE_NAMES
    else:
        return None

    def number(name: str) -> int | None:
        raw = headers.get(name)
        try:
            return int(float(raw)) if raw is not None else None
        except (ValueError, OverflowError):  # garbage, NaN or infinity: no hint
            return None

    def duration(name: str) -> float | None:
        raw = headers.get(name)
        return parse_duration(raw) if raw else None

    limit_r, remaining_r, reset_r, limit_t, remaining_t, reset_t = names
    return RateLimitHints(
        limit_requests=number(limit_r),
        remaining_requests=number(remaining_r),
        reset_requests=duration(reset_r),
        limit_tokens=number(limit_t),
        remaining_tokens=number(remaining_t),
        reset_tokens=duration(reset_t),
    )
