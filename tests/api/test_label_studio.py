"""The Label Studio round trip through the HTTP API, on both stores: tasks exported with
their predictions and the labeling config, annotations imported back as reviews (edits,
rejects with reasons, gold answers), and the idempotency: three imports, zero duplicates."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from tests.api.conftest import Api, assert_error
from tests.api.test_datasets import create, import_rows, row, samples


@pytest.fixture
async def api(make_api) -> Api:
    return await make_api()


ROWS = [row("What is a prime?"), row("Name an even prime"), row("Who painted the Mona Lisa?")]


async def tasks_of(api: Api, dataset_id: str, **params: Any) -> list[dict[str, Any]]:
    response = await api.client.get(
        f"/api/datasets/{dataset_id}/export", params={"format": "label-studio", **params}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["content-disposition"].endswith(".json")
    tasks: list[dict[str, Any]] = orjson.loads(response.content)
    return tasks


async def import_file(api: Api, dataset_id: str, export: Any) -> dict[str, Any]:
    body = orjson.dumps(export)
    response = await api.client.post(
        f"/api/datasets/{dataset_id}/import-label-studio", files={"file": ("ls.json", body)}
    )
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def annotation(
    number: int, email: str, results: list[dict[str, Any]], **fields: Any
) -> dict[str, Any]:
    """An annotation as Label Studio's JSON export writes it."""
    return {
        "id": number,
        "completed_by": {"id": number * 10, "email": email, "first_name": "", "last_name": ""},
        "result": results,
        "was_cancelled": False,
        "ground_truth": False,
        "created_at": "2026-12-01T10:00:00.000000Z",
        "updated_at": "2026-12-01T10:00:00.000000Z",
        "lead_time": 12.5,
        "task": 1,
        "project": 1,
        **fields,
    }


def choice(name: str, *values: str) -> dict[str, Any]:
    return {
        "id": f"r_{name}",
        "from_name": name,
        "to_name": "f_question",
        "type": "choices",
        "value": {"choices": list(values)},
        "origin": "manual",
    }


def text(name: str, value: str, to_name: str = "f_question") -> dict[str, Any]:
    return {
        "id": f"r_{name}",
        "from_name": name,
        "to_name": to_name,
        "type": "textarea",
        "value": {"text": [value]},
        "origin": "manual",
    }


def rating(value: int) -> dict[str, Any]:
    return {
        "from_name": "rating",
        "to_name": "f_question",
        "type": "rating",
        "value": {"rating": value},
    }


def exported(tasks: list[dict[str, Any]], annotations: list[list[dict[str, Any]]]) -> Any:
    """Label Studio's JSON export of ``tasks`` (as datamill wrote them) with annotations."""
    out = []
    for number, (task, made) in enumerate(zip(tasks, annotations, strict=True), start=1):
        out.append(
            {
                "id": number,
                "data": task["data"],
                "annotations": made,
                "predictions": [],
                "meta": {},
                "created_at": "2026-12-01T09:00:00.000000Z",
                "inner_id": number,
                "total_annotations": len(made),
                "cancelled_annotations": 0,
                "project": 1,
            }
        )
    return out


async def test_export_writes_tasks_with_predictions_and_the_config(api: Api):
    dataset = await create(api)
    await import_rows(api, dataset["id"], [*ROWS, {"content": {"question": "Q", "answer": 4}}])

    tasks = await tasks_of(api, dataset["id"])

    assert len(tasks) == 4
    ids = [s["id"] for s in reversed(await samples(api, dataset["id"]))]
    assert [t["data"]["datamill_sample_id"] for t in tasks] == ids
    assert tasks[0]["data"] == {
        "question": "What is a prime?",
        "answer": "What is a prime?!",
        "datamill_sample_id": ids[0],
        "datamill_dataset_id": dataset["id"],
    }
    assert tasks[3]["data"]["answer"] == "4"  # not text: JSON text
    assert tasks[0]["predictions"] == [
        {
            "model_version": "datamill",
            "result": [
                {
                    "from_name": "decision",
                    "to_name": "f_question",
                    "type": "choices",
                    "value": {"choices": ["approve"]},
                }
            ],
        }
    ]
    config = await api.client.get(f"/api/datasets/{dataset['id']}/label-studio-config")
    assert config.status_code == 200
    assert config.headers["content-type"].startswith("application/xml")
    assert '<Text name="f_question" value="$question" />' in config.text
    assert '<TextArea name="edit__answer" toName="f_answer" value="$answer"' in config.text
    # The filters apply: one topic, one task; and a seeded split is a part of them.
    await import_rows(api, dataset["id"], [row("Only art", topic="art")])
    assert len(await tasks_of(api, dataset["id"], topic="art")) == 1
    parts = [
        await tasks_of(api, dataset["id"], splits="a=0.5,b=0.5", split=name, seed=3)
        for name in ("a", "b")
    ]
    split_ids = sorted(t["data"]["datamill_sample_id"] for part in parts for t in part)
    assert split_ids == sorted([*ids, (await samples(api, dataset["id"], topic="art"))[0]["id"]])


