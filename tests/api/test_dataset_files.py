"""Dataset imports (validated all or nothing, errors located by line and field, duplicates
reported) and exports (JSONL that imports back as it was, Parquet read back with pyarrow),
through the HTTP API on both stores."""

from __future__ import annotations

import io
import sys
from typing import Any

import orjson
import pytest

from tests.api.conftest import Api, assert_error
from tests.api.test_datasets import ROWS, create, import_rows, jsonl, row, samples


@pytest.fixture
async def api(make_api) -> Api:
    return await make_api()


async def post_import(api: Api, dataset_id: str, data: bytes, **kwargs: Any) -> Any:
    return await api.client.post(
        f"/api/datasets/{dataset_id}/import", files={"file": ("in.jsonl", data)}, **kwargs
    )


async def test_duplicates_in_the_file_and_in_the_dataset_are_reported_not_stored(api: Api):
    dataset_id = (await create(api))["id"]
    first = await import_rows(api, dataset_id, ROWS[:2])
    [kept] = await samples(api, dataset_id, q="even")
    data = jsonl(
        [
            row("A brand new question"),
            {"content": {"answer": "name an even prime! ", "question": "NAME  AN EVEN PRIME"}},
            row("A brand new question", topic="other"),  # same content as line 1
        ]
    )

    report = (await post_import(api, dataset_id, b"\n" + data)).json()

    assert (first["lines"], first["imported"], first["duplicates"]) == (2, 2, 0)
    [new] = [
        s
        for s in await samples(api, dataset_id)
        if s["id"] != kept["id"] and "brand" in s["content"]["question"]
    ]
    assert report == {
        "object": "dataset.import",
        "dataset_id": dataset_id,
        "lines": 3,
        "imported": 1,
        "duplicates": 2,
        "duplicate_lines": [
            {"line": 3, "duplicate_of": kept["id"]},  # blank line 1 counts
            {"line": 4, "duplicate_of": new["id"]},
        ],
    }
    assert len(await samples(api, dataset_id)) == 3


async def test_invalid_lines_are_located_and_nothing_is_imported(api: Api):
    dataset_id = (await create(api))["id"]
    await import_rows(api, dataset_id, ROWS[:1])
    lines = [
        orjson.dumps(row("fine")),  # 1
        b"{not json",  # 2
        b"",  # 3: blank, skipped but counted
        orjson.dumps({"topic": "x"}),  # 4
        orjson.dumps(row("t", topic=5)),  # 5
        orjson.dumps(row("c", provenance={"cost": -1})),  # 6
        orjson.dumps(row("u", colour="red")),  # 7
        b"[1, 2]",  # 8
        orjson.dumps({"content": {}}),  # 9
        b'{"content": {"a": "\xff"}}',  # 10: not UTF-8
        orjson.dumps(row("also fine")),  # 11
        b'{"content": {"a": ' + b"[" * 300 + b"]" * 300 + b"}}",  # 12: once a 500
    ]

    response = await post_import(api, dataset_id, b"\r\n".join(lines))

    error = response.json()["error"]
    assert response.status_code == 400
    assert (error["param"], error["code"], error["line"]) == ("file", "invalid_import", 2)
    assert error["message"] == "9 of 11 lines are invalid; nothing was imported"
    located = [(e["line"], e["param"]) for e in error["errors"]]
    assert located == [
        (2, None),
        (4, "content"),
        (5, "topic"),
        (6, "provenance.cost"),
        (7, "colour"),
        (8, None),
        (9, "content"),
        (10, None),
        (12, None),
    ]
    assert "more than 128 levels deep" in error["errors"][-1]["message"]
    assert all(e["message"] for e in error["errors"])
    assert "Value error" not in str(error)
    assert len(await samples(api, dataset_id)) == 1  # the good lines were not kept either


