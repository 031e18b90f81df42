"""`/v1/files` through HTTP, on both stores: upload, list, retrieve, content, delete."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from datamill.api import uploads
from datamill.api.downloads import content_disposition
from datamill.engine.files import BATCH_FILE_LIFETIME, FileService
from datamill.storage.blobs import DatabaseBlobStore
from tests.api.conftest import assert_error
from tests.conftest import mock_deployment
from tests.helpers import chat_line, jsonl, running_worker

FILE_FIELDS = {
    "id",
    "object",
    "bytes",
    "created_at",
    "filename",
    "purpose",
    "status",
    "expires_at",
    "status_details",
}


async def test_upload_answers_the_file_object_field_for_field(make_api):
    api = await make_api()
    data = jsonl([chat_line("a"), chat_line("b")])
    before = int(time.time())

    file = await api.upload(
        data,
        purpose="user_data",
        filename="notes.jsonl",
        **{"expires_after[anchor]": "created_at", "expires_after[seconds]": "3600"},
    )

    assert set(file) == FILE_FIELDS
    assert file["id"].startswith("file-")
    assert file["object"] == "file"
    assert file["bytes"] == len(data)
    assert before - 1 <= file["created_at"] <= int(time.time()) + 1
    assert file["filename"] == "notes.jsonl"
    assert file["purpose"] == "user_data"
    assert file["status"] == "processed"
    assert file["expires_at"] == file["created_at"] + 3600
    assert file["status_details"] is None

    # purpose=batch expires after 30 days unless told otherwise; other purposes never do.
    batch_file = await api.upload(data)
    assert batch_file["purpose"] == "batch"
    assert batch_file["expires_at"] == batch_file["created_at"] + BATCH_FILE_LIFETIME
    kept = await api.upload(data, purpose="user_data")
    assert kept["expires_at"] is None


async def test_list_pages_with_after_limit_order_and_purpose(make_api):
    api = await make_api()
    purposes = ["batch", "user_data", "batch", "user_data", "batch"]
    ids = [(await api.upload(b"{}\n", purpose=p))["id"] for p in purposes]
    newest_first = ids[::-1]

    async def page(**params):
        response = await api.client.get("/v1/files", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"object", "data", "first_id", "last_id", "has_more"}
        assert body["object"] == "list"
        return body

    everything = await page()
    assert [f["id"] for f in everything["data"]] == newest_first
    assert (everything["first_id"], everything["last_id"]) == (newest_first[0], newest_first[-1])
    assert everything["has_more"] is False

    first = await page(limit=2)
    assert [f["id"] for f in first["data"]] == newest_first[:2]
    assert first["has_more"] is True
    assert (first["first_id"], first["last_id"]) == tuple(newest_first[:2])
    second = await page(limit=2, after=first["last_id"])
    assert [f["id"] for f in second["data"]] == newest_first[2:4]
    assert second["has_more"] is True
    last = await page(limit=2, after=second["last_id"])
    assert [f["id"] for f in last["data"]] == newest_first[4:]
    assert last["has_more"] is False
    # A page that holds exactly the rest says there is no more.
    assert (await page(limit=3, after=first["last_id"]))["has_more"] is False

    ascending = await page(order="asc", limit=3)
    assert [f["id"] for f in ascending["data"]] == ids[:3]
    assert ascending["has_more"] is True
    rest = await page(order="asc", after=ascending["last_id"])
    assert [f["id"] for f in rest["data"]] == ids[3:]

    batch_only = await page(purpose="batch")
    assert [f["id"] for f in batch_only["data"]] == [ids[4], ids[2], ids[0]]
    assert {f["purpose"] for f in batch_only["data"]} == {"batch"}
    assert (await page(purpose="batch", limit=1, after=ids[2]))["data"][0]["id"] == ids[0]

    empty = await page(purpose="vision")
    assert empty["data"] == []
    assert (empty["first_id"], empty["last_id"], empty["has_more"]) == (None, None, False)


async def test_retrieve_content_then_delete(make_api):
    api = await make_api()
    data = jsonl([chat_line("a"), chat_line("b", text="héllo ✓")])
    file = await api.upload(data, filename="données 数据.jsonl")

    retrieved = await api.client.get(f"/v1/files/{file['id']}")
    assert retrieved.status_code == 200
    assert retrieved.json() == file

    content = await api.client.get(f"/v1/files/{file['id']}/content")
    assert content.status_code == 200
    assert content.content == data
    assert content.headers["content-length"] == str(len(data))
    # Any filename, even one that is not latin-1, makes a valid header.
    disposition = content.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''donn%C3%A9es%20%E6%95%B0%E6%8D%AE.jsonl" in disposition

    deleted = await api.client.delete(f"/v1/files/{file['id']}")
    assert deleted.status_code == 200
    assert deleted.json() == {"id": file["id"], "object": "file", "deleted": True}

    for method, path in [
        ("GET", f"/v1/files/{file['id']}"),
        ("GET", f"/v1/files/{file['id']}/content"),
        ("DELETE", f"/v1/files/{file['id']}"),
    ]:
        response = await api.client.request(method, path)
        assert_error(response, 404, param="file_id", code="not_found")
    listed = (await api.client.get("/v1/files")).json()["data"]
    assert file["id"] not in {f["id"] for f in listed}


async def test_downloads_are_attachments_never_sniffed(make_api, mock):
    api = await make_api([mock_deployment(mock)])
    mock.control(fail_next=1, error_status=400)
    batch = await api.submit(jsonl([chat_line("bad"), chat_line("good")]))
    async with running_worker(api.runtime):
        done = await api.wait_for(batch["id"])
    html = await api.upload(b"<html><script>alert(1)</script>", filename="x; y=z\\.html")

    for file_id, filename in [
        (done["output_file_id"], f"{batch['id']}_output.jsonl"),
        (done["error_file_id"], f"{batch['id']}_errors.jsonl"),
        (html["id"], None),
    ]:
        response = await api.client.get(f"/v1/files/{file_id}/content")
        assert response.status_code == 200
        assert response.headers["x-content-type-options"] == "nosniff"
        disposition = response.headers["content-disposition"]
        assert disposition.startswith("attachment; filename=")
        if filename is not None:
            assert f'filename="{filename}"' in disposition
    # A backslash in the name cannot escape the quoted string's end.
    assert 'filename="x; y=z_.html"' in disposition
    for route in ("output", "errors"):
        response = await api.client.get(f"/v1/batches/{batch['id']}/{route}")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-disposition"].startswith("attachment; filename=")


def test_a_quote_or_control_character_never_reaches_the_quoted_filename():
    header = content_disposition('a"b\r\nSet-Cookie: c=1\\.jsonl')
    assert header.startswith('attachment; filename="a_b__Set-Cookie: c=1_.jsonl"; filename*=')
    assert "\r" not in header
    assert "\n" not in header


@pytest.mark.parametrize("chunk_size", [1024 * 1024, 65_537])
async def test_content_of_a_large_file_is_exact(make_api, monkeypatch, chunk_size):
    api = await make_api()
    # Small pieces on the way in and an odd blob chunk size: many chunk boundaries to get wrong.
    monkeypatch.setattr(uploads, "_READ_SIZE", 50_000)
    runtime = api.runtime
    blobs = DatabaseBlobStore(runtime.database, chunk_size=chunk_size)
    runtime.files = FileService(runtime.database, blobs, runtime.settings, runtime.clock)
    data = os.urandom(5 * 1024 * 1024 + 123)

    file = await api.upload(data, purpose="user_data", filename="blob.bin")
    assert file["bytes"] == len(data)

    received = hashlib.sha256()
    size = 0
    async with api.client.stream("GET", f"/v1/files/{file['id']}/content") as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(len(data))
        async for piece in response.aiter_bytes():
            received.update(piece)
            size += len(piece)
    assert size == len(data)
    assert received.hexdigest() == hashlib.sha256(data).hexdigest()


async def test_openapi_describes_the_upload_form(make_api):
    api = await make_api()

    spec = (await api.client.get("/openapi.json")).json()

    form = spec["paths"]["/v1/files"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert set(form["schema"]["required"]) == {"file", "purpose"}
    assert form["schema"]["properties"]["file"]["format"] == "binary"