async def test_annotations_come_back_as_reviews_and_three_imports_duplicate_nothing(api: Api):
    dataset = await create(api)
    await import_rows(api, dataset["id"], ROWS)
    tasks = await tasks_of(api, dataset["id"])
    ann = [
        [
            annotation(1, "ann@example.com", [choice("decision", "approve"), rating(5)]),
            annotation(
                2,
                "bob@example.com",
                [choice("decision", "approve"), text("edit__answer", "2 is prime.", "f_answer")],
            ),
        ],
        [
            annotation(
                3, "ann@example.com", [choice("decision", "reject"), text("decision_reason", "off")]
            ),
            annotation(4, "bob@example.com", [choice("decision", "approve")], was_cancelled=True),
        ],
        [annotation(5, "ann@example.com", [choice("decision", "approve")], ground_truth=True)],
    ]
    export = exported(tasks, ann)

    first = await import_file(api, dataset["id"], export)

    assert first["tasks"] == 3
    assert first["annotations"] == 5
    assert (first["created"], first["applied"], first["unchanged"]) == (4, 4, 0)
    assert (first["cancelled"], first["edits"], first["gold"], first["errors"]) == (1, 1, 1, 0)
    after_first = {s["id"]: s for s in await samples(api, dataset["id"])}
    one = after_first[tasks[0]["data"]["datamill_sample_id"]]
    assert one["content"]["answer"] == "2 is prime."  # bob's edit
    reviews = await reviews_of(api, dataset["id"], one["id"])
    assert reviews["labelstudio:ann@example.com"]["answers"] == {
        "decision": "approve",
        "rating": 5,
    }
    two = after_first[tasks[1]["data"]["datamill_sample_id"]]
    two_reviews = await reviews_of(api, dataset["id"], two["id"])
    assert two_reviews["labelstudio:ann@example.com"]["reason"] == "off"
    three = after_first[tasks[2]["data"]["datamill_sample_id"]]
    gold = await api.client.get(f"/api/datasets/{dataset['id']}/review/gold")
    assert [(g["sample_id"], g["answers"]) for g in gold.json()["data"]] == [
        (three["id"], {"decision": "approve"})
    ]

    # Twice more, the same file: nothing is written, nothing is added.
    for _ in range(2):
        again = await import_file(api, dataset["id"], export)
        assert (again["applied"], again["unchanged"], again["errors"]) == (0, 4, 0)
        assert again["gold"] == 0
    after = await samples(api, dataset["id"])
    assert len(after) == len(ROWS)
    assert {s["id"]: s for s in after} == after_first
    history = await api.client.get(f"/api/datasets/{dataset['id']}/samples/{one['id']}/history")
    versions = history.json()["data"]
    assert [v["changed_by"] for v in versions] == [None, "labelstudio:bob@example.com"]

    # One annotation changed in Label Studio: that reviewer's review is replaced, once.
    changed = copy.deepcopy(export)
    changed[0]["annotations"][0]["result"] = [choice("decision", "approve"), rating(3)]
    changed[0]["annotations"][0]["updated_at"] = "2026-12-02T10:00:00.000000Z"
    for expected_replaced in (1, 0):
        report = await import_file(api, dataset["id"], changed)
        assert report["replaced"] == expected_replaced
        assert report["created"] == 0
    now = {s["id"]: s for s in await samples(api, dataset["id"])}
    reviews = await reviews_of(api, dataset["id"], one["id"])
    assert set(reviews) == {"labelstudio:ann@example.com", "labelstudio:bob@example.com"}
    assert reviews["labelstudio:ann@example.com"]["answers"]["rating"] == 3
    assert len(now) == len(ROWS)