async def test_a_failed_import_rolls_back_samples_it_had_stored(api: Api):
    # 700 good lines (stored in a first chunk of 500) before a bad one: none stays.
    dataset_id = (await create(api))["id"]
    data = jsonl([row(f"q{i}") for i in range(700)]) + b'{"content": 1}\n'

    response = await post_import(api, dataset_id, data)

    assert response.json()["error"]["errors"] == [
        {"line": 701, "param": "content", "message": "Input should be a valid dictionary"}
    ]
    assert await samples(api, dataset_id) == []


async def test_the_problems_listed_are_capped_but_all_counted(api: Api):
    dataset_id = (await create(api))["id"]

    response = await post_import(api, dataset_id, b"nope\n" * 150)

    error = response.json()["error"]
    assert error["message"] == "150 of 150 lines are invalid; nothing was imported"
    assert len(error["errors"]) == 100


async def test_upload_limits(make_api):
    api = await make_api(max_line_bytes=200, max_file_bytes=10_000)
    dataset_id = (await create(api))["id"]

    long_line = await post_import(api, dataset_id, jsonl([row("x" * 300), row("short")]))
    too_big = await post_import(api, dataset_id, jsonl([row(f"{i}" * 40) for i in range(200)]))

    assert long_line.json()["error"]["errors"] == [
        {"line": 1, "param": None, "message": "the line is longer than 200 bytes"}
    ]
    assert_error(too_big, 413, param="file", code="file_too_large")
    assert await samples(api, dataset_id) == []


@pytest.mark.parametrize(
    ("kwargs", "param", "code"),
    [
        ({"files": {"file": ("in.jsonl", b"")}}, "file", "empty_file"),
        ({"files": {"file": ("in.jsonl", b"\n  \n")}}, "file", "empty_file"),
        ({"files": {"other": ("in.jsonl", b"{}")}}, "file", "missing_required_parameter"),
        ({"content": b'{"content": {"a": 1}}'}, "file", None),
        ({"data": {"file": "not a file"}}, "file", None),
    ],
)
async def test_bad_uploads_are_400s_naming_file(api: Api, kwargs: dict[str, Any], param, code):
    dataset_id = (await create(api))["id"]

    response = await api.client.post(f"/api/datasets/{dataset_id}/import", **kwargs)

    assert_error(response, 400, param=param, code=code)


