"""The one HTTP client for provider calls, and the translation of HTTP failures.

Calls go through the lean HTTP/1.1 client of `http1`: on this hot path it costs about a
third of aiohttp's CPU per request, and an eighth of httpx's (docs/benchmarks.md,
../shared/DEPS.md). Every transport failure and every error status becomes a
`ProviderError` here, in one place, with its category and the server's retry hint.
"""

from __future__ import annotations

import email.utils
import math
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.http1 import ConnectionLost, ConnectionPool, StreamedResponse, Target

# Read in their own module; importable from here as before.
from datamill.providers.ratelimit_headers import parse_duration as parse_duration
from datamill.providers.ratelimit_headers import rate_limit_hints as rate_limit_hints


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes


class HttpPool:
    """The process's provider connections. Adapters `prepare` each URL once (with its fixed
    headers) and `send` bodies to it, or `open_stream` for an answer read as it arrives;
    `post` does both for a one-off call."""

    def __init__(self, *, idle_timeout: float = 4.0, ssl_context: ssl.SSLContext | None = None):
        self._pool = ConnectionPool(idle_timeout=idle_timeout, ssl_context=ssl_context)

    def prepare(self, url: str, headers: Mapping[str, str], *, method: str = "POST") -> Target:
        return Target.prepare(url, dict(headers), method=method)

    async def send(self, target: Target, *, data: bytes) -> HttpAnswer:
        """Send ``data``; transport failures raise `ProviderError` (connection, timeout)."""
        try:
            response = await self._pool.send(target, data)
        except (OSError, TimeoutError, zlib.error) as exc:
            raise transport_error(exc, target) from None
        return HttpAnswer(response.status, response.headers, response.body)

    async def open_stream(
        self,
        target: Target,
        *,
        data: bytes,
        error: Callable[[HttpAnswer], ProviderError] | None = None,
    ) -> HttpStream:
        """Send ``data`` and return at the answer's head. An error status is read whole and
        raised as its `ProviderError` (made by ``error``, for a provider whose errors are not
        OpenAI's); a 2xx answer is returned open, to be read to its end or closed (closing
        early drops the connection: the upstream stops)."""
        try:
            response = await self._pool.open(target, data)
        except (OSError, TimeoutError, zlib.error) as exc:
            raise transport_error(exc, target) from None
        stream = HttpStream(response, target)
        if response.status >= 300:
            body = await stream.read()
            raise (error or error_from_answer)(HttpAnswer(response.status, response.headers, body))
        return stream

    async def post(self, url: str, *, data: bytes, headers: Mapping[str, str]) -> HttpAnswer:
        return await self.send(self.prepare(url, headers), data=data)

    async def aclose(self) -> None:
        self._pool.close()


class HttpStream:
    """An answer read as it arrives; transport failures midway raise `ProviderError`."""

    def __init__(self, response: StreamedResponse, target: Target) -> None:
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers
        self._response = response
        self._target = target

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        iterator = self._response.__aiter__()
        while True:
            try:
                chunk = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except (OSError, TimeoutError, zlib.error) as exc:
                raise transport_error(exc, self._target) from None
            yield chunk

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self])

    def close(self) -> None:
        self._response.close()


def transport_error(exc: BaseException, target: Target) -> ProviderError:
    """The `ProviderError` for a failure of the connection itself (no HTTP answer)."""
    origin = target.origin
    where = f"{origin.scheme}://{origin.host}:{origin.port}"
    if isinstance(exc, ConnectionLost):
        return ProviderError(ErrorCategory.connection, f"{where} closed the connection: {exc}")
    if isinstance(exc, ssl.SSLError):
        return ProviderError(ErrorCategory.connection, f"TLS with {where} failed: {exc}")
    if isinstance(exc, TimeoutError):
        return ProviderError(ErrorCategory.timeout, f"no connection to {where} in time")
    if isinstance(exc, zlib.error):
        return ProviderError(
            ErrorCategory.server_error, f"{where} sent a compressed answer that is corrupt: {exc}"
        )
    return ProviderError(ErrorCategory.connection, f"cannot connect to {where}: {exc}")


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
