"""Samples added and edited one at a time through the HTTP API, on both stores: every
change keeps the previous version, a past version comes back as a new one, a content never
becomes the content of another live sample, and the history names who made each change."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from datamill.protocol.access import Role
from datamill.storage.schema import DEFAULT_PROJECT_ID
from tests.api.conftest import Api, assert_error
from tests.api.test_authorization import make_key
from tests.api.test_datasets import create, import_rows, row, samples


@pytest.fixture
async def api(make_api) -> Api:
    return await make_api()


def sample_url(dataset_id: str, sample_id: str = "") -> str:
    base = f"/api/datasets/{dataset_id}/samples"
    return f"{base}/{sample_id}" if sample_id else base


async def add(api: Api, dataset_id: str, **body: Any) -> dict[str, Any]:
    response = await api.client.post(sample_url(dataset_id), json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def history(api: Api, dataset_id: str, sample_id: str) -> list[dict[str, Any]]:
    response = await api.client.get(f"{sample_url(dataset_id, sample_id)}/history")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    assert body["has_more"] is False
    return body["data"]


async def test_add_edit_and_restore_a_sample_keeping_every_version(api: Api):
    dataset_id = (await create(api))["id"]
    added = await add(
        api, dataset_id, content={"q": "2+2?", "a": "5"}, topic="math", metadata={"by": "hand"}
    )
    sample_id = added["id"]
    assert (added["topic"], added["status"], added["metadata"]) == (
        "math",
        "accepted",
        {"by": "hand"},
    )
    assert added["provenance"]["source"] == "api"

    edited = await api.client.patch(
        sample_url(dataset_id, sample_id),
        json={"content": {"q": "2+2?", "a": "4"}, "sample_type": "qa", "metadata": None},
    )
    assert edited.status_code == 200, edited.text
    now = edited.json()
    assert (now["content"], now["sample_type"], now["metadata"]) == (
        {"q": "2+2?", "a": "4"},
        "qa",
        None,
    )
    assert now["content_hash"] != added["content_hash"]
    # The search index follows the new content.
    assert [s["id"] for s in await samples(api, dataset_id, q="4")] == [sample_id]
    assert await samples(api, dataset_id, q="5") == []

    versions = await history(api, dataset_id, sample_id)
    assert [(v["version"], v["action"]) for v in versions] == [(1, "created"), (2, "edited")]
    assert versions[0]["content"] == {"q": "2+2?", "a": "5"}
    assert versions[1]["changed"] == ["content", "sample_type", "metadata"]
    assert [v["changed_by"] for v in versions] == [None, None]  # local mode: no key

    restored = await api.client.post(f"{sample_url(dataset_id, sample_id)}/history/1/restore")
    assert restored.status_code == 200, restored.text
    back = restored.json()
    assert (back["content"], back["sample_type"], back["metadata"]) == (
        {"q": "2+2?", "a": "5"},
        None,
        {"by": "hand"},
    )
    versions = await history(api, dataset_id, sample_id)
    assert [(v["version"], v["action"], v["restored_from"]) for v in versions] == [
        (1, "created", None),
        (2, "edited", None),
        (3, "restored", 1),
    ]
    # A change that changes nothing writes no version.
    same = await api.client.patch(sample_url(dataset_id, sample_id), json={"topic": "math"})
    assert same.status_code == 200, same.text
    assert len(await history(api, dataset_id, sample_id)) == 3


async def test_an_imported_sample_has_one_version_until_it_changes(api: Api):
    dataset_id = (await create(api))["id"]
    await import_rows(api, dataset_id, [row("What is a prime?", topic="math")])
    [sample] = await samples(api, dataset_id)
    [only] = await history(api, dataset_id, sample["id"])
    assert (only["version"], only["action"], only["content"]) == (1, "created", sample["content"])

    await api.client.patch(sample_url(dataset_id, sample["id"]), json={"topic": "numbers"})
    versions = await history(api, dataset_id, sample["id"])
    assert [(v["topic"], v["changed"]) for v in versions] == [("math", []), ("numbers", ["topic"])]
    assert versions[0]["changed_at"] == sample["created_at"]


async def test_a_content_another_live_sample_has_is_a_409(api: Api):
    dataset_id = (await create(api))["id"]
    first = await add(api, dataset_id, content={"q": "a"})
    second = await add(api, dataset_id, content={"q": "b"})

    duplicate = await api.client.post(sample_url(dataset_id), json={"content": {"q": "a"}})
    error = assert_error(duplicate, 409, param="content", code="duplicate_sample")
    assert first["id"] in error["message"]
    clash = await api.client.patch(
        sample_url(dataset_id, second["id"]), json={"content": {"q": "a"}}
    )
    assert_error(clash, 409, param="content", code="duplicate_sample")
    assert len(await history(api, dataset_id, second["id"])) == 1  # nothing written
    # Once the first is deleted, its content is free; restoring it is then refused.
    await api.client.delete(sample_url(dataset_id, first["id"]))
    moved = await api.client.patch(
        sample_url(dataset_id, second["id"]), json={"content": {"q": "a"}}
    )
    assert moved.status_code == 200, moved.text
    back = await api.client.post(f"{sample_url(dataset_id, first['id'])}/restore")
    assert_error(back, 409, param="sample_id", code="duplicate_sample")
    # Restoring second's version 1 clashes with nothing: its old content is free.
    again = await api.client.post(f"{sample_url(dataset_id, second['id'])}/history/1/restore")
    assert again.status_code == 200, again.text
    assert again.json()["content"] == {"q": "b"}


async def test_bad_edits_are_4xx_naming_the_field(api: Api):
    dataset_id = (await create(api))["id"]
    sample = await add(api, dataset_id, content={"q": "a"})
    url = sample_url(dataset_id, sample["id"])
    for body, param in (
        ({"colour": "red"}, "colour"),
        ({"content": None}, "content"),
        ({"content": {}}, "content"),
        ({"content": "text"}, "content"),
        ({"topic": ""}, "topic"),
        ({"status": "accepted"}, "status"),
        ({"metadata": [1]}, "metadata"),
    ):
        assert_error(await api.client.patch(url, json=body), 400, param=param)
    assert_error(await api.client.post(sample_url(dataset_id), json={}), 400, param="content")
    assert_error(
        await api.client.post(sample_url(dataset_id), json={"content": {"q": "x"}, "id": "s"}),
        400,
        param="id",
    )
    missing = await api.client.patch(sample_url(dataset_id, "smp_nope"), json={"topic": "x"})
    assert_error(missing, 404, param="sample_id")
    gone_dataset = await api.client.post(sample_url("ds_nope"), json={"content": {"q": "x"}})
    assert_error(gone_dataset, 404, param="dataset_id")
    no_version = await api.client.post(f"{url}/history/7/restore")
    assert_error(no_version, 404, param="version")
    assert_error(await api.client.post(f"{url}/history/0/restore"), 400, param="version")
    assert_error(await api.client.post(f"{url}/history/x/restore"), 400, param="version")
    # A deleted sample is restored before it is changed.
    await api.client.delete(url)
    deleted = await api.client.patch(url, json={"topic": "x"})
    assert_error(deleted, 409, param="sample_id", code="sample_deleted")


async def test_the_history_names_the_key_that_made_each_change(api: Api):
    # The key exists before the first request: the server then wants keys from the start.
    key, key_id = await make_key(api, DEFAULT_PROJECT_ID, Role.reviewer)
    headers = {"Authorization": f"Bearer {key}"}
    admin, _ = await make_key(api, DEFAULT_PROJECT_ID, Role.admin)
    created = await api.client.post(
        "/api/datasets", json={"name": "faq"}, headers={"Authorization": f"Bearer {admin}"}
    )
    dataset_id = created.json()["id"]
    added = await api.client.post(
        sample_url(dataset_id), json={"content": {"q": "a"}}, headers=headers
    )
    assert added.status_code == 200, added.text
    sample_id = added.json()["id"]
    edited = await api.client.patch(
        sample_url(dataset_id, sample_id), json={"topic": "t"}, headers=headers
    )
    assert edited.status_code == 200, edited.text
    seen = await api.client.get(f"{sample_url(dataset_id, sample_id)}/history", headers=headers)
    assert [v["changed_by"] for v in seen.json()["data"]] == [key_id, key_id]


async def test_samples_by_batch_or_generation_job(api: Api):
    dataset_id = (await create(api))["id"]
    rows = [
        row("a", provenance={"source": "batch", "batch_id": "batch_1", "request_id": "r1"}),
        row("b", provenance={"source": "batch", "batch_id": "batch_2"}),
        row("c", provenance={"source": "generation", "job_id": "gen_1", "batch_id": "batch_9"}),
        row("d"),
    ]
    await import_rows(api, dataset_id, rows)

    def questions(found: list[dict[str, Any]]) -> list[str]:
        return sorted(s["content"]["question"] for s in found)

    assert questions(await samples(api, dataset_id, batch_id="batch_1")) == ["a"]
    assert questions(await samples(api, dataset_id, job_id="gen_1")) == ["c"]
    assert questions(await samples(api, dataset_id, batch_id="batch_9", job_id="gen_1")) == ["c"]
    assert await samples(api, dataset_id, batch_id="batch_9", job_id="gen_2") == []
    assert await samples(api, dataset_id, batch_id="nope") == []
    exported = await api.client.get(
        f"/api/datasets/{dataset_id}/export", params={"batch_id": "batch_2"}
    )
    [line] = exported.text.splitlines()
    assert orjson.loads(line)["provenance"]["batch_id"] == "batch_2"
    # The ids are indexed text: a longer one is refused with its line.
    too_long = await api.client.post(
        f"/api/datasets/{dataset_id}/import",
        files={"file": ("s.jsonl", orjson.dumps(row("e", provenance={"batch_id": "b" * 257})))},
    )
    assert too_long.status_code == 400, too_long.text
    error = too_long.json()["error"]
    assert (error["code"], error["errors"][0]["param"]) == ("invalid_import", "provenance.batch_id")
    # Deleting by filter takes them too.
    deleted = await api.client.post(
        f"/api/datasets/{dataset_id}/samples/delete", json={"batch_id": "batch_1"}
    )
    assert deleted.json()["changed"] == 1, deleted.text
    assert questions(await samples(api, dataset_id)) == ["b", "c", "d"]