async def test_a_jsonl_export_imports_back_as_it_was(api: Api):
    source = (await create(api, "source"))["id"]
    provenance = {"source": "generation", "spec": "faq", "spec_version": 2, "cost": 0.5}
    await import_rows(
        api, source, [*ROWS, row("with provenance", provenance=provenance, metadata={"k": [1]})]
    )

    exported = await api.client.get(f"/api/datasets/{source}/export")
    copy = (await create(api, "copy"))["id"]
    report = await post_import(api, copy, exported.content)

    assert exported.headers["content-type"] == "application/jsonl"
    assert exported.headers["content-disposition"] == (
        "attachment; filename=\"source.jsonl\"; filename*=UTF-8''source.jsonl"
    )
    assert report.json()["imported"] == 5

    def comparable(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [
            (s["content"], s["topic"], s["sample_type"], s["model"], s["provenance"], s["metadata"])
            for s in items
        ]

    original = await samples(api, source, order="asc")
    copied = await samples(api, copy, order="asc")
    assert comparable(copied) == comparable(original)
    assert original[-1]["provenance"] == {
        **provenance,
        "input_tokens": 0,
        "output_tokens": 0,
    }


async def test_exports_take_the_list_filters(api: Api):
    dataset_id = (await create(api))["id"]
    await import_rows(api, dataset_id, ROWS)
    [cubism] = await samples(api, dataset_id, q="cubism")
    await api.client.delete(f"/api/datasets/{dataset_id}/samples/{cubism['id']}")

    async def exported(**params: Any) -> list[str]:
        response = await api.client.get(f"/api/datasets/{dataset_id}/export", params=params)
        assert response.status_code == 200, response.text
        return [orjson.loads(line)["content"]["question"] for line in response.content.splitlines()]

    assert await exported() == [r["content"]["question"] for r in ROWS[:3]]
    assert await exported(topic="math", q="even") == ["Name an even prime"]
    assert await exported(deleted="only") == ["Tell me about Cubism"]
    assert await exported(topic="nothing") == []


async def test_a_parquet_export_reads_back_with_pyarrow(api: Api, monkeypatch: pytest.MonkeyPatch):
    import pyarrow.parquet as pq

    from datamill.curation import exporting

    monkeypatch.setattr(exporting, "EXPORT_PAGE", 2)  # three row groups for five samples
    dataset_id = (await create(api, "faq"))["id"]
    await import_rows(
        api, dataset_id, [*ROWS, row("x", provenance={"input_tokens": 7}, metadata={"m": 1})]
    )

    response = await api.client.get(
        f"/api/datasets/{dataset_id}/export", params={"format": "parquet"}
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"faq.parquet\"; filename*=UTF-8''faq.parquet"
    )
    assert response.headers["x-content-type-options"] == "nosniff"
    parquet = pq.ParquetFile(io.BytesIO(response.content))
    table = parquet.read().to_pylist()
    assert parquet.metadata.num_row_groups == 3
    assert parquet.schema_arrow.names == [
        "id",
        "topic",
        "sample_type",
        "status",
        "model",
        "content",
        "metadata",
        "provenance",
        "created_at",
    ]
    listed = await samples(api, dataset_id, order="asc")
    assert [r["id"] for r in table] == [s["id"] for s in listed]
    assert [orjson.loads(r["content"]) for r in table] == [s["content"] for s in listed]
    assert [r["topic"] for r in table] == [s["topic"] for s in listed]
    assert orjson.loads(table[-1]["provenance"])["input_tokens"] == 7
    assert orjson.loads(table[-1]["metadata"]) == {"m": 1}
    assert table[0]["metadata"] is None
    assert all(isinstance(r["created_at"], int) for r in table)


async def test_an_empty_parquet_export_is_a_valid_file(api: Api):
    import pyarrow.parquet as pq

    dataset_id = (await create(api))["id"]

    response = await api.client.get(f"/api/datasets/{dataset_id}/export?format=parquet")

    assert pq.read_table(io.BytesIO(response.content)).num_rows == 0


async def test_parquet_without_pyarrow_is_a_400_naming_format(
    api: Api, monkeypatch: pytest.MonkeyPatch
):
    dataset_id = (await create(api))["id"]
    # As if the `export` extra were not installed: importing pyarrow fails.
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)

    response = await api.client.get(f"/api/datasets/{dataset_id}/export?format=parquet")
    jsonl_still_works = await api.client.get(f"/api/datasets/{dataset_id}/export")

    error = assert_error(response, 400, param="format", code="export_unavailable")
    assert "datamill[export]" in error["message"]
    assert jsonl_still_works.status_code == 200


async def test_a_large_import_refreshes_postgresqls_statistics(
    api: Api, monkeypatch: pytest.MonkeyPatch
):
    if api.runtime.database.dialect != "postgresql":
        pytest.skip("SQLite's planner needs no statistics")
    from sqlalchemy import text

    from datamill.curation import importing

    monkeypatch.setattr(importing, "ANALYZE_AFTER", 3)
    dataset_id = (await create(api))["id"]
    query = text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'samples'")

    await import_rows(api, dataset_id, ROWS[:2])
    await import_rows(api, dataset_id, ROWS)  # 2 duplicates: 2 imported, not enough
    async with api.runtime.database.read() as conn:
        before = await conn.scalar(query)
    await import_rows(api, dataset_id, [row(f"n{i}") for i in range(3)])
    async with api.runtime.database.read() as conn:
        after = await conn.scalar(query)

    assert before is None
    assert after is not None
