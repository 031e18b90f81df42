"""The lean HTTP/1.1 client against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import subprocess
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from datamill.providers.http1 import (
    AnswerTooLarge,
    ConnectionLost,
    ConnectionPool,
    Limits,
    StreamStalled,
    Target,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    def __init__(self, runner: web.AppRunner, port: int, peers: set[tuple[str, int]]) -> None:
        self.runner = runner
        self.port = port
        self.peers = peers  # distinct client connections seen

    def url(self, path: str = "/echo", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    runners: list[web.AppRunner] = []

    async def start(
        routes: dict[str, Handler], *, keepalive: float = 75.0, tls: ssl.SSLContext | None = None
    ) -> Server:
        peers: set[tuple[str, int]] = set()

        @web.middleware
        async def remember(request: web.Request, handler: Handler) -> web.StreamResponse:
            peers.add(request.transport.get_extra_info("peername"))
            return await handler(request)

        app = web.Application(middlewares=[remember], client_max_size=64 * 1024**2)
        for path, handler in routes.items():
            app.router.add_route("*", path, handler)
        runner = web.AppRunner(app, keepalive_timeout=keepalive)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return Server(runner, port, peers)

    yield start
    for runner in runners:
        await runner.cleanup()


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.Response(body=body, headers={"x-request-id": "req_1", "x-length": str(len(body))})


async def test_post_keeps_the_connection_alive(serve):
    server = await serve({"/echo": echo})
    pool = ConnectionPool()
    target = Target.prepare(server.url(), {"Content-Type": "application/json"})

    answers = [await pool.send(target, f'{{"n": {n}}}'.encode()) for n in range(5)]

    assert [a.status for a in answers] == [200] * 5
    assert answers[3].body == b'{"n": 3}'
    assert answers[0].headers["x-request-id"] == "req_1"
    assert len(server.peers) == 1
    pool.close()


async def test_chunked_gzip_and_deflate_answers(serve):
    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b'{"a": ', b"1", b"}"):
            await response.write(part)
        await response.write_eof()
        return response

    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(b"zipped"), headers={"Content-Encoding": "gzip"})

    async def deflated(request: web.Request) -> web.Response:
        return web.Response(
            body=zlib.compress(b"squeezed"), headers={"Content-Encoding": "deflate"}
        )

    server = await serve({"/chunked": chunked, "/gzip": gzipped, "/deflate": deflated})
    pool = ConnectionPool()

    assert (await pool.send(Target.prepare(server.url("/chunked"), {}), b"")).body == b'{"a": 1}'
    assert (await pool.send(Target.prepare(server.url("/gzip"), {}), b"")).body == b"zipped"
    assert (await pool.send(Target.prepare(server.url("/deflate"), {}), b"")).body == b"squeezed"
    pool.close()


async def test_connection_close_is_not_reused(serve):
    async def closing(request: web.Request) -> web.Response:
        return web.Response(text="bye", headers={"Connection": "close"})

    server = await serve({"/close": closing})
    pool = ConnectionPool()
    target = Target.prepare(server.url("/close"), {})

    for _ in range(3):
        assert (await pool.send(target, b"")).body == b"bye"

    assert len(server.peers) == 3
    pool.close()


async def test_a_connection_the_server_closed_while_idle_is_replaced(serve):
    server = await serve({"/echo": echo}, keepalive=0.2)
    pool = ConnectionPool(idle_timeout=60)  # keeps the dead connection on purpose
    target = Target.prepare(server.url(), {})
    assert (await pool.send(target, b"first")).body == b"first"
    await asyncio.sleep(0.5)  # the server closes its side

    assert (await pool.send(target, b"second")).body == b"second"
    assert len(server.peers) == 2
    pool.close()


async def test_idle_connections_past_the_idle_timeout_are_dropped(serve):
    server = await serve({"/echo": echo})
    pool = ConnectionPool(idle_timeout=0.1)
    target = Target.prepare(server.url(), {})
    await pool.send(target, b"a")
    await asyncio.sleep(0.2)

    await pool.send(target, b"b")

    assert len(server.peers) == 2
    pool.close()


async def test_a_cancelled_request_closes_its_connection(serve):
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    server = await serve({"/slow": slow, "/echo": echo})
    pool = ConnectionPool()
    task = asyncio.create_task(pool.send(Target.prepare(server.url("/slow"), {}), b""))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # The next request to the same origin gets a fresh connection and its own answer.
    assert (await pool.send(Target.prepare(server.url("/echo"), {}), b"ok")).body == b"ok"
    assert len(server.peers) == 2
    pool.close()


async def test_refused_and_cut_off_connections_raise(serve, unused_tcp_port):
    pool = ConnectionPool()
    with pytest.raises(ConnectionRefusedError):
        await pool.send(Target.prepare(f"http://127.0.0.1:{unused_tcp_port}/x", {}), b"")

    async def cut(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "100"})
        await response.prepare(request)
        await response.write(b"only part of it")
        request.transport.close()  # type: ignore[union-attr]
        return response

    server = await serve({"/cut": cut})
    with pytest.raises(ConnectionLost) as lost:
        await pool.send(Target.prepare(server.url("/cut"), {}), b"")
    assert lost.value.answered
    pool.close()


async def test_large_bodies_go_both_ways(serve):
    server = await serve({"/echo": echo})
    pool = ConnectionPool()
    body = bytes(range(256)) * (8 * 1024 * 4)  # 8 MiB

    answer = await pool.send(Target.prepare(server.url(), {}), body)

    assert answer.headers["x-length"] == str(len(body))
    assert answer.body == body
    pool.close()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1: (key, cert)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


async def test_https_with_a_trusted_certificate(serve, certificate):
    key, cert = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    server = await serve({"/echo": echo}, tls=server_tls)
    client_tls = ssl.create_default_context(cafile=str(cert))
    pool = ConnectionPool(ssl_context=client_tls)

    answer = await pool.send(Target.prepare(server.url(scheme="https"), {}), b"secret")

    assert answer.body == b"secret"
    with pytest.raises(ssl.SSLError):
        await ConnectionPool().send(Target.prepare(server.url(scheme="https"), {}), b"")
    pool.close()


def test_only_http_urls_are_prepared():
    with pytest.raises(ValueError, match="not an http"):
        Target.prepare("ftp://example.com/file", {})
    target = Target.prepare("https://api.example.com:8443/v1/chat?x=1", {"A": "b"})
    assert (target.origin.host, target.origin.port, target.origin.tls) == (
        "api.example.com",
        8443,
        True,
    )
    assert target.head.startswith(b"POST /v1/chat?x=1 HTTP/1.1\r\nHost: api.example.com:8443\r\n")
    assert b"A: b\r\n" in target.head


def test_works_on_uvloop(tmp_path):
    """The worker runs on uvloop, whose transports do not subclass asyncio.Transport."""
    import uvloop
    from aiohttp import web as aioweb

    async def main() -> list[bytes]:
        app = aioweb.Application()
        app.router.add_post("/echo", echo)
        runner = aioweb.AppRunner(app)
        await runner.setup()
        site = aioweb.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        pool = ConnectionPool()
        target = Target.prepare(f"http://127.0.0.1:{port}/echo", {})
        try:
            return [(await pool.send(target, b"x%d" % n)).body for n in range(3)]
        finally:
            pool.close()
            await runner.cleanup()

    assert uvloop.run(main()) == [b"x0", b"x1", b"x2"]


# -- streamed answers -------------------------------------------------------------------------


def trickle(parts: list[bytes], *, pause: float = 0.0, gzip_it: bool = False) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        headers = {"Content-Type": "text/event-stream"}
        if gzip_it:
            headers["Content-Encoding"] = "gzip"
        response = web.StreamResponse(headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        compressor = zlib.compressobj(wbits=31) if gzip_it else None
        for part in parts:
            data = (
                compressor.compress(part) + compressor.flush(zlib.Z_SYNC_FLUSH)
                if compressor
                else part
            )
            await response.write(data)
            await asyncio.sleep(pause)
        if compressor:
            await response.write(compressor.flush())
        await response.write_eof()
        return response

    return handler


async def test_a_streamed_answer_arrives_as_it_is_sent_and_the_connection_is_reused(serve):
    parts = [b"data: one\n\n", b"data: two\n\n", b"data: three\n\n"]
    server = await serve({"/sse": trickle(parts, pause=0.05), "/echo": echo})
    pool = ConnectionPool()
    target = Target.prepare(server.url("/sse"), {})

    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await pool.open(target, b"{}")
    assert response.status == 200
    assert response.headers["content-type"] == "text/event-stream"
    first = await response.__anext__()
    assert first == b"data: one\n\n"
    assert loop.time() - started < 0.1  # not held back until the end of the answer
    assert b"".join([first] + [chunk async for chunk in response]) == b"".join(parts)

    # Read to its end: the connection goes back to the pool.
    assert (await pool.send(Target.prepare(server.url("/echo"), {}), b"x")).body == b"x"
    assert len(server.peers) == 1
    pool.close()


async def test_a_gzipped_stream_is_inflated_chunk_by_chunk(serve):
    parts = [b"data: a\n\n", b"data: b\n\n"]
    server = await serve({"/sse": trickle(parts, gzip_it=True)})
    pool = ConnectionPool()

    response = await pool.open(Target.prepare(server.url("/sse"), {}), b"")

    assert await response.read() == b"".join(parts)
    pool.close()


async def test_closing_a_stream_midway_drops_its_connection(serve):
    closed = asyncio.Event()

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            while True:
                await response.write(b"data: more\n\n")
                await asyncio.sleep(0.01)
        except (ConnectionError, asyncio.CancelledError):
            closed.set()
            raise

    server = await serve({"/endless": endless, "/echo": echo})
    pool = ConnectionPool()
    response = await pool.open(Target.prepare(server.url("/endless"), {}), b"")
    assert await response.__anext__() == b"data: more\n\n"

    response.close()

    await asyncio.wait_for(closed.wait(), 2)  # the server saw the client go
    assert (await pool.send(Target.prepare(server.url("/echo"), {}), b"ok")).body == b"ok"
    assert len(server.peers) == 2  # the half-read connection was not reused
    pool.close()


async def test_a_stream_cut_by_the_server_raises_midway(serve):
    async def cut(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"data: partial\n\n")
        await asyncio.sleep(0.05)
        request.transport.close()  # type: ignore[union-attr]
        return response

    server = await serve({"/cut": cut})
    pool = ConnectionPool()
    response = await pool.open(Target.prepare(server.url("/cut"), {}), b"")

    assert await response.__anext__() == b"data: partial\n\n"
    with pytest.raises(ConnectionLost):
        await response.__anext__()
    pool.close()


async def test_a_slow_reader_pauses_the_socket_and_loses_nothing(serve):
    part = b"x" * 65536
    server = await serve({"/big": trickle([part] * 64)})  # 4 MiB, more than the high water
    pool = ConnectionPool()
    response = await pool.open(Target.prepare(server.url("/big"), {}), b"")
    await asyncio.sleep(0.3)  # let the server write while nobody reads

    assert len(await response.read()) == len(part) * 64
    pool.close()


# -- untrusted answers ------------------------------------------------------------------------


def fixed(body: bytes, **headers: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, headers=headers)

    return handler


async def test_bodies_are_capped_counting_decompressed_bytes(serve):
    small = gzip.compress(b"x" * 1000)
    bomb = gzip.compress(bytes(8 * 1024 * 1024))  # 8 MiB of zeros in about 8 KiB
    server = await serve(
        {
            "/small": fixed(small, **{"Content-Encoding": "gzip"}),
            "/bomb": fixed(bomb, **{"Content-Encoding": "gzip"}),
            "/plain": fixed(b"y" * 2048),
        }
    )
    pool = ConnectionPool()
    limits = Limits(max_body=1024 * 1024)

    def target(path: str) -> Target:
        return Target.prepare(server.url(path), {}, limits=limits)

    assert (await pool.send(target("/small"), b"")).body == b"x" * 1000
    with pytest.raises(AnswerTooLarge, match="exceeds 1048576 bytes"):
        await pool.send(target("/bomb"), b"")
    tight = Target.prepare(server.url("/plain"), {}, limits=Limits(max_body=2047))
    with pytest.raises(AnswerTooLarge):
        await pool.send(tight, b"")
    assert (await pool.send(target("/plain"), b"")).body == b"y" * 2048  # the pool goes on
    pool.close()


async def test_bytes_after_a_compressed_body_are_counted_not_kept(serve):
    member = gzip.compress(b'{"ok": true}')
    server = await serve(
        {
            "/tail": fixed(member + b"junk" * 100, **{"Content-Encoding": "gzip"}),
            "/flood": fixed(member + bytes(2 * 1024 * 1024), **{"Content-Encoding": "gzip"}),
        }
    )
    pool = ConnectionPool()
    limits = Limits(max_body=1024 * 1024)

    answer = await pool.send(Target.prepare(server.url("/tail"), {}, limits=limits), b"")
    assert answer.body == b'{"ok": true}'
    with pytest.raises(AnswerTooLarge):
        await pool.send(Target.prepare(server.url("/flood"), {}, limits=limits), b"")
    pool.close()


async def test_a_truncated_compressed_body_raises(serve):
    server = await serve(
        {"/cut": fixed(gzip.compress(b"z" * 5000)[:-20], **{"Content-Encoding": "gzip"})}
    )
    pool = ConnectionPool()

    with pytest.raises(zlib.error, match="ends early"):
        await pool.send(Target.prepare(server.url("/cut"), {}), b"")
    pool.close()


async def test_headers_are_capped(serve):
    server = await serve({"/fat": fixed(b"", **{f"x-pad-{i}": "p" * 1000 for i in range(80)})})
    pool = ConnectionPool()

    with pytest.raises(AnswerTooLarge, match="headers exceed 65536 bytes"):
        await pool.send(Target.prepare(server.url("/fat"), {}), b"")
    pool.close()


async def test_a_streamed_bomb_is_inflated_in_pieces_and_read_whole_only_to_the_cap(serve):
    bomb = gzip.compress(bytes(16 * 1024 * 1024))
    server = await serve({"/bomb": fixed(bomb, **{"Content-Encoding": "gzip"})})
    pool = ConnectionPool()
    target = Target.prepare(server.url("/bomb"), {}, limits=Limits(max_body=4 * 1024 * 1024))

    response = await pool.open(target, b"")
    sizes = [len(piece) async for piece in response]
    assert sum(sizes) == 16 * 1024 * 1024
    assert max(sizes) <= 256 * 1024
    response = await pool.open(target, b"")
    with pytest.raises(AnswerTooLarge):
        await response.read()
    pool.close()


async def test_a_stream_silent_after_its_head_raises_stalled(serve):
    release = asyncio.Event()

    async def silent(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"data: first\n\n")
        await release.wait()
        return response

    server = await serve({"/silent": silent})
    pool = ConnectionPool()
    target = Target.prepare(server.url("/silent"), {}, limits=Limits(stream_idle=0.1))

    response = await pool.open(target, b"")
    assert await response.__anext__() == b"data: first\n\n"
    with pytest.raises(StreamStalled, match=r"no byte for 0\.1 s"):
        await response.__anext__()
    release.set()
    pool.close()
