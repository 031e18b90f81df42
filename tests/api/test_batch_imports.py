"""A batch's answers imported into a dataset, end to end through HTTP on both stores, with
a worker against the mock provider: on request (`POST /api/datasets/{id}/import-batch`) and
automatically when the batch's metadata names a dataset; each sample keeps its request and
answer, and importing again adds nothing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from datamill.protocol.datasets import DatasetCreate
from tests.api.conftest import Api, assert_error
from tests.api.test_datasets import create, samples
from tests.conftest import mock_deployment
from tests.helpers import chat_line, jsonl, running_worker

LINES = [chat_line(f"r{i}", temperature=0.5) for i in range(3)] + [
    chat_line("bad", messages=["not an object"])  # the mock refuses it with a 400
]


@pytest.fixture
async def api(make_api, mock) -> Api:
    return await make_api([mock_deployment(mock)])


async def finished_batch(api: Api, **body: Any) -> dict[str, Any]:
    batch = await api.submit(jsonl(LINES), **body)
    async with running_worker(api.runtime):
        done = await api.wait_for(batch["id"])
    assert done["request_counts"] == {"total": 4, "completed": 3, "failed": 1}, done
    return done


async def output_lines(api: Api, batch: dict[str, Any]) -> dict[str, Any]:
    response = await api.client.get(f"/v1/files/{batch['output_file_id']}/content")
    lines = [orjson.loads(line) for line in response.content.splitlines()]
    return {line["custom_id"]: line["response"]["body"] for line in lines}


async def import_batch(api: Api, dataset_id: str, batch_id: str) -> dict[str, Any]:
    response = await api.client.post(
        f"/api/datasets/{dataset_id}/import-batch", json={"batch_id": batch_id}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_batch_imported_on_request_keeps_each_request_and_answer(api: Api):
    dataset_id = (await create(api))["id"]
    batch = await finished_batch(api)
    answers = await output_lines(api, batch)

    report = await import_batch(api, dataset_id, batch["id"])
    again = await import_batch(api, dataset_id, batch["id"])

    assert report == {
        "object": "dataset.batch_import",
        "dataset_id": dataset_id,
        "batch_id": batch["id"],
        "requests": 3,
        "imported": 3,
        "duplicates": 0,
        "invalid": 0,
    }
    assert (again["imported"], again["duplicates"]) == (0, 3)
    found = await samples(api, dataset_id, batch_id=batch["id"], order="asc")
    assert [s["provenance"]["request_id"] for s in found] == ["r0", "r1", "r2"]
    for sample in found:
        custom_id = sample["provenance"]["request_id"]
        answer = answers[custom_id]
        assert sample["content"] == {
            "messages": [
                {"role": "user", "content": f"question {custom_id}"},
                {"role": "assistant", "content": answer["choices"][0]["message"]["content"]},
            ]
        }
        provenance = sample["provenance"]
        assert provenance["source"] == "batch"
        assert provenance["request"] == {"model": "mock-model", "temperature": 0.5}
        assert provenance["response_id"] == answer["id"]
        assert provenance["input_tokens"] == answer["usage"]["prompt_tokens"]
        assert provenance["output_tokens"] == answer["usage"]["completion_tokens"]
        assert sample["model"] is not None
    # An edited sample is still its request's: a third import brings nothing back.
    edited = await api.client.patch(
        f"/api/datasets/{dataset_id}/samples/{found[0]['id']}",
        json={"content": {"messages": [{"role": "user", "content": "changed"}]}},
    )
    assert edited.status_code == 200, edited.text
    assert (await import_batch(api, dataset_id, batch["id"]))["imported"] == 0


async def test_a_batch_naming_a_dataset_in_its_metadata_is_imported_when_it_completes(api: Api):
    dataset_id = (await create(api, "answers"))["id"]
    batch = await finished_batch(api, metadata={"datamill_dataset": "answers"})
    # Imported as it finalized: there once it is seen completed.
    found = await samples(api, dataset_id)
    assert sorted(s["provenance"]["request_id"] for s in found) == ["r0", "r1", "r2"]
    assert {s["provenance"]["batch_id"] for s in found} == {batch["id"]}
    # On request afterwards: nothing more.
    assert (await import_batch(api, dataset_id, batch["id"]))["imported"] == 0


async def test_a_batch_naming_no_dataset_of_its_project_completes_all_the_same(api: Api):
    # Another project's dataset of that name is not the batch's.
    beta = await api.runtime.auth.create_project("beta")
    theirs = await api.runtime.datasets.create(DatasetCreate(name="theirs"), project_id=beta.id)
    for name in ("nowhere", "theirs", theirs.record.id):
        batch = await finished_batch(api, metadata={"datamill_dataset": name})
        assert batch["status"] == "completed"
    view = await api.runtime.datasets.get(theirs.record.id, project_id=beta.id)
    assert view.sample_count == 0


async def test_bad_batch_imports_are_4xx_naming_the_field(api: Api):
    dataset_id = (await create(api))["id"]
    url = f"/api/datasets/{dataset_id}/import-batch"
    missing = await api.client.post(url, json={"batch_id": "batch_nope"})
    assert_error(missing, 404, param="batch_id")
    assert_error(await api.client.post(url, json={}), 400, param="batch_id")
    only = await api.client.post(url, json={"batch_id": "b", "only": "failed"})
    assert_error(only, 400, param="only")
    extra = await api.client.post(url, json={"batch_id": "b", "colour": "red"})
    assert_error(extra, 400, param="colour")
    no_dataset = await api.client.post("/api/datasets/ds_nope/import-batch", json={"batch_id": "b"})
    assert_error(no_dataset, 404, param="dataset_id")
    running = await api.submit(jsonl(LINES))  # no worker: it stays unfinished
    early = await api.client.post(url, json={"batch_id": running["id"]})
    assert_error(early, 409, param="batch_id", code="batch_not_finished")


async def test_other_endpoints_keep_the_request_and_the_response_whole(api: Api):
    dataset_id = (await create(api))["id"]
    lines = [
        {
            "custom_id": f"e{i}",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "mock-model", "input": f"text {i}"},
        }
        for i in range(2)
    ]
    batch = await api.submit(jsonl(lines), endpoint="/v1/embeddings")
    async with running_worker(api.runtime):
        done = await api.wait_for(batch["id"])
    assert done["request_counts"]["completed"] == 2, done
    answers = await output_lines(api, done)

    await import_batch(api, dataset_id, batch["id"])

    for sample in await samples(api, dataset_id):
        custom_id = sample["provenance"]["request_id"]
        assert sample["content"] == {
            "request": {"model": "mock-model", "input": f"text {custom_id[1:]}"},
            "response": answers[custom_id],
        }
        assert sample["provenance"]["endpoint"] == "/v1/embeddings"


async def test_a_failing_finish_hook_does_not_keep_a_batch_from_completing(api: Api):
    async def broken(batch: object) -> None:
        raise RuntimeError("a bug in what follows a batch")

    api.runtime.engine.finish_hooks.append(broken)
    batch = await finished_batch(api)
    assert batch["status"] == "completed"
    assert batch["output_file_id"] is not None
