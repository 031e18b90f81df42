"""`POST /api/files/validate` on both stores: a file's errors by line, as creating its batch
would report them, with an upload's limits, and nothing stored."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from datamill.storage.schema import batches, blobs, files
from tests.api.conftest import assert_error
from tests.conftest import mock_deployment
from tests.helpers import CHAT, chat_line, jsonl, running_worker


async def validate(api, data: bytes, **fields: str):
    return await api.client.post(
        "/api/files/validate",
        files={"file": ("in.jsonl", data)},
        data={"endpoint": CHAT, **fields},
    )


async def stored_rows(api) -> tuple[int, int, int]:
    async with api.runtime.database.read() as conn:
        return tuple(
            [
                await conn.scalar(select(func.count()).select_from(table))
                for table in (files, blobs, batches)
            ]
        )


async def test_a_file_s_errors_are_listed_by_line_and_nothing_is_stored(make_api, mock):
    api = await make_api([mock_deployment(mock, model="mock-model")])
    before = await stored_rows(api)
    data = jsonl(
        [
            chat_line("a"),
            "{not json",
            "",  # blank lines are skipped, as validation skips them
            {"custom_id": "c", "method": "POST", "url": "/v1/embeddings", "body": {}},
            chat_line("d", model="nobody-serves-this"),
            chat_line("a"),  # a repeated custom_id
            chat_line("f"),
            chat_line("a"),
        ]
    )

    response = await validate(api, data)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["object"], report["total"], report["valid"]) == ("file.validation", 7, 2)
    errors = [(e["line"], e["code"], e["param"]) for e in report["errors"]]
    assert errors == [
        (2, "invalid_json_line", None),
        (4, "invalid_url", "url"),
        (5, "model_not_found", "body.model"),
        (8, "duplicate_custom_id", "custom_id"),  # once, on its last use, as validation does
    ]
    assert "line 1" in report["errors"][-1]["message"]
    assert report["error_lines"] == 4
    assert report["models"] == [{"model": "mock-model", "requests": 2, "deployments": ["mock"]}]
    assert await stored_rows(api) == before


async def test_the_check_reports_what_creating_the_batch_would(make_api, mock):
    # The same file, checked and then run: the batch fails with the same errors.
    api = await make_api([mock_deployment(mock, model="mock-model")])
    data = jsonl([chat_line("a"), chat_line("b", model="nope"), {"custom_id": "c"}])

    checked = (await validate(api, data)).json()["errors"]
    batch = await api.submit(data)
    async with running_worker(api.runtime):
        failed = await api.wait_for(batch["id"])
    assert failed["status"] == "failed"
    assert checked == failed["errors"]["data"]


async def test_the_check_has_the_limits_of_an_upload(make_api):
    api = await make_api(max_file_bytes=1000, max_file_lines=3)
    before = await stored_rows(api)

    too_big = await validate(api, jsonl(chat_line(f"r{i}", text="x" * 400) for i in range(3)))
    assert_error(too_big, 413, param="file", code="file_too_large")
    too_long = await validate(api, b"{}\n" * 4)
    assert_error(too_long, 400, param="file", code="too_many_requests")
    assert "4 lines" in too_long.json()["error"]["message"]
    assert await stored_rows(api) == before


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"endpoint": ""}, "endpoint", "missing_required_parameter"),
        ({"endpoint": "/v1/images"}, "endpoint", "invalid_value"),
        ({"mode": "turbo"}, "mode", "invalid_value"),
        ({"purpose": "fine-tune"}, "purpose", None),
    ],
)
async def test_bad_fields_are_refused_naming_them(make_api, fields, param, code):
    api = await make_api()
    response = await validate(api, jsonl([chat_line("a")]), **fields)
    assert_error(response, 400, param=param, code=code)


async def test_a_check_without_a_file_is_refused(make_api):
    api = await make_api()
    response = await api.client.post("/api/files/validate", data={"endpoint": CHAT}, files={})
    assert response.status_code == 400
    no_file = await api.client.post(
        "/api/files/validate", files={"other": ("x", b"")}, data={"endpoint": CHAT}
    )
    assert_error(no_file, 400, param="file", code="missing_required_parameter")
