"""Importing Label Studio's export through `LabelStudioService`, on both stores, with an
in-memory review sink: three imports write each review once, a changed annotation replaces
its reviewer's review, a reviewer's earlier annotation of the same sample is superseded,
and what cannot be applied is reported while the rest is."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from datamill.curation.lookups import SampleQuery
from datamill.errors import Conflict
from datamill.labelstudio.reviews import ImportedReview, Outcome
from datamill.labelstudio.service import LabelStudioService, label_studio_service
from datamill.protocol.datasets import DatasetCreate, DatasetUpdate, SampleCreate
from datamill.review.service import Reviewer
from datamill.runtime import Runtime
from datamill.storage.samples import SampleRecord
from datamill.storage.schema import DEFAULT_PROJECT_ID
from tests.labelstudio.schemas import QA
from tests.labelstudio.sinks import InMemoryReviews

SAMPLES = 6


async def chunks(data: Any) -> AsyncIterator[bytes]:
    body = orjson.dumps(data)
    for start in range(0, len(body), 100):  # several chunks, as a file or an upload reads
        yield body[start : start + 100]


async def dataset_with_samples(runtime: Runtime, contents: list[dict[str, Any]]) -> str:
    view = await runtime.datasets.create(DatasetCreate(name="faq"))
    for content in contents:
        await runtime.datasets.add_sample(view.record.id, SampleCreate(content=content))
    return view.record.id


async def exported_tasks(service: LabelStudioService, dataset_id: str) -> list[dict[str, Any]]:
    _, stream = await service.export(dataset_id, SampleQuery())
    return orjson.loads(b"".join([chunk async for chunk in stream]))  # type: ignore[no-any-return]


def annotate(tasks: list[dict[str, Any]], reviewers: list[str]) -> list[dict[str, Any]]:
    """Label Studio's JSON export: every reviewer approved every task."""
    out = []
    for number, made in enumerate(tasks):
        annotations = [
            {
                "id": number * 100 + i,
                "completed_by": {"id": i, "email": email},
                "result": [{"from_name": "decision", "to_name": "f_question", "type": "choices",
                            "value": {"choices": ["approve"]}}],
                "was_cancelled": False,
                "ground_truth": False,
                "updated_at": "2026-12-01T10:00:00Z",
            }
            for i, email in enumerate(reviewers)
        ]  # fmt: skip
        out.append({"id": number, "data": made["data"], "annotations": annotations})
    return out


@pytest.fixture
async def runtime(make_runtime) -> Runtime:
    return await make_runtime()


async def test_three_imports_write_each_review_once(runtime: Runtime):
    contents = [{"question": f"Q{i}?", "answer": f"A{i}."} for i in range(SAMPLES)]
    dataset_id = await dataset_with_samples(runtime, contents)
    sink = InMemoryReviews()
    service = LabelStudioService(runtime.datasets, max_file_bytes=10**7, reviews=sink)
    tasks = await exported_tasks(service, dataset_id)
    export = annotate(tasks, ["ann@example.com", "bob@example.com"])
    # The tasks went into Label Studio twice: a second task of sample 0, annotated later.
    again = copy.deepcopy(export[0])
    again["id"] = 99
    again["annotations"][0]["updated_at"] = "2026-12-02T10:00:00Z"
    again["annotations"][0]["result"][0]["value"] = {"choices": ["reject"]}
    again["annotations"][0]["result"].append(
        {"from_name": "decision_reason", "type": "textarea", "value": {"text": ["dup"]}}
    )
    export.append(again)

    reports = [await service.import_annotations(dataset_id, chunks(export)) for _ in range(3)]

    first = reports[0]
    assert (first.tasks, first.annotations) == (SAMPLES + 1, 2 * SAMPLES + 2)
    assert (first.created, first.superseded, first.errors) == (2 * SAMPLES, 2, 0)
    assert len(sink.reviews) == 2 * SAMPLES  # one per sample and reviewer
    assert sink.writes == 2 * SAMPLES
    latest = sink.reviews[(tasks[0]["data"]["datamill_sample_id"], "labelstudio:ann@example.com")]
    assert (latest.answers, latest.reason) == ({"decision": "reject"}, "dup")
    for report in reports[1:]:
        assert (report.applied, report.unchanged, report.errors) == (0, 2 * SAMPLES, 0)
    assert sink.writes == 2 * SAMPLES
    assert await runtime.datasets.count_samples(dataset_id, SampleQuery()) == SAMPLES

    changed = copy.deepcopy(export)
    changed[3]["annotations"][1]["result"] = [
        {"from_name": "decision", "type": "choices", "value": {"choices": ["reject"]}},
        {"from_name": "decision_reason", "type": "textarea", "value": {"text": ["off"]}},
    ]
    report = await service.import_annotations(dataset_id, chunks(changed))
    assert (report.replaced, report.created, report.unchanged) == (1, 0, 2 * SAMPLES - 1)
    assert len(sink.reviews) == 2 * SAMPLES


