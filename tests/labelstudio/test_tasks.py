"""Samples as Label Studio tasks: the data keys, the prediction (the current decision or the
model's proposal, rating and labels from metadata), and the streamed JSON array."""

from __future__ import annotations

import dataclasses

import orjson

from datamill.curation.formats.report import ExportReport
from datamill.labelstudio.tasks import TaskEncoder, prediction, task_data, task_layout
from datamill.protocol.task_schema_format import DEFAULT_SCHEMA
from tests.labelstudio.records import record
from tests.labelstudio.schemas import QA

CONTENT = {
    "question": "What is 2+2?",
    "answer": {"text": "4", "confidence": 0.9},
    "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": {"a": 1}}],
    "meta": {"source": "x"},
    "extra": "not shown",
}


def test_display_fields_are_the_data_with_the_ids():
    data = task_data(task_layout(QA), record(CONTENT))

    assert data == {
        "question": "What is 2+2?",
        "answer__text": "4",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": '{"a":1}'},
        ],
        "meta": '{"source":"x"}',
        "datamill_sample_id": "smp_1",
        "datamill_dataset_id": "ds_1",
    }


def test_without_display_fields_every_top_level_field_is_data():
    data = task_data(task_layout(DEFAULT_SCHEMA, ["question"]), record(CONTENT))

    assert data["question"] == "What is 2+2?"
    assert data["answer"] == '{"text":"4","confidence":0.9}'
    assert data["extra"] == "not shown"
    assert set(data) == {*CONTENT, "datamill_sample_id", "datamill_dataset_id"}
    missing = task_data(task_layout(QA), record({"question": None}))
    assert (missing["question"], missing["answer__text"], missing["messages"]) == ("", "", [])


def test_the_prediction_proposes_approve_and_the_metadata_answers():
    layout = task_layout(QA)
    metadata = {"rating": 4, "topic": ["math", "art"], "tone": "formal", "comment": "x"}

    made = prediction(layout, record(CONTENT, metadata=metadata, model="m1"))

    assert made["model_version"] == "m1"
    results = {r["from_name"]: (r["type"], r["value"]) for r in made["result"]}
    assert results == {
        "decision": ("choices", {"choices": ["approve"]}),
        "rating": ("rating", {"rating": 4}),
        "topic": ("choices", {"choices": ["math", "art"]}),
        "tone": ("choices", {"choices": ["formal"]}),
    }
    assert all(r["to_name"] == "f_question" for r in made["result"])
    wrong = {"rating": 9, "topic": ["poetry"], "tone": ["formal"]}  # out of range, unknown, a list
    kept = prediction(layout, record(CONTENT, metadata=wrong))["result"]
    assert [r["from_name"] for r in kept] == ["decision"]
    assert prediction(layout, record(CONTENT))["model_version"] == "datamill"


def test_a_decided_sample_proposes_its_decision():
    layout = task_layout(QA)
    base = record(CONTENT)
    for state, decision in (("rejected", "reject"), ("approved", "approve"), ("edited", "approve")):
        made = prediction(layout, dataclasses.replace(base, review_state=state))
        assert made["model_version"] == "datamill-review"
        assert made["result"][0]["value"] == {"choices": [decision]}
    made = prediction(layout, dataclasses.replace(base, review_state="disputed"))
    assert made["model_version"] == "datamill"


def test_the_encoder_writes_one_json_array_page_by_page():
    layout = task_layout(QA)
    report = ExportReport()
    encoder = TaskEncoder(layout, report)
    pages = [[record(CONTENT, sample_id=f"smp_{i}") for i in range(3)], [], [record(CONTENT)]]

    body = encoder.begin() + b"".join(encoder.encode(p) for p in pages) + encoder.end()

    tasks = orjson.loads(body)
    assert [t["data"]["datamill_sample_id"] for t in tasks] == ["smp_0", "smp_1", "smp_2", "smp_1"]
    assert report.exported == 4
    empty = TaskEncoder(layout, ExportReport())
    assert orjson.loads(empty.begin() + empty.encode([]) + empty.end()) == []
