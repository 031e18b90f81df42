"""The one HTTP client for provider calls, and the translation of HTTP failures.

Calls go through the lean HTTP/1.1 client of `http1`: on this hot path it costs about a
third of aiohttp's CPU per request, and an eighth of httpx's (docs/benchmarks.md,
../shared/DEPS.md). Every transport failure and every error status becomes a
`ProviderError` here, in one place, with its category and the server's retry hint.
"""

from __future__ import annotations

import copy
import email.utils
import math
import socket
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.http1 import (
    AnswerTooLarge,
    ConnectionLost,
    ConnectionPool,
    Proxy,
    ProxyRefused,
    StreamedResponse,
    StreamStalled,
    Target,
)
from datamill.providers.network import Network, default_context

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
    `post` does both for a one-off call.

    Each deployment's adapter gets a view of the one pool `using` the deployment's `Network`
    (proxy, TLS trust, answer limits); the targets it prepares carry them, so a call costs
    the same with or without a proxy until it connects."""

    def __init__(self, *, idle_timeout: float = 4.0, ssl_context: ssl.SSLContext | None = None):
        self._pool = ConnectionPool(
            idle_timeout=idle_timeout, ssl_context=ssl_context or default_context
        )
        self._network: Network | None = None

    def using(self, network: Network) -> HttpPool:
        """A view of this pool whose targets go out through ``network``."""
        view = copy.copy(self)
        view._network = network
        return view

    def prepare(self, url: str, headers: Mapping[str, str], *, method: str = "POST") -> Target:
        network = self._network
        if network is None:
            return Target.prepare(url, dict(headers), method=method)
        parts = urlsplit(url)
        proxy = None
        if network.proxies and parts.hostname:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            proxy = network.proxy_for(parts.scheme, parts.hostname, port)
        return Target.prepare(
            url,
            dict(headers),
            method=method,
            proxy=proxy,
            context=network.context,
            limits=network.limits,
        )

    async def send(self, target: Target, *, data: bytes) -> HttpAnswer:
        """Send ``data``; transport failures raise `ProviderError` (connection, timeout)."""
        try:
            response = await self._pool.send(target, data)
        except (OSError, TimeoutError, zlib.error) as exc:
            raise transport_error(exc, target) from None
        if response.status == 407 and target.origin.proxy is not None:
            raise _proxy_refused(target.origin.proxy, response.status, response.headers)
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
        if response.status == 407 and target.origin.proxy is not None:
            stream.close()
            raise _proxy_refused(target.origin.proxy, response.status, response.headers)
        if response.status >= 300:
            try:
                body = await stream.read()
            except ProviderError as exc:
                raise ProviderError(
                    exc.category, f"HTTP {response.status}; {exc.message}"
                ) from None
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
        self.max_body = target.limits.max_body  # what one line or the whole may hold

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
        """The rest of the body, at most the target's ``max_body`` bytes."""
        try:
            return await self._response.read()
        except (OSError, TimeoutError, zlib.error) as exc:
            raise transport_error(exc, self._target) from None

    def close(self) -> None:
        self._response.close()


# Name resolution failures that asking again will not fix (EAI_AGAIN, a DNS hiccup, will).
_UNKNOWN_HOST = {
    getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, name)
}


def line_too_long(limit: int) -> ProviderError:
    """The error of a streamed file whose line never ends (or ends past ``limit`` bytes)."""
    return ProviderError(
        ErrorCategory.server_error,
        f"the provider sent a line over {limit} bytes; raise the deployment's "
        "max_answer_bytes if it is genuine",
    )


def url_segment(value: str) -> str:
    """``value`` escaped as one URL path segment: nothing in it can reach another route
    (``/``, ``?``, ``#``, ``:`` and ``%`` are escaped; ``.`` and ``..`` are refused)."""
    if value in {"", ".", ".."}:
        raise ProviderError(ErrorCategory.bad_request, f"{value!r} cannot name a resource")
    return quote(value, safe="-._~")