class RefusingSink(InMemoryReviews):
    """Refuses the reviews of one sample, as a review service may (a 409)."""

    refused: str = ""

    async def submit_review(
        self, dataset_id: str, sample: SampleRecord, review: ImportedReview, *, project_id: str
    ) -> Outcome:
        if sample.id == self.refused:
            raise Conflict(f"sample {sample.id} refused", param="sample_id")
        return await InMemoryReviews.submit_review(
            self, dataset_id, sample, review, project_id=project_id
        )


async def test_what_cannot_be_applied_is_reported_and_the_rest_applied(runtime: Runtime):
    dataset_id = await dataset_with_samples(runtime, [{"question": f"Q{i}"} for i in range(4)])
    sink = RefusingSink()
    service = LabelStudioService(runtime.datasets, max_file_bytes=10**7, reviews=sink)
    tasks = await exported_tasks(service, dataset_id)
    ids = [t["data"]["datamill_sample_id"] for t in tasks]
    sink.refused = ids[0]
    await runtime.datasets.delete_sample(dataset_id, ids[1])
    export = annotate(tasks, ["ann@example.com"])
    export[2]["annotations"][0]["completed_by"] = None
    export[3]["data"]["datamill_sample_id"] = "smp_unknown"

    report = await service.import_annotations(dataset_id, chunks(export))

    assert report.errors == 4
    messages = {p.task: p.message for p in report.problems}
    assert "refused" in messages[0]
    assert "is deleted" in messages[1]
    assert "names no annotator" in messages[2]
    assert "smp_unknown" in messages[3]
    assert report.created == 0
    assert sink.writes == 0
    # Fixed in Label Studio and exported again: applied.
    export[2]["annotations"][0]["completed_by"] = 5
    assert (await service.import_annotations(dataset_id, chunks(export))).created == 1


async def test_edits_and_gold_go_through_the_review_service(runtime: Runtime):
    contents = [
        {"question": "What is 2+2?", "answer": {"text": "5"}, "messages": [], "meta": {}},
        {"question": "What is 3+3?", "answer": {"text": "6"}, "messages": [], "meta": {}},
    ]
    dataset_id = await dataset_with_samples(runtime, contents)
    await runtime.task_schemas.create(DEFAULT_PROJECT_ID, QA)
    await runtime.datasets.update(dataset_id, DatasetUpdate(task_schema="qa"))
    service = label_studio_service(runtime)  # the registry's schema, the review service
    tasks = await exported_tasks(service, dataset_id)
    assert tasks[0]["data"]["answer__text"] == "5"
    topic = {"from_name": "topic", "type": "choices", "value": {"choices": ["math"]}}
    approve = {"from_name": "decision", "type": "choices", "value": {"choices": ["approve"]}}
    edit = {"from_name": "edit__answer__text", "type": "textarea", "value": {"text": ["4"]}}
    export = [
        {"id": 1, "data": tasks[0]["data"], "annotations": [
            {"id": 1, "completed_by": 1, "result": [approve, topic, edit]}]},
        {"id": 2, "data": tasks[1]["data"], "annotations": [
            {"id": 2, "completed_by": 2, "result": [approve, topic], "ground_truth": True}]},
    ]  # fmt: skip

    reports = [await service.import_annotations(dataset_id, chunks(export)) for _ in range(3)]

    assert (reports[0].created, reports[0].edits, reports[0].gold) == (2, 1, 1)
    assert all((r.applied, r.gold, r.unchanged) == (0, 0, 2) for r in reports[1:])
    edited = await runtime.datasets.get_sample(dataset_id, tasks[0]["data"]["datamill_sample_id"])
    assert edited.content["answer"] == {"text": "4"}
    assert edited.review_state == "edited"  # overlap 1: the one review decides
    gold = await runtime.reviews.gold(dataset_id)
    assert gold[tasks[1]["data"]["datamill_sample_id"]].answers == {
        "decision": "approve",
        "topic": ["math"],
    }
    history = await runtime.datasets.sample_history(dataset_id, edited.id)
    assert len(history) == 2  # added, then the review with its edit: once
    assert history[-1].changed_by == "labelstudio:1"
    reviews, _ = await runtime.reviews.sample_reviews(
        dataset_id, edited.id, Reviewer("member", sees_all=True), history=True
    )
    assert [(r.reviewer, r.answers) for r in reviews] == [
        ("labelstudio:1", {"decision": "approve", "topic": ["math"]})
    ]


async def test_one_sample_in_several_tasks_keeps_every_reviewers_review(runtime: Runtime):
    dataset_id = await dataset_with_samples(runtime, [{"question": "Q?", "answer": "A."}])
    service = label_studio_service(runtime)
    [made] = await exported_tasks(service, dataset_id)
    # Label Studio got the task twice; ann annotated one copy, bob the other.
    export = [annotate([made], ["ann@example.com"])[0], annotate([made], ["bob@example.com"])[0]]

    reports = [await service.import_annotations(dataset_id, chunks(export)) for _ in range(3)]

    assert [r.created for r in reports] == [2, 0, 0]
    assert [r.unchanged for r in reports] == [0, 2, 2]
    reviews, _ = await runtime.reviews.sample_reviews(
        dataset_id, made["data"]["datamill_sample_id"], Reviewer("member", sees_all=True)
    )
    assert {r.reviewer for r in reviews} == {
        "labelstudio:ann@example.com",
        "labelstudio:bob@example.com",
    }
