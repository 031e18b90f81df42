"""A lean HTTP/1.1 client for provider calls: asyncio protocols and the httptools parser.

Provider calls are the engine's hot path, and the HTTP client decides most of its CPU: aiohttp
spends about 100 µs per request here, this client about 30 (measured against the mock
provider; see docs/benchmarks.md). It does what provider APIs need and nothing else: POST
(and GET) with a body, keep-alive connections pooled per origin, TLS, chunked and
gzip/deflate answers, and answers streamed as they arrive (server-sent events). No redirects,
cookies, proxies or HTTP/2.

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
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

__all__ = ["ConnectionLost", "ConnectionPool", "Origin", "Response", "StreamedResponse", "Target"]


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme == "https"


@dataclass(frozen=True, slots=True)
class Target:
    """A URL and fixed headers, rendered once: each request only adds its body."""

    origin: Origin
    head: bytes  # request line and headers up to Content-Length, without it

    @classmethod
    def prepare(cls, url: str, headers: dict[str, str], *, method: str = "POST") -> Target:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Accept-Encoding: gzip, deflate"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        return cls(Origin(parts.scheme, parts.hostname, port), head)


class ConnectionLost(ConnectionError):
    """The connection closed before the whole answer arrived."""

    def __init__(self, message: str, *, answered: bool) -> None:
        super().__init__(message)
        self.answered = answered  # some bytes of the answer had arrived


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
        self._body: list[bytes] = []
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
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self._headers.get(key)
        self._headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        if self._stream is None:
            return
        # A streamed answer is handed over at its head; its body follows through the stream.
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(self._parser.get_status_code(), self._headers, b""))

    def on_body(self, body: bytes) -> None:
        if self._stream is not None:
            self._stream.feed(body)
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        if not self._parser.should_keep_alive():
            self.close()
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.finish()
            return
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            body = b"".join(self._body)
            encoding = self._headers.get("content-encoding", "").lower()
            if encoding in {"gzip", "deflate"}:
                # zlib reads both: wbits 47 detects gzip or zlib headers.
                body = zlib.decompress(body, 47)
            waiter.set_result(Response(self._parser.get_status_code(), self._headers, body))

    # -- use
    async def request(self, head: bytes, body: bytes, *, stream: bool = False) -> Response:
        """Send one request; the whole answer, or with ``stream`` its head (the body then
        arrives through `body_stream`)."""
        assert self.transport is not None
        self._headers = {}
        self._body = []
        self._received = False
        self._stream = self._last_stream = _BodyStream(self) if stream else None
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

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
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
            await self._ready.wait()
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
        self, pool: ConnectionPool, origin: Origin, connection: _Connection, head: Response
    ) -> None:
        self.status = head.status
        self.headers = head.headers
        self._pool = pool
        self._origin = origin
        self._connection = connection
        self._body = connection.body_stream
        self._closed = False
        encoding = head.headers.get("content-encoding", "").lower()
        # zlib reads both: wbits 47 detects gzip or zlib headers.
        self._inflate = zlib.decompressobj(47) if encoding in {"gzip", "deflate"} else None

    def __aiter__(self) -> StreamedResponse:
        return self

    async def __anext__(self) -> bytes:
        while True:
            chunk = await self._read()
            if not chunk:
                raise StopAsyncIteration
            if self._inflate is not None:
                chunk = self._inflate.decompress(chunk)
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
        """The rest of the body, decoded."""
        return b"".join([chunk async for chunk in self])

    def close(self) -> None:
        """Stop reading; an answer not read to its end closes its connection."""
        if self._closed:
            return
        self._closed = True
        if not self._body.done:
            self._connection.close()
        else:
            self._pool._release(self._origin, self._connection)


class ConnectionPool:
    """Keep-alive connections by origin, opened as needed and never limited here: the
    scheduler's gates bound how many calls are out."""

    def __init__(
        self,
        *,
        idle_timeout: float = 4.0,
        connect_timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
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
        return StreamedResponse(self, target.origin, connection, head)

    async def _exchange(
        self, target: Target, body: bytes, *, stream: bool
    ) -> tuple[_Connection, Response]:
        connection = await self._acquire(target.origin)
        try:
            response = await connection.request(target.head, body, stream=stream)
        except ConnectionLost as lost:
            if not connection.reused or lost.answered:
                raise
            # A pooled connection the server had already closed: it never saw the request.
            connection = await self._connect(target.origin)
            response = await connection.request(target.head, body, stream=stream)
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
        context = self._ssl_context() if origin.tls else None
        async with asyncio.timeout(self.connect_timeout):
            _, connection = await loop.create_connection(
                _Connection,
                origin.host,
                origin.port,
                ssl=context,
                server_hostname=origin.host if context else None,
            )
        return connection

    def _release(self, origin: Origin, connection: _Connection) -> None:
        if connection.closed:
            return
        connection.idle_since = time.monotonic()
        connection.reused = False
        self._idle.setdefault(origin, deque()).append(connection)

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def close(self) -> None:
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()
