"""Task schemas through the HTTP API, on both stores: the registry (versions kept, soft
delete, 409 and 404), and sample contents checked against the schema a sample follows on
add, edit and import, a catastrophic pattern included."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from tests.api.conftest import Api, assert_error
from tests.api.test_datasets import create, jsonl

QA: dict[str, Any] = {
    "name": "qa",
    "description": "a question and its answer",
    "content": {
        "type": "object",
        "required": ["question", "answer"],
        "properties": {
            "question": {"type": "string", "minLength": 1},
            "answer": {"type": "object", "required": ["text"]},
        },
    },
    "display": {
        "fields": [
            {"field": "question", "label": "Question"},
            {"field": "answer.text", "label": "Answer", "kind": "markdown"},
        ]
    },
}


@pytest.fixture
async def api(make_api) -> Api:
    return await make_api()


async def create_schema(api: Api, schema: dict[str, Any] = QA) -> dict[str, Any]:
    response = await api.client.post("/api/task-schemas", json=schema)
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_schema_is_created_updated_as_new_versions_and_deleted(api: Api):
    created = await create_schema(api)
    assert (created["object"], created["name"], created["version"]) == ("task_schema", "qa", 1)
    assert created["definition"]["review"]["questions"][0]["kind"] == "decision"  # defaults
    assert created["created_by"] is None  # local mode

    again = await api.client.post("/api/task-schemas", json=QA)
    assert_error(again, 409, param="name", code="task_schema_exists")

    changed = {**QA, "description": "v2"}
    updated = await api.client.put("/api/task-schemas/qa", json=changed)
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2

    latest = (await api.client.get("/api/task-schemas/qa")).json()
    assert (latest["version"], latest["definition"]["description"]) == (2, "v2")
    first = (await api.client.get("/api/task-schemas/qa", params={"version": 1})).json()
    assert first["definition"]["description"] == "a question and its answer"
    versions = (await api.client.get("/api/task-schemas/qa/versions")).json()["data"]
    assert [v["version"] for v in versions] == [1, 2]
    listed = (await api.client.get("/api/task-schemas")).json()["data"]
    assert [(s["name"], s["version"]) for s in listed] == [("qa", 2)]

    missing = await api.client.get("/api/task-schemas/qa", params={"version": 3})
    assert_error(missing, 404, param="version")
    renamed = await api.client.put("/api/task-schemas/qa", json={**QA, "name": "other"})
    assert_error(renamed, 400, param="name")

    deleted = await api.client.delete("/api/task-schemas/qa")
    assert deleted.json() == {"object": "task_schema.deleted", "name": "qa", "deleted": True}
    assert_error(await api.client.get("/api/task-schemas/qa"), 404, param="name")
    assert_error(await api.client.put("/api/task-schemas/qa", json=QA), 404, param="name")
    assert_error(await api.client.delete("/api/task-schemas/qa"), 404, param="name")
    assert (await api.client.get("/api/task-schemas")).json()["data"] == []

    # Created again: the versions go on, none is reused.
    assert (await create_schema(api))["version"] == 3


async def test_bad_schemas_are_refused_naming_the_path(api: Api):
    bad_content = {**QA, "content": {"type": "object", "properties": {"a": {"type": "nope"}}}}
    response = await api.client.post("/api/task-schemas", json=bad_content)
    error = assert_error(response, 400, param="content")
    assert "properties/a/type" in error["message"]

    unknown = await api.client.post("/api/task-schemas", json={**QA, "colour": "red"})
    assert_error(unknown, 400, param="colour")
    two_decisions = {
        **QA,
        "review": {
            "questions": [{"name": "a", "kind": "decision"}, {"name": "b", "kind": "decision"}]
        },
    }
    assert_error(
        await api.client.post("/api/task-schemas", json=two_decisions), 400, param="review"
    )
    colliding = {
        **QA,
        "review": {
            "questions": [
                {"name": "decision", "kind": "decision"},
                {"name": "decision_reason", "kind": "text"},
            ]
        },
    }
    error = assert_error(
        await api.client.post("/api/task-schemas", json=colliding), 400, param="schema.review"
    )
    assert "decision_reason" in error["message"]
    bad_name = await api.client.get("/api/task-schemas/_nope")
    assert_error(bad_name, 400, param="name")
    bad_query = await api.client.get("/api/task-schemas", params={"verbose": "1"})
    assert bad_query.status_code == 400


async def test_the_format_and_the_label_studio_config(api: Api):
    form = (await api.client.get("/api/task-schemas/_format")).json()
    assert form["$id"].endswith("task-schema-v1.json")
    assert "review" in form["properties"]

    await create_schema(api)
    response = await api.client.get("/api/task-schemas/qa/label-studio")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    view = ET.fromstring(response.text)
    names = [element.get("name") for element in view.iter() if element.get("name")]
    assert names == [  # the names of `task_schemas.label_studio_names`
        "f_question",
        "f_answer__text",
        "decision",
        "decision_reason",
        "rating",
        "comment",
        "edit__question",
        "edit__answer__text",
    ]
    assert_error(await api.client.get("/api/task-schemas/nope/label-studio"), 404, param="name")


async def test_sample_contents_follow_their_schema_on_add_edit_and_import(api: Api):
    await create_schema(api)
    dataset_id = (await create(api))["id"]
    url = f"/api/datasets/{dataset_id}/samples"

    bad = {"question": "2+2?", "answer": {"txt": "4"}}
    error = assert_error(
        await api.client.post(url, json={"content": bad, "sample_type": "qa"}),
        400,
        param="content.answer",
        code="invalid_content",
    )
    assert "'text' is a required property" in error["message"]
    # No schema names another type, and the dataset has no default: anything goes.
    untyped = await api.client.post(url, json={"content": bad})
    assert untyped.status_code == 200, untyped.text

    good = {"question": "2+2?", "answer": {"text": "4"}}
    added = await api.client.post(url, json={"content": good, "sample_type": "qa"})
    assert added.status_code == 200, added.text
    sample_url = f"{url}/{added.json()['id']}"
    edit = await api.client.patch(sample_url, json={"content": {**good, "question": ""}})
    assert_error(edit, 400, param="content.question", code="invalid_content")
    # Changing the type alone puts the content under another schema's rules.
    retyped = await api.client.patch(f"{url}/{untyped.json()['id']}", json={"sample_type": "qa"})
    assert_error(retyped, 400, param="content.answer", code="invalid_content")
    assert (await api.client.patch(sample_url, json={"topic": "math"})).status_code == 200

    rows = [
        {"content": {"question": "a?", "answer": {"text": "a"}}, "sample_type": "qa"},
        {"content": {"question": "b?"}, "sample_type": "qa"},
        {"content": {"anything": True}},
        {"content": {"question": 3, "answer": {"text": "c"}}, "sample_type": "qa"},
    ]
    response = await api.client.post(
        f"/api/datasets/{dataset_id}/import", files={"file": ("s.jsonl", jsonl(rows))}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("file", "invalid_import")
    assert error["message"].startswith("2 of 4 lines are invalid")
    problems = error["errors"]
    assert [(p["line"], p["param"]) for p in problems] == [(2, "content"), (4, "content.question")]
    listed = (await api.client.get(url)).json()["data"]
    assert len(listed) == 2  # nothing imported

    fixed = [rows[0], rows[2]]
    response = await api.client.post(
        f"/api/datasets/{dataset_id}/import", files={"file": ("s.jsonl", jsonl(fixed))}
    )
    assert response.status_code == 200, response.text
    assert response.json()["imported"] == 2


async def test_a_dataset_default_schema_applies_to_samples_no_schema_names(api: Api):
    await create_schema(api)
    missing = await api.client.post("/api/datasets", json={"name": "d", "task_schema": "nope"})
    assert_error(missing, 404, param="task_schema")
    dataset = await create(api, task_schema="qa")
    assert dataset["task_schema"] == "qa"
    url = f"/api/datasets/{dataset['id']}/samples"
    refused = await api.client.post(url, json={"content": {"x": 1}, "sample_type": "other"})
    assert_error(refused, 400, param="content", code="invalid_content")

    cleared = await api.client.patch(f"/api/datasets/{dataset['id']}", json={"task_schema": None})
    assert cleared.json()["task_schema"] is None
    assert (await api.client.post(url, json={"content": {"x": 1}})).status_code == 200
    again = await api.client.patch(f"/api/datasets/{dataset['id']}", json={"task_schema": "qa"})
    assert again.json()["task_schema"] == "qa"
    # A deleted default is no default: samples fall back to the built-in schema.
    await api.client.delete("/api/task-schemas/qa")
    assert (await api.client.post(url, json={"content": {"x": 2}})).status_code == 200


async def test_a_catastrophic_pattern_is_cut_short_not_hung(api: Api):
    schema = {
        "name": "evil",
        "content": {
            "type": "object",
            "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}},
        },
    }
    await create_schema(api, schema)
    dataset_id = (await create(api))["id"]
    url = f"/api/datasets/{dataset_id}/samples"
    # Warm the worker process, so the timing below is the check alone.
    fine = await api.client.post(url, json={"content": {"s": "aaa"}, "sample_type": "evil"})
    assert fine.status_code == 200, fine.text
    started = time.monotonic()
    content = {"s": "a" * 40 + "!"}
    response = await api.client.post(url, json={"content": content, "sample_type": "evil"})
    elapsed = time.monotonic() - started
    error = assert_error(response, 400, param="content", code="invalid_content")
    assert "took over" in error["message"]
    assert elapsed < 20  # the bound is 1 s; unbounded, this backtracking takes hours
