"""Request body limits (datamill/api/guard.py) through HTTP: a body over its route's limit is
a 413 before it is read when its length is announced, and as soon as it passes the limit
when it is sent chunked; nothing past the limit is read, held or spooled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import orjson

from datamill.api.uploads import FORM_OVERHEAD
from tests.api.conftest import assert_error
from tests.helpers import chat_line, jsonl

CHUNK = 16 * 1024


class Body:
    """A body sent in chunks, counting how much of it the server asked for."""

    def __init__(self, data: bytes, *, chunk: int = CHUNK) -> None:
        self.data = data
        self.chunk = chunk
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), self.chunk):
            chunk = self.data[start : start + self.chunk]
            self.sent += len(chunk)
            yield chunk


def chat_body(size: int) -> bytes:
    text = "x" * size
    return orjson.dumps({"model": "sim", "messages": [{"role": "user", "content": text}]})


async def test_a_json_body_over_the_limit_is_refused_before_it_is_read(make_api):
    api = await make_api(max_body_bytes=64 * 1024)
    body = Body(orjson.dumps({"name": "x", "description": "d" * 1_000_000}))
    headers = {"content-type": "application/json", "content-length": str(len(body.data))}

    response = await api.client.post("/api/datasets", content=body, headers=headers)

    error = assert_error(response, 413, param=None, code="request_too_large")
    assert "DATAMILL_MAX_BODY_BYTES" in error["message"]
    assert body.sent == 0
    assert (await api.client.get("/api/datasets")).json()["data"] == []


async def test_a_chunked_json_body_is_cut_at_the_limit(make_api):
    api = await make_api(max_body_bytes=64 * 1024)
    body = Body(orjson.dumps({"name": "x", "description": "d" * 1_000_000}))

    response = await api.client.post(
        "/api/datasets", content=body, headers={"content-type": "application/json"}
    )

    assert_error(response, 413, param=None, code="request_too_large")
    assert body.sent <= 64 * 1024 + CHUNK
    assert (await api.client.get("/api/datasets")).json()["data"] == []


async def test_chunked_json_bodies_under_the_limit_reach_their_route(make_api):
    api = await make_api(max_body_bytes=64 * 1024)
    body = Body(orjson.dumps({"name": "chunked", "description": "d" * 9_000}), chunk=1000)

    response = await api.client.post(
        "/api/datasets", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["description"] == "d" * 9_000


async def test_the_gateway_takes_larger_bodies_up_to_its_own_limit(make_api):
    api = await make_api(max_body_bytes=16 * 1024, max_gateway_body_bytes=256 * 1024)

    for chunked in (False, True):
        data = chat_body(100 * 1024)
        content = Body(data) if chunked else data
        answered = await api.client.post(
            "/v1/chat/completions", content=content, headers={"content-type": "application/json"}
        )
        assert answered.status_code == 200, answered.text
        too_big = Body(chat_body(300 * 1024))
        refused = await api.client.post(
            "/v1/chat/completions", content=too_big, headers={"content-type": "application/json"}
        )
        error = assert_error(refused, 413, param=None, code="request_too_large")
        assert "DATAMILL_MAX_GATEWAY_BODY_BYTES" in error["message"]
        assert too_big.sent <= 256 * 1024 + CHUNK


async def test_a_chunked_upload_stops_at_the_limit_while_it_streams(make_api):
    limit = 256 * 1024
    api = await make_api(max_file_bytes=limit)
    line = jsonl([chat_line("a")])
    data = line * (20 * limit // len(line))
    boundary = "limitboundary"
    form = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n'
        "Content-Type: application/jsonl\r\n\r\n"
    ).encode()
    body = Body(form + data + f"\r\n--{boundary}--\r\n".encode())
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}

    for path in ("/v1/files", "/api/files/validate"):
        body.sent = 0
        response = await api.client.post(path, content=body, headers=headers)
        error = assert_error(response, 413, param="file", code="file_too_large")
        assert "DATAMILL_MAX_FILE_BYTES" in error["message"]
        # Read no further than the limit (and the form's share): never the 5 MiB sent.
        assert body.sent <= limit + FORM_OVERHEAD + CHUNK, path

    assert (await api.client.get("/v1/files")).json()["data"] == []


async def test_a_real_server_answers_a_huge_announced_body_without_reading_it(make_api, serve):
    served = await serve(await make_api())
    address = urlsplit(served.url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    # 800 MB announced, none of it sent: the answer comes from the headers alone.
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 800000000\r\n\r\n"
    )
    await writer.drain()

    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
    writer.close()

    assert head.startswith(b"HTTP/1.1 413 "), head
