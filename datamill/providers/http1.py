"""A lean HTTP/1.1 client for provider calls: asyncio protocols and the httptools parser.

Provider calls are the engine's hot path, and the HTTP client decides most of its CPU: aiohttp
spends about 100 µs per request here, this client about 30 (measured against the mock
provider; see docs/benchmarks.md). It does what provider APIs need and nothing else: POST
(and GET) with a body, keep-alive connections pooled per origin, TLS, chunked and
gzip/deflate answers, answers streamed as they arrive (server-sent events), and forward
proxies (CONNECT tunnels for https, absolute-form requests for http). No redirects, cookies or
HTTP/2.

Every upstream is untrusted: an answer's body is capped while it arrives, counted in
decompressed bytes (a gzip bomb stops at the cap, it never inflates whole), its head is
capped too, and a streamed answer that goes silent for ``Limits.stream_idle`` seconds fails.

A pooled connection may have been closed by the server while idle (uvicorn closes after 5 s,
nginx after 75 s). Connections idle longer than ``idle_timeout`` are dropped, and a request
that fails on a reused connection before any byte of the answer arrived is sent once more on
a new connection: the server never read it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import httptools

from datamill.settings import redact_url

__all__ = [
    "AnswerTooLarge",
    "ConnectionLost",
    "ConnectionPool",
    "Limits",
    "Origin",
    "Proxy",
    "ProxyRefused",
    "Response",
    "StreamStalled",
    "StreamedResponse",
    "Target",
]

_MAX_HEAD = 64 * 1024  # bytes of an answer's status line and headers
_INFLATE_PIECE = 256 * 1024  # a streamed compressed chunk is inflated this much at a time


@dataclass(frozen=True, slots=True)
class Limits:
    """What one answer may cost: ``max_body`` bytes of (decompressed) body, and for a streamed
    answer at most ``stream_idle`` seconds without a byte once its head arrived."""

    max_body: int = 128 * 1024 * 1024
    stream_idle: float = 300.0


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Proxy:
    """A forward HTTP proxy; ``authorization`` is the ``Proxy-Authorization`` value (basic
    auth from the proxy URL's userinfo)."""

    host: str
    port: int
    # Base64 is not a mask: the credentials stay out of repr, hence out of logs and tracebacks.
    authorization: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The proxy as messages name it (never its credentials)."""
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes


@dataclass(frozen=True, slots=True)
class Origin:
    """Where connections go, and how: the pool keeps connections per origin, so two
    deployments with another proxy or another CA never share one."""

    scheme: str
    host: str
    port: int
    proxy: Proxy | None = None
    context: ssl.SSLContext | None = None  # None: the default one (system CAs)

    @property
    def tls(self) -> bool:
        return self.scheme == "https"


@dataclass(frozen=True, slots=True)
class Target:
    """A URL and fixed headers, rendered once: each request only adds its body."""

    origin: Origin
    head: bytes  # request line and headers up to Content-Length, without it
    limits: Limits = DEFAULT_LIMITS

    @classmethod
    def prepare(
        cls,
        url: str,
        headers: dict[str, str],
        *,
        method: str = "POST",
        proxy: Proxy | None = None,
        context: ssl.SSLContext | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {redact_url(url)!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        if ":" in parts.hostname:  # an IPv6 literal keeps its brackets in the Host header
            host = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Accept-Encoding: gzip, deflate"]
        if proxy is not None and parts.scheme == "http":
            # Plain http goes to the proxy itself, in absolute form (RFC 9112, 3.2.2).
            lines[0] = f"{method} http://{host}{path} HTTP/1.1"
            if proxy.authorization:
                lines.append(f"Proxy-Authorization: {proxy.authorization}")
        lines += [f"{name}: {value}" for name, value in headers.items()]
        head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        origin = Origin(
            parts.scheme,
            parts.hostname,
            port,
            proxy,
            context if parts.scheme == "https" else None,
        )
        return cls(origin, head, limits)


class ConnectionLost(ConnectionError):
    """The connection closed before the whole answer arrived."""

    def __init__(self, message: str, *, answered: bool) -> None:
        super().__init__(message)
        self.answered = answered  # some bytes of the answer had arrived


class AnswerTooLarge(ConnectionLost):
    """An answer's head or (decompressed) body went over its cap; the connection is closed."""

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message, answered=True)
        self.limit = limit


class StreamStalled(TimeoutError):
    """A streamed answer sent nothing for ``Limits.stream_idle`` seconds."""


