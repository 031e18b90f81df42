"""NUL characters where PostgreSQL's text cannot hold them (ids, names, cursors): a 400
naming the field on every route, on both stores, never a 500."""

from __future__ import annotations

import pytest

from tests.api.conftest import assert_error
from tests.helpers import chat_line, jsonl

PATHS = [
    ("GET", "/v1/files/file-%00", "file_id"),
    ("DELETE", "/v1/files/file-%00", "file_id"),
    ("GET", "/v1/files/file-%00/content", "file_id"),
    ("GET", "/v1/files?after=file-%00", "after"),
    ("GET", "/v1/batches/batch_%00", "batch_id"),
    ("POST", "/v1/batches/batch_%00/cancel", "batch_id"),
    ("GET", "/v1/batches/batch_%00/output", "batch_id"),
    ("GET", "/api/batches/batch_%00/timeline", "batch_id"),
    ("GET", "/v1/batches?after=batch_%00", "after"),
    ("GET", "/v1/responses/resp_%00", "response_id"),
    ("GET", "/api/generation/jobs/gen_%00/coverage", "job_id"),
]


@pytest.mark.parametrize(("method", "path", "param"), PATHS)
async def test_a_nul_in_a_path_or_query_is_a_400_naming_it(make_api, method, path, param):
    api = await make_api()

    response = await api.client.request(method, path)

    assert_error(response, 400, param=param, code="invalid_value")
    assert "NUL" in response.json()["error"]["message"]


def multipart(filename: bytes, data: bytes, **fields: str) -> tuple[bytes, dict[str, str]]:
    """A multipart body written out by hand (httpx would escape the NUL as ``%00``)."""
    boundary = b"nulboundary"
    parts = [
        b'Content-Disposition: form-data; name="%s"\r\n\r\n%s' % (k.encode(), v.encode())
        for k, v in fields.items()
    ]
    parts.append(
        b'Content-Disposition: form-data; name="file"; filename="%s"\r\n'
        b"Content-Type: application/jsonl\r\n\r\n%s" % (filename, data)
    )
    body = b"".join(b"--%s\r\n%s\r\n" % (boundary, part) for part in parts)
    body += b"--%s--\r\n" % boundary
    return body, {"content-type": f"multipart/form-data; boundary={boundary.decode()}"}


async def test_a_nul_in_an_uploads_filename_or_field_is_a_400(make_api):
    api = await make_api()
    data = jsonl([chat_line("a")])
    fields = {"purpose": "batch", "endpoint": "/v1/chat/completions"}

    for path in ("/v1/files", "/api/files/validate"):
        body, headers = multipart(b"a\x00b.jsonl", data, **fields)
        response = await api.client.post(path, content=body, headers=headers)
        assert_error(response, 400, param="file")
        assert "NUL" in response.json()["error"]["message"]
    body, headers = multipart(b"a.jsonl", data, purpose="ba\x00tch")
    purpose = await api.client.post("/v1/files", content=body, headers=headers)
    assert_error(purpose, 400, param="purpose")

    listed = await api.client.get("/v1/files")
    assert listed.json()["data"] == []


async def test_a_nul_in_a_batchs_input_file_id_is_a_400(make_api):
    api = await make_api()
    body = {"input_file_id": "file-\x00", "endpoint": "/v1/chat/completions"}

    response = await api.client.post("/v1/batches", json={**body, "completion_window": "24h"})

    assert_error(response, 400, param="input_file_id", code="invalid_value")
    assert "NUL" in response.json()["error"]["message"]
