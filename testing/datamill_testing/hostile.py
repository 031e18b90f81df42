"""A hostile OpenAI-compatible upstream, for tests: real HTTP/1.1 over loopback, with answers
no honest server sends.

The first segment of the path picks the behaviour, so one server plays every part:
``base_url = f"http://127.0.0.1:{port}/{behaviour}/v1"``.

| behaviour | answer |
| --- | --- |
| ``gzip-bomb`` | 200, ``Content-Encoding: gzip``: 1 MiB that inflates to 1 GiB |
| ``endless-body`` | 200, a chunked body that never ends (as fast as the client reads) |
| ``endless-line`` | 200 ``text/event-stream`` whose first line never ends |
| ``silent-stream`` | 200 ``text/event-stream``, then nothing, ever |
| ``huge-usage`` | a chat completion with ``prompt_tokens`` 2^64-1 and ``completion_tokens`` -5 |
| ``negative-usage`` | a chat completion with every usage figure negative |
| anything else | 404, recording the request line |

Every request line is kept in `seen`; `sent` counts the body bytes written, so a test can
tell how much the client let in before it hung up.
"""

from __future__ import annotations

import asyncio
import json
import struct
import zlib
from functools import cache
from typing import Any

from datamill_testing.loopback import LoopbackServer

_CHUNK = 64 * 1024


@cache
def gzip_bomb(gibibytes: int = 1) -> bytes:
    """A gzip stream of ``gibibytes`` GiB of zeros in about 1 MiB (one deflate block per MiB,
    each made once and repeated)."""
    zeros = bytes(1 << 20)
    count = gibibytes << 10
    compress = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = compress.compress(zeros) + compress.flush(zlib.Z_FULL_FLUSH)
    # After a full flush the compressor starts afresh: every next MiB compresses the same.
    middle = compress.compress(zeros) + compress.flush(zlib.Z_FULL_FLUSH)
    end = compress.flush()[:-8]  # the last block, without the trailer for 2 MiB
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(zeros, crc)
    trailer = struct.pack("<II", crc, (count << 20) & 0xFFFFFFFF)
    return first + middle * (count - 1) + end + trailer


def _completion(usage: dict[str, Any]) -> bytes:
    # json, not orjson: orjson refuses integers past 64 bits, and this one must send them.
    return json.dumps(
        {
            "id": "chatcmpl-hostile",
            "object": "chat.completion",
            "created": 0,
            "model": "hostile",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hi"},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
    ).encode()


class HostileUpstream(LoopbackServer):
    """Serve with ``async with HostileUpstream() as upstream:``; ``upstream.url(behaviour)``
    is a ``base_url``."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []
        self.sent = 0

    def url(self, behaviour: str) -> str:
        return f"http://127.0.0.1:{self.port}/{behaviour}/v1"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            self.seen.append(lines[0])
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            path = lines[0].split(" ")[1]
            if not await self._answer(path.split("/")[1], writer):
                break

    async def _answer(self, behaviour: str, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection must end."""
        if behaviour == "gzip-bomb":
            bomb = gzip_bomb()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb)
            )
            await self._send(writer, bomb)
            return True
        if behaviour == "endless-body":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            piece = b"%x\r\n%s\r\n" % (_CHUNK, b" " * _CHUNK)
            while True:
                await self._send(writer, piece)
        if behaviour in {"endless-line", "silent-stream"}:
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            await writer.drain()
            if behaviour == "silent-stream":
                await self.closing.wait()  # silent until the test ends
                return False
            line = b"%x\r\ndata: %s\r\n" % (_CHUNK + 6, b"a" * _CHUNK)
            await self._send(writer, line)
            piece = b"%x\r\n%s\r\n" % (_CHUNK, b"a" * _CHUNK)
            while True:
                await self._send(writer, piece)
        if behaviour in {"huge-usage", "negative-usage"}:
            usage: dict[str, Any]
            if behaviour == "huge-usage":
                usage = {
                    "prompt_tokens": 2**64 - 1,
                    "completion_tokens": -5,
                    "total_tokens": 2**70,
                }
            else:
                usage = {
                    "prompt_tokens": -5,
                    "completion_tokens": -1_000_000_000_000,
                    "total_tokens": -5,
                    "prompt_tokens_details": {"cached_tokens": -3},
                }
            body = _completion(usage)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
            return True
        body = b'{"error": {"message": "no such route", "type": "invalid_request_error"}}'
        writer.write(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        return True

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        self.sent += len(data)
        await writer.drain()
