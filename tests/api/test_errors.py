"""The error paths of the API, walked in one place (STYLE.md): every bad input answers a 4xx in
OpenAI's error shape naming the field at fault, never a 500. Bad *input files* are accepted
by `POST /v1/batches` and fail the batch, with the line, code and message in `errors`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from datamill.errors import StorageError
from tests.api.conftest import assert_error
from tests.conftest import mock_deployment
from tests.helpers import CHAT, chat_line, jsonl, running_worker

MAX_FILE_BYTES = 4096


def multipart(*, purpose: str = "batch", content: bytes = b"{}\n") -> tuple[bytes, str]:
    """A multipart body built by hand (so it can be sent without a Content-Length)."""
    boundary = "datamill-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n{purpose}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body += content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


async def chunked(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_error_walk(make_api):
    api = await make_api(max_file_bytes=MAX_FILE_BYTES, max_file_lines=3)
    client = api.client
    good = await api.upload(jsonl([chat_line("a")]))
    other_purpose = await api.upload(b"{}\n", purpose="user_data")
    batch = await api.create_batch(good["id"])
    too_big, too_big_type = multipart(content=b"x" * (MAX_FILE_BYTES + 1))
    # Over the limit plus the allowance for multipart framing: refused before it is read.
    huge, huge_type = multipart(content=b"x" * (MAX_FILE_BYTES + 100_000))
    body = {"input_file_id": good["id"], "endpoint": CHAT, "completion_window": "24h"}

    # (what, response, status, param, code)
    cases = [
        # -- files ---------------------------------------------------------------------------
        (
            "missing file",
            await client.post("/v1/files", data={"purpose": "batch"}, files={"x": ("a", b"")}),
            400,
            "file",
            "missing_required_parameter",
        ),
        (
            "missing purpose",
            await client.post("/v1/files", files={"file": ("a.jsonl", b"{}\n")}),
            400,
            "purpose",
            "missing_required_parameter",
        ),
        (
            "unknown purpose",
            await client.post(
                "/v1/files", files={"file": ("a.jsonl", b"{}\n")}, data={"purpose": "fun"}
            ),
            400,
            "purpose",
            "invalid_value",
        ),
        (
            "a server-side purpose",
            await client.post(
                "/v1/files", files={"file": ("a.jsonl", b"{}\n")}, data={"purpose": "batch_output"}
            ),
            400,
            "purpose",
            "invalid_value",
        ),
        (
            "not multipart",
            await client.post("/v1/files", json={"file": "x", "purpose": "batch"}),
            400,
            "file",
            None,
        ),
        (
            "multipart without a boundary",
            await client.post(
                "/v1/files", content=b"xx", headers={"content-type": "multipart/form-data"}
            ),
            400,
            "file",
            None,
        ),
        (
            "two files",
            await client.post(
                "/v1/files",
                files=[("file", ("a", b"{}\n")), ("file", ("b", b"{}\n"))],
                data={"purpose": "batch"},
            ),
            400,
            "file",
            None,
        ),
        (
            "file far too large, with Content-Length",
            await client.post("/v1/files", content=huge, headers={"content-type": huge_type}),
            413,
            "file",
            "file_too_large",
        ),
        (
            "file just too large, with Content-Length",
            await client.post("/v1/files", content=too_big, headers={"content-type": too_big_type}),
            413,
            "file",
            "file_too_large",
        ),
        (
            "file too large, streamed without Content-Length",
            await client.post(
                "/v1/files", content=chunked(too_big), headers={"content-type": too_big_type}
            ),
            413,
            "file",
            "file_too_large",
        ),
        (
            "batch file over max_file_lines",
            await client.post(
                "/v1/files",
                files={"file": ("a.jsonl", jsonl([chat_line(f"r{i}") for i in range(4)]))},
                data={"purpose": "batch"},
            ),
            400,
            "file",
            "too_many_requests",
        ),
        (
            "expires_after below the minimum",
            await client.post(
                "/v1/files",
                files={"file": ("a.jsonl", b"{}\n")},
                data={"purpose": "batch", "expires_after[seconds]": "60"},
            ),
            400,
            "expires_after.seconds",
            "invalid_value",
        ),
        (
            "expires_after not a number",
            await client.post(
                "/v1/files",
                files={"file": ("a.jsonl", b"{}\n")},
                data={"purpose": "batch", "expires_after[seconds]": "soon"},
            ),
            400,
            "expires_after.seconds",
            None,
        ),
        (
            "expires_after with another anchor",
            await client.post(
                "/v1/files",
                files={"file": ("a.jsonl", b"{}\n")},
                data={
                    "purpose": "batch",
                    "expires_after[anchor]": "last_used",
                    "expires_after[seconds]": "3600",
                },
            ),
            400,
            "expires_after.anchor",
            None,
        ),
        (
            "expires_after without seconds",
            await client.post(
                "/v1/files",
                files={"file": ("a.jsonl", b"{}\n")},
                data={"purpose": "batch", "expires_after[anchor]": "created_at"},
            ),
            400,
            "expires_after.seconds",
            "missing_required_parameter",
        ),
        ("unknown file", await client.get("/v1/files/file-nope"), 404, "file_id", "not_found"),
        (
            "content of an unknown file",
            await client.get("/v1/files/file-nope/content"),
            404,
            "file_id",
            "not_found",
        ),
        (
            "delete an unknown file",
            await client.delete("/v1/files/file-nope"),
            404,
            "file_id",
            None,
        ),
        ("files limit=0", await client.get("/v1/files?limit=0"), 400, "limit", None),
        ("files limit=10001", await client.get("/v1/files?limit=10001"), 400, "limit", None),
        ("files limit=abc", await client.get("/v1/files?limit=abc"), 400, "limit", None),
        ("files order=sideways", await client.get("/v1/files?order=sideways"), 400, "order", None),
        ("files unknown after", await client.get("/v1/files?after=file-nope"), 400, "after", None),
        # -- batches -------------------------------------------------------------------------
        (
            "malformed JSON",
            await client.post(
                "/v1/batches", content=b"{nope", headers={"content-type": "application/json"}
            ),
            400,
            None,  # no field to name: the body itself is unreadable
            None,
        ),
        ("a JSON array", await client.post("/v1/batches", json=[body]), 400, None, None),
        (
            "missing input_file_id",
            await client.post(
                "/v1/batches", json={k: v for k, v in body.items() if k != "input_file_id"}
            ),
            400,
            "input_file_id",
            "missing_required_parameter",
        ),
        (
            "missing endpoint",
            await client.post(
                "/v1/batches", json={k: v for k, v in body.items() if k != "endpoint"}
            ),
            400,
            "endpoint",
            "missing_required_parameter",
        ),
        (
            "missing completion_window",
            await client.post(
                "/v1/batches", json={k: v for k, v in body.items() if k != "completion_window"}
            ),
            400,
            "completion_window",
            "missing_required_parameter",
        ),
        (
            "unknown endpoint",
            await client.post("/v1/batches", json={**body, "endpoint": "/v1/images/generations"}),
            400,
            "endpoint",
            None,
        ),
        (
            "completion_window 48h",
            await client.post("/v1/batches", json={**body, "completion_window": "48h"}),
            400,
            "completion_window",
            "invalid_value",
        ),
        (
            "17 metadata pairs",
            await client.post(
                "/v1/batches", json={**body, "metadata": {f"k{i}": "v" for i in range(17)}}
            ),
            400,
            "metadata",
            None,
        ),
        (
            "a metadata key over 64 characters",
            await client.post("/v1/batches", json={**body, "metadata": {"k" * 65: "v"}}),
            400,
            "metadata",
            None,
        ),
        (
            "a metadata value over 512 characters",
            await client.post("/v1/batches", json={**body, "metadata": {"k": "v" * 513}}),
            400,
            "metadata",
            None,
        ),
        (
            "a metadata value that is not a string",
            await client.post("/v1/batches", json={**body, "metadata": {"k": 1}}),
            400,
            "metadata.k",
            None,
        ),
        (
            "an unknown field",
            await client.post("/v1/batches", json={**body, "priority": "high"}),
            400,
            "priority",
            None,
        ),
        (
            "an unknown datamill option",
            await client.post("/v1/batches", json={**body, "datamill": {"turbo": True}}),
            400,
            "datamill.turbo",
            None,
        ),
        (
            "an out-of-range datamill option",
            await client.post("/v1/batches", json={**body, "datamill": {"max_retries": -1}}),
            400,
            "datamill.max_retries",
            None,
        ),
        (
            "an idempotency key over 255 characters",
            await client.post("/v1/batches", json=body, headers={"Idempotency-Key": "k" * 256}),
            400,
            "idempotency-key",
            None,
        ),
        (
            "an unknown file",
            await client.post("/v1/batches", json={**body, "input_file_id": "file-nope"}),
            404,
            "input_file_id",
            "not_found",
        ),
        (
            "a file of the wrong purpose",
            await client.post("/v1/batches", json={**body, "input_file_id": other_purpose["id"]}),
            400,
            "input_file_id",
            "invalid_file_purpose",
        ),
        ("unknown batch", await client.get("/v1/batches/batch_nope"), 404, "batch_id", "not_found"),
        (
            "cancel an unknown batch",
            await client.post("/v1/batches/batch_nope/cancel"),
            404,
            "batch_id",
            None,
        ),
        (
            "output of an unknown batch",
            await client.get("/v1/batches/batch_nope/output"),
            404,
            "batch_id",
            None,
        ),
        (
            "errors of an unknown batch",
            await client.get("/v1/batches/batch_nope/errors"),
            404,
            "batch_id",
            None,
        ),
        ("batches limit=0", await client.get("/v1/batches?limit=0"), 400, "limit", None),
        ("batches limit=101", await client.get("/v1/batches?limit=101"), 400, "limit", None),
        (
            "batches unknown after",
            await client.get("/v1/batches?after=batch_nope"),
            400,
            "after",
            None,
        ),
        (
            "a file id as batch cursor",
            await client.get(f"/v1/batches?after={good['id']}"),
            400,
            "after",
            None,
        ),
        # -- routing -------------------------------------------------------------------------
        ("unknown route", await client.get("/v1/nothing"), 404, None, None),
        ("wrong method", await client.put("/v1/files"), 405, None, None),
        (
            "wrong method on a batch",
            await client.delete(f"/v1/batches/{batch['id']}"),
            405,
            None,
            None,
        ),
    ]

    for what, response, status, param, code in cases:
        try:
            assert_error(response, status, param=param, code=code)
        except AssertionError as exc:
            raise AssertionError(f"{what}: {exc}") from None
    responses = {what: response for what, response, *_ in cases}
    early = responses["file far too large, with Content-Length"]
    assert early.json()["error"]["message"].startswith("the upload is")
    streamed = responses["file too large, streamed without Content-Length"]
    assert "content-length" not in streamed.request.headers
    assert streamed.json()["error"]["message"].startswith("the file is larger than")
    assert "allow" in responses["wrong method on a batch"].headers

    # Nothing bad was stored: only the files and the batch made above exist.
    files = (await client.get("/v1/files")).json()["data"]
    assert {f["id"] for f in files} == {good["id"], other_purpose["id"]}
    batches = (await client.get("/v1/batches")).json()["data"]
    assert [b["id"] for b in batches] == [batch["id"]]


# (name, file content, expected errors.data as (line, code, param))
BAD_FILES = [
    (
        "malformed line",
        jsonl([chat_line("a"), '{"custom_id": "b", "method": "POST"', chat_line("c")]),
        [(2, "invalid_json_line", None)],
    ),
    (
        "missing custom_id",
        jsonl([chat_line("a"), {k: v for k, v in chat_line("b").items() if k != "custom_id"}]),
        [(2, "missing_required_parameter", "custom_id")],
    ),
    (
        "duplicate custom_id",
        jsonl([chat_line("a"), chat_line("b"), chat_line("a")]),
        [(3, "duplicate_custom_id", "custom_id")],
    ),
    (
        "wrong method",
        jsonl([{**chat_line("a"), "method": "GET"}]),
        [(1, "invalid_method", "method")],
    ),
    (
        "wrong url",
        jsonl([chat_line("a"), {**chat_line("b"), "url": "/v1/embeddings"}]),
        [(2, "invalid_url", "url")],
    ),
    ("empty file", b"", [(None, "empty_file", None)]),
    ("blank lines only", b"\n\n  \n", [(None, "empty_file", None)]),
    (
        "non-UTF-8 bytes",
        jsonl([chat_line("a"), b'{"custom_id": "b\xff\xfe", "method": "POST"}']),
        [(2, "invalid_utf8", None)],
    ),
    (
        "oversized line",
        jsonl([chat_line("a"), chat_line("b", text="x" * 3000), chat_line("c")]),
        [(2, "line_too_large", None)],
    ),
    (
        "missing model",
        jsonl([chat_line("a", model="")]),
        [(1, "missing_required_parameter", "body.model")],
    ),
]


async def test_bad_input_files_fail_the_batch(make_api, mock):
    api = await make_api([mock_deployment(mock)], max_line_bytes=1024, max_file_lines=10)
    created = {}
    for name, content, _ in BAD_FILES:
        batch = await api.submit(content)
        assert batch["status"] == "validating", name
        created[name] = batch["id"]
    # A body only the provider refuses: the batch completes, the line is in the error file.
    refused = await api.submit(jsonl([chat_line("ok"), chat_line("no", model="reject-me")]))

    async with running_worker(api.runtime):
        results = {name: await api.wait_for(batch_id) for name, batch_id in created.items()}
        refused = await api.wait_for(refused["id"])

    for name, _, expected in BAD_FILES:
        batch = results[name]
        assert batch["status"] == "failed", (name, batch)
        assert batch["failed_at"] is not None
        assert batch["in_progress_at"] is None
        assert batch["output_file_id"] is None
        assert batch["error_file_id"] is None
        assert batch["errors"]["object"] == "list"
        errors = batch["errors"]["data"]
        assert [(e["line"], e["code"], e["param"]) for e in errors] == expected, (name, errors)
        assert all(set(e) == {"code", "message", "param", "line"} for e in errors)
        assert all(e["message"] for e in errors)
    assert mock.stats()["total"] == 2, "no request of a failed batch reached the provider"

    assert refused["status"] == "completed"
    assert refused["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
    _, [line] = await api.lines(f"/v1/files/{refused['error_file_id']}/content")
    assert line["custom_id"] == "no"
    assert line["response"]["status_code"] == 400
    assert line["response"]["body"]["error"]["code"] == "invalid_value"
    assert "reject-me" in line["response"]["body"]["error"]["message"]
    # The provider answered: `error` is null, datamill's category has a field of its own.
    assert (line["error"], line["datamill_category"]) == (None, "bad_request")


async def test_store_and_internal_failures_keep_the_error_shape(make_api, monkeypatch):
    api = await make_api()

    async def store_down(**_):
        raise StorageError("the store is not usable: connection refused")

    monkeypatch.setattr(api.runtime.batches, "list", store_down)
    response = await api.client.get("/v1/batches")
    error = assert_error(response, 503, param=None, code="store_unavailable")
    assert error["type"] == "server_error"

    async def broken(*_, **__):
        raise RuntimeError("internal detail: sk-never-shown")

    monkeypatch.setattr(api.runtime.files, "get", broken)
    # Starlette re-raises after answering; a real server logs it and the client sees the 500.
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        response = await client.get("/v1/files/file-x")
    error = assert_error(response, 500, param=None, code="internal_error")
    assert error["type"] == "server_error"
    assert "sk-never-shown" not in response.text