class ProxyRefused(OSError):
    """The proxy answered the CONNECT with something other than 2xx."""

    def __init__(self, proxy: Proxy, target: str, status: int, reason: str) -> None:
        super().__init__(f"the proxy {proxy.url} refused CONNECT {target}: {status} {reason}")
        self.proxy = proxy
        self.status = status


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Response] | None = None
        self._headers: dict[str, str] = {}
        self._head_size = 0
        self._body: list[bytes] = []
        self._size = 0  # decompressed bytes of the body so far
        self._limit = DEFAULT_LIMITS.max_body
        self._inflate: zlib._Decompress | None = None
        self._received = False
        self._writable = asyncio.Event()
        self._writable.set()
        # Set while the answer is streamed: the head resolves `_waiter`, the body goes here.
        self._stream: _BodyStream | None = None
        self._last_stream: _BodyStream | None = None

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            # A callback's own exception (a cap, a corrupt compressed body) is the cause.
            cause = exc.__context__ if isinstance(exc, httptools.HttpParserCallbackError) else None
            if isinstance(cause, ConnectionLost | zlib.error):
                self._fail(cause)
            else:
                self._fail(ConnectionLost(f"invalid HTTP answer: {exc}", answered=True))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._writable.set()
        reason = f": {exc}" if exc else ""
        self._fail(ConnectionLost(f"connection closed{reason}", answered=self._received))

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value)
        if self._head_size > _MAX_HEAD:
            raise AnswerTooLarge(f"the answer's headers exceed {_MAX_HEAD} bytes", limit=_MAX_HEAD)
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self._headers.get(key)
        self._headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        if self._stream is None:
            encoding = self._headers.get("content-encoding")
            if encoding is not None and encoding.lower() in {"gzip", "deflate"}:
                # zlib reads both: wbits 47 detects gzip or zlib headers.
                self._inflate = zlib.decompressobj(47)
            return
        # A streamed answer is handed over at its head; its body follows through the stream.
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(self._parser.get_status_code(), self._headers, b""))

    def on_body(self, body: bytes) -> None:
        if self._stream is not None:
            self._stream.feed(body)
            return
        inflate = self._inflate
        if inflate is not None:
            if inflate.eof:
                # Bytes after the compressed body: counted against the cap, never kept
                # (zlib would pile them up in `unused_data`).
                self._size += len(body)
                if self._size > self._limit:
                    self._too_large()
                return
            # Inflate no more than the cap allows (one byte over tells it was exceeded).
            body = inflate.decompress(body, self._limit - self._size + 1)
            if inflate.unconsumed_tail:
                self._too_large()
        self._size += len(body)
        if self._size > self._limit:
            self._too_large()
        self._body.append(body)

    def _too_large(self) -> None:
        raise AnswerTooLarge(f"the answer's body exceeds {self._limit} bytes", limit=self._limit)

    def on_message_complete(self) -> None:
        if not self._parser.should_keep_alive():
            self.close()
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.finish()
            return
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            inflate, self._inflate = self._inflate, None
            if inflate is not None and not inflate.eof and self._body:
                waiter.set_exception(zlib.error("the compressed body ends early"))
                self.close()
                return
            body = b"".join(self._body)
            waiter.set_result(Response(self._parser.get_status_code(), self._headers, body))

    # -- use
    async def request(
        self, head: bytes, body: bytes, *, stream: bool = False, limits: Limits = DEFAULT_LIMITS
    ) -> Response:
        """Send one request; the whole answer, or with ``stream`` its head (the body then
        arrives through `body_stream`)."""
        assert self.transport is not None
        self._headers = {}
        self._head_size = 0
        self._body = []
        self._size = 0
        self._limit = limits.max_body
        self._inflate = None
        self._received = False
        self._stream = self._last_stream = _BodyStream(self, limits.stream_idle) if stream else None
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        length = b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        self.transport.writelines((head, length, body))
        if not self._writable.is_set():
            await self._writable.wait()
        try:
            return await waiter
        except asyncio.CancelledError:
            # The answer may still come: this connection cannot carry another request.
            self.close()
            raise

    @property
    def body_stream(self) -> _BodyStream:
        """The body of the streamed answer to the last request (it may be complete already)."""
        assert self._last_stream is not None
        return self._last_stream

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.fail(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _BodyStream:
    """The body of a streamed answer, chunk by chunk as it arrives. Reading pauses the socket
    when a slow reader lets more than ``_HIGH_WATER`` bytes pile up."""

    _HIGH_WATER = 1024 * 1024

    def __init__(self, connection: _Connection, idle: float) -> None:
        self._connection = connection
        self._idle = idle
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._done = False
        self._error: Exception | None = None
        self._ready = asyncio.Event()
        self._paused = False

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        self._ready.set()
        transport = self._connection.transport
        if self._buffered > self._HIGH_WATER and not self._paused and transport is not None:
            self._paused = True
            transport.pause_reading()

    def finish(self) -> None:
        self._done = True
        self._ready.set()

    def fail(self, exc: Exception) -> None:
        self._error = exc
        self._ready.set()

    @property
    def done(self) -> bool:
        return self._done and not self._chunks

    async def read_chunk(self) -> bytes:
        """The next chunk of the body; ``b""`` at its end; raises when the connection broke."""
        while not self._chunks:
            if self._done:
                return b""
            if self._error is not None:
                raise self._error
            self._ready.clear()
            try:
                async with asyncio.timeout(self._idle):
                    await self._ready.wait()
            except TimeoutError:
                self._connection.close()
                raise StreamStalled(f"the answer stalled: no byte for {self._idle:g} s") from None
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._paused and self._buffered <= self._HIGH_WATER // 2:
            self._paused = False
            transport = self._connection.transport
            if transport is not None and not self._connection.closed:
                transport.resume_reading()
        return data


class StreamedResponse:
    """An answer whose body is read as it arrives: ``async for chunk in response``.

    The connection goes back to the pool once the body was read to its end; `close` before
    that drops the connection, which is how an upstream request is abandoned mid-answer."""

    def __init__(
        self,
        pool: ConnectionPool,
        target: Target,
        connection: _Connection,
        head: Response,
    ) -> None:
        self.status = head.status
        self.headers = head.headers
        self._pool = pool
        self._origin = target.origin
        self._max_body = target.limits.max_body
        self._connection = connection
        self._body = connection.body_stream
        self._closed = False
        encoding = head.headers.get("content-encoding", "").lower()
        # zlib reads both: wbits 47 detects gzip or zlib headers.
        self._inflate = zlib.decompressobj(47) if encoding in {"gzip", "deflate"} else None

    def __aiter__(self) -> StreamedResponse:
        return self

    async def __anext__(self) -> bytes:
        inflate = self._inflate
        while True:
            if inflate is not None and inflate.unconsumed_tail:
                # A small compressed chunk may inflate to gigabytes: hand it out in pieces.
                return inflate.decompress(inflate.unconsumed_tail, _INFLATE_PIECE)
            chunk = await self._read()
            if not chunk:
                raise StopAsyncIteration
            if inflate is not None:
                if inflate.eof:
                    continue  # past the compressed body: dropped, not piled up
                chunk = inflate.decompress(chunk, _INFLATE_PIECE)
                if not chunk:
                    continue
            return chunk

    async def _read(self) -> bytes:
        if self._closed:
            return b""
        try:
            chunk = await self._body.read_chunk()
        except BaseException:
            self.close()
            raise
        if not chunk:
            self._closed = True
            self._pool._release(self._origin, self._connection)
        return chunk

    async def read(self) -> bytes:
        """The rest of the body, decoded; over ``Limits.max_body`` bytes raises
        `AnswerTooLarge` (and drops the connection)."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in self:
            size += len(chunk)
            if size > self._max_body:
                self.close()
                raise AnswerTooLarge(
                    f"the answer's body exceeds {self._max_body} bytes", limit=self._max_body
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        """Stop reading; an answer not read to its end closes its connection."""
        if self._closed:
            return
        self._closed = True
        if not self._body.done:
            self._connection.close()
        else:
            self._pool._release(self._origin, self._connection)


class _TunnelOpener(asyncio.Protocol):
    """Asks a proxy for a tunnel (``CONNECT host:port``) and reads its answer's head."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.answered: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self._head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.answered.done():
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > _MAX_HEAD:
                self._answer(
                    ConnectionLost("the proxy's answer to CONNECT is too long", answered=True)
                )
            return
        if len(self._head) > end + 4:
            # A proxy talks only after the client's TLS hello: anything more is not a tunnel.
            self._answer(
                ConnectionLost("the proxy sent bytes after its CONNECT answer", answered=True)
            )
            return
        status_line = self._head[: self._head.find(b"\r\n")].decode("latin-1")
        version, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or not code.isdigit():
            self._answer(
                ConnectionLost(
                    f"the proxy answered CONNECT with {status_line[:200]!r}", answered=True
                )
            )
            return
        self.answered.set_result((int(code), reason.strip()[:200]))

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        self._answer(ConnectionLost(f"the proxy closed the connection{reason}", answered=False))

    def _answer(self, exc: Exception) -> None:
        if not self.answered.done():
            self.answered.set_exception(exc)


async def _tunnel(origin: Origin, proxy: Proxy, context: ssl.SSLContext) -> _Connection:
    """A connection to ``origin`` through a CONNECT tunnel of ``proxy``, TLS inside it."""
    loop = asyncio.get_running_loop()
    transport, opener = await loop.create_connection(_TunnelOpener, proxy.host, proxy.port)
    try:
        authority = f"[{origin.host}]" if ":" in origin.host else origin.host
        authority = f"{authority}:{origin.port}"
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if proxy.authorization:
            lines.append(f"Proxy-Authorization: {proxy.authorization}")
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        status, reason = await opener.answered
        if not 200 <= status < 300:
            raise ProxyRefused(proxy, authority, status, reason)
        connection = _Connection()
        tls = await loop.start_tls(transport, connection, context, server_hostname=origin.host)
    except BaseException:
        transport.close()
        raise
    assert tls is not None
    connection.connection_made(tls)
    return connection


class ConnectionPool:
    """Keep-alive connections by origin, opened as needed and never limited here: the
    scheduler's gates bound how many calls are out."""

    def __init__(
        self,
        *,
        idle_timeout: float = 4.0,
        connect_timeout: float = 30.0,
        ssl_context: ssl.SSLContext | Callable[[], ssl.SSLContext] | None = None,
    ) -> None:
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._ssl = ssl_context

    async def send(self, target: Target, body: bytes) -> Response:
        connection, response = await self._exchange(target, body, stream=False)
        self._release(target.origin, connection)
        return response

    async def open(self, target: Target, body: bytes) -> StreamedResponse:
        """Send a request and return as soon as the answer's head arrived; its body is read
        from the `StreamedResponse`, which must be read to its end or closed."""
        connection, head = await self._exchange(target, body, stream=True)
        return StreamedResponse(self, target, connection, head)

    async def _exchange(
        self, target: Target, body: bytes, *, stream: bool
    ) -> tuple[_Connection, Response]:
        connection = await self._acquire(target.origin)
        limits = target.limits
        try:
            response = await connection.request(target.head, body, stream=stream, limits=limits)
        except ConnectionLost as lost:
            if not connection.reused or lost.answered:
                raise
            # A pooled connection the server had already closed: it never saw the request.
            connection = await self._connect(target.origin)
            response = await connection.request(target.head, body, stream=stream, limits=limits)
        return connection, response

    async def _acquire(self, origin: Origin) -> _Connection:
        idle = self._idle.get(origin)
        if idle:
            oldest_usable = time.monotonic() - self.idle_timeout
            while idle:
                connection = idle.pop()  # the most recently used is the most likely alive
                if not connection.closed and connection.idle_since >= oldest_usable:
                    connection.reused = True
                    return connection
                connection.close()
        return await self._connect(origin)

    async def _connect(self, origin: Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        context = (origin.context or self._ssl_context()) if origin.tls else None
        async with asyncio.timeout(self.connect_timeout):
            if origin.proxy is None:
                _, connection = await loop.create_connection(
                    _Connection,
                    origin.host,
                    origin.port,
                    ssl=context,
                    server_hostname=origin.host if context else None,
                )
            elif context is None:
                # Plain http through a proxy: requests go to it in absolute form.
                _, connection = await loop.create_connection(
                    _Connection, origin.proxy.host, origin.proxy.port
                )
            else:
                connection = await _tunnel(origin, origin.proxy, context)
        return connection

    def _release(self, origin: Origin, connection: _Connection) -> None:
        if connection.closed:
            return
        connection.idle_since = time.monotonic()
        connection.reused = False
        self._idle.setdefault(origin, deque()).append(connection)

    def _ssl_context(self) -> ssl.SSLContext:
        # Made on first use: a process that never calls https never loads the CAs.
        if not isinstance(self._ssl, ssl.SSLContext):
            self._ssl = self._ssl() if self._ssl is not None else ssl.create_default_context()
        return self._ssl

    def close(self) -> None:
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()
