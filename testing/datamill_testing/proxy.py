"""A small forward HTTP proxy for tests: real sockets on loopback, real ``CONNECT`` tunnels.

``CONNECT host:port`` opens a tunnel (the client then speaks TLS through it, end to end);
an absolute-form request (``POST http://host:port/path HTTP/1.1``) is forwarded in origin
form over a connection to that host, and its answer relayed. With ``credentials`` it asks
for basic auth (``407`` without it); with ``refuse`` it answers every request with that
status. It records what it was asked (`connects`, `requests`) so a test can tell a call went
through it — or did not.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib

from datamill_testing.loopback import LoopbackServer

_HEAD_LIMIT = 64 * 1024


class ForwardProxy(LoopbackServer):
    """Serve with ``async with ForwardProxy() as proxy:``; ``proxy.url`` is its address."""

    def __init__(
        self, *, credentials: tuple[str, str] | None = None, refuse: int | None = None
    ) -> None:
        super().__init__()
        self.connects: list[str] = []  # CONNECT targets, host:port
        self.requests: list[str] = []  # absolute-form request targets
        self._expected: str | None = None
        if credentials is not None:
            pair = f"{credentials[0]}:{credentials[1]}".encode()
            self._expected = "Basic " + base64.b64encode(pair).decode()
        self._refuse = refuse

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if len(head) > _HEAD_LIMIT:
                    return
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                refusal = self._refusal(headers)
                if refusal is not None:
                    writer.write(refusal)
                    await writer.drain()
                    return
                if method == "CONNECT":
                    self.connects.append(target)
                    await self._tunnel(target, reader, writer)
                    return
                self.requests.append(target)
                upstream = await self._forward(
                    method, target, head, headers, (reader, writer), upstream
                )
        finally:
            if upstream is not None:
                upstream.close()

    def _refusal(self, headers: dict[str, str]) -> bytes | None:
        if self._refuse is not None:
            return _answer(self._refuse, "Forbidden" if self._refuse == 403 else "Refused")
        if self._expected is not None and headers.get("proxy-authorization") != self._expected:
            return _answer(
                407,
                "Proxy Authentication Required",
                b'Proxy-Authenticate: Basic realm="test"\r\n',
            )
        return None

    async def _tunnel(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, _, port = target.rpartition(":")
        try:
            up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
            self._writers.add(up_writer)
        except OSError:
            writer.write(_answer(502, "Bad Gateway"))
            await writer.drain()
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()

    async def _forward(
        self,
        method: str,
        target: str,
        head: bytes,
        headers: dict[str, str],
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: asyncio.StreamWriter | None,
    ) -> asyncio.StreamWriter:
        """Forward one absolute-form request; its answer is relayed by a piping task."""
        without_scheme = target.removeprefix("http://")
        authority, slash, path = without_scheme.partition("/")
        if upstream is None:
            host, _, port = authority.rpartition(":")
            up_reader, upstream = await asyncio.open_connection(host, int(port or 80))
            self._writers.add(upstream)
            relay = asyncio.create_task(_pipe(up_reader, client[1]))
            self._tasks.add(relay)
            relay.add_done_callback(self._tasks.discard)
        body = await client[0].readexactly(int(headers.get("content-length", "0")))
        rest = head.split(b"\r\n", 1)[1]
        lines = [
            line
            for line in rest.split(b"\r\n")
            if not line.lower().startswith(b"proxy-authorization:")
        ]
        upstream.write(f"{method} /{path if slash else ''} HTTP/1.1\r\n".encode())
        upstream.write(b"\r\n".join(lines) + body)
        await upstream.drain()
        return upstream


def _answer(status: int, reason: str, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %d %s\r\n%sContent-Length: 0\r\nConnection: close\r\n\r\n" % (
        status,
        reason.encode(),
        extra,
    )


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError, RuntimeError):
        if writer.can_write_eof():
            writer.write_eof()