async def test_bad_tasks_are_reported_and_the_rest_applied(api: Api):
    dataset = await create(api)
    other = await create(api, name="other")
    await import_rows(api, dataset["id"], ROWS)
    await import_rows(api, other["id"], [row("Elsewhere")])
    tasks = await tasks_of(api, dataset["id"])
    foreign = await tasks_of(api, other["id"])
    good = annotation(1, "ann@example.com", [choice("decision", "approve")])
    export = exported(
        [tasks[0], tasks[1], tasks[2], foreign[0]],
        [
            [good],
            [annotation(2, "ann@example.com", [choice("decision", "maybe")])],
            [annotation(3, "ann@example.com", [choice("verdict", "approve")])],
            [annotation(4, "ann@example.com", [choice("decision", "approve")])],
        ],
    )
    export.append({"id": 9, "data": {"question": "no id"}, "annotations": [good]})
    export.append("not a task")

    report = await import_file(api, dataset["id"], export)

    assert report["created"] == 1
    assert report["errors"] == 5
    problems = {p["task"]: p for p in report["problems"]}
    assert "'maybe' is not one of approve, reject" in problems[1]["message"]
    assert "'verdict' is no control" in problems[2]["message"]
    assert other["id"] in problems[3]["message"]
    assert problems[3]["param"] == "data.datamill_dataset_id"
    assert problems[4]["param"] == "data.datamill_sample_id"
    assert problems[5]["message"] == "a task is a JSON object"
    assert len(await samples(api, other["id"])) == 1


async def test_json_min_is_read_too(api: Api):
    dataset = await create(api)
    await import_rows(api, dataset["id"], ROWS[:1])
    [task] = await tasks_of(api, dataset["id"])
    export = [
        {
            **task["data"],
            "id": 7,
            "decision": "reject",
            "decision_reason": "too short",
            "rating": 2,
            "annotator": "ann@example.com",
            "annotation_id": 70,
            "created_at": "2026-12-01T10:00:00.000000Z",
            "updated_at": "2026-12-01T10:00:00.000000Z",
            "lead_time": 3.0,
        }
    ]

    first = await import_file(api, dataset["id"], export)
    again = await import_file(api, dataset["id"], export)

    assert first["format"] == "json-min"
    assert (first["created"], first["errors"]) == (1, 0), first
    assert (again["applied"], again["unchanged"]) == (0, 1)
    [sample] = await samples(api, dataset["id"])
    review = (await reviews_of(api, dataset["id"], sample["id"]))["labelstudio:ann@example.com"]
    assert review["answers"] == {"decision": "reject", "rating": 2}
    assert review["reason"] == "too short"


async def test_bad_files_and_unknown_datasets_are_4xx(api: Api):
    dataset = await create(api)
    url = f"/api/datasets/{dataset['id']}/import-label-studio"
    for body in (b"{not json", b'{"tasks": []}'):
        response = await api.client.post(url, files={"file": ("ls.json", body)})
        assert_error(response, 400, param="file")
    response = await api.client.post(url, json=[])
    assert_error(response, 400, param="file")
    response = await api.client.post(
        "/api/datasets/ds_nope/import-label-studio", files={"file": ("ls.json", b"[]")}
    )
    assert_error(response, 404, param="dataset_id")
    response = await api.client.get("/api/datasets/ds_nope/label-studio-config")
    assert_error(response, 404, param="dataset_id")
    response = await api.client.get(
        "/api/datasets/ds_nope/export", params={"format": "label-studio"}
    )
    assert_error(response, 404, param="dataset_id")


async def reviews_of(api: Api, dataset_id: str, sample_id: str) -> dict[str, Any]:
    """A sample's current reviews by reviewer, as the API lists them."""
    answer = await api.client.get(f"/api/datasets/{dataset_id}/samples/{sample_id}/reviews")
    assert answer.status_code == 200, answer.text
    return {review["reviewer"]: review for review in answer.json()["data"]}