def transport_error(exc: BaseException, target: Target) -> ProviderError:
    """The `ProviderError` for a failure of the connection itself (no HTTP answer).

    What retrying cannot fix (an untrusted certificate, a failed TLS handshake, an unknown
    host, a proxy refusing the tunnel) is ``network_setup``: final, naming the fix."""
    origin = target.origin
    where = f"{origin.scheme}://{origin.host}:{origin.port}"
    via = f" (through the proxy {origin.proxy.url})" if origin.proxy is not None else ""
    if isinstance(exc, AnswerTooLarge):
        return ProviderError(
            ErrorCategory.server_error,
            f"{where} sent an answer over the deployment's limit: {exc}; raise the "
            "deployment's max_answer_bytes if the answer is genuine",
        )
    if isinstance(exc, ConnectionLost):
        return ProviderError(ErrorCategory.connection, f"{where} closed the connection: {exc}")
    if isinstance(exc, ProxyRefused):
        if exc.status >= 500:  # the proxy could not reach the server: maybe later it will
            return ProviderError(ErrorCategory.connection, f"{exc}{_proxy_fix(exc.status)}")
        return ProviderError(ErrorCategory.network_setup, f"{exc}{_proxy_fix(exc.status)}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ProviderError(
            ErrorCategory.network_setup,
            f"certificate verify failed for {where}{via}: {exc.verify_message or exc}; "
            "set ca_bundle in the deployment or SSL_CERT_FILE to trust its CA",
        )
    if isinstance(exc, ssl.SSLError) and not isinstance(
        exc, ssl.SSLEOFError | ssl.SSLZeroReturnError
    ):
        return ProviderError(
            ErrorCategory.network_setup,
            f"TLS handshake with {where}{via} failed: {exc}; check that the base_url's "
            "scheme and port are right (https:// to a plain-http server fails this way)",
        )
    if isinstance(exc, ssl.SSLError):
        return ProviderError(ErrorCategory.connection, f"TLS with {where} failed: {exc}")
    if isinstance(exc, socket.gaierror) and exc.errno in _UNKNOWN_HOST:
        return ProviderError(
            ErrorCategory.network_setup,
            f"unknown host {origin.host} ({exc.strerror}); check the deployment's base_url, "
            "or set HTTPS_PROXY if only a proxy can resolve it",
        )
    if isinstance(exc, StreamStalled):
        return ProviderError(
            ErrorCategory.timeout,
            f"{where} stopped sending: {exc}; the deployment's stream_idle_timeout sets it",
        )
    if isinstance(exc, TimeoutError):
        return ProviderError(ErrorCategory.timeout, f"no connection to {where}{via} in time")
    if isinstance(exc, zlib.error):
        return ProviderError(
            ErrorCategory.server_error, f"{where} sent a compressed answer that is corrupt: {exc}"
        )
    return ProviderError(ErrorCategory.connection, f"cannot connect to {where}: {exc}")


def _proxy_refused(proxy: Proxy, status: int, headers: Mapping[str, str]) -> ProviderError:
    """A plain-http request the proxy itself refused (407: it wants credentials)."""
    challenge = headers.get("proxy-authenticate")
    asked = f" (it asks for {challenge[:100]})" if challenge else ""
    return ProviderError(
        ErrorCategory.network_setup,
        f"the proxy {proxy.url} refused the request: {status}{asked}{_proxy_fix(status)}",
        status_code=status,
    )


def _proxy_fix(status: int) -> str:
    if status == 407:
        return (
            "; give the proxy's credentials in its URL (http://user:password@host:port), in "
            "HTTPS_PROXY or in the variable the deployment's proxy_env names"
        )
    if status == 403:
        return "; the proxy forbids this destination: ask its operator, or add it to NO_PROXY"
    return ""


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
    """A `ProviderError` carrying the upstream's status, error body, retry hint and
    rate-limit headers."""
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
        rate_limits=rate_limit_hints(answer.headers),
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
