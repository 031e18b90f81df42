"""Label Studio's exports read: the full JSON export (completed_by as an id or a user object,
cancelled and ground-truth annotations) and JSON_MIN, each annotation's results as answers,
a reason and edits, and what is wrong with those that cannot be."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from datamill.errors import InvalidRequest
from datamill.labelstudio import annotations as parsing
from datamill.labelstudio.annotations import Annotation, Answers
from datamill.labelstudio.tasks import task_layout
from tests.labelstudio.schemas import QA

LAYOUT = task_layout(QA)
CONTROLS = parsing.control_names(QA, LAYOUT.layout)
DATA = {"question": "Q?", "answer__text": "A.", "datamill_sample_id": "smp_1",
        "datamill_dataset_id": "ds_1"}  # fmt: skip


def result(
    name: str, kind: str, value: dict[str, Any], to_name: str = "f_question"
) -> dict[str, Any]:
    return {"id": "x1", "from_name": name, "to_name": to_name, "type": kind, "value": value,
            "origin": "manual"}  # fmt: skip


DECIDED = [
    result("decision", "choices", {"choices": ["reject"]}),
    result("decision_reason_choice", "choices", {"choices": ["wrong"]}),
    result("decision_reason", "textarea", {"text": ["2+2 is not 5", "and more"]}),
    result("rating", "rating", {"rating": 2}),
    result("topic", "choices", {"choices": ["math", "art"]}),
    result("edit__answer__text", "textarea", {"text": ["4."]}, "f_answer__text"),
]

FULL_EXPORT = [
    {
        "id": 11,
        "data": DATA,
        "annotations": [
            {"id": 1, "completed_by": {"id": 3, "email": "ann@example.com"}, "result": DECIDED,
             "was_cancelled": False, "ground_truth": False, "updated_at": "2026-12-01T10:00:00Z"},
            {"id": 2, "completed_by": 4, "result": [], "was_cancelled": True},
            {"id": 3, "completed_by": {"id": 5}, "result": DECIDED[:1], "ground_truth": True},
        ],
        "predictions": [{"model_version": "datamill", "result": []}],
        "drafts": [],
    },
    {"id": 12, "data": {"question": "no annotations"}, "annotations": []},
    {"id": 13, "annotations": []},
]  # fmt: skip


def test_the_full_export_is_read():
    file_format, tasks, problems = parsing.parse_export(orjson.dumps(FULL_EXPORT), CONTROLS)

    assert file_format == "json"
    assert [t.id for t in tasks] == ["11", "12"]
    assert [p.task for p in problems] == [2]  # no data
    first = tasks[0]
    assert (first.sample_id, first.dataset_id) == ("smp_1", "ds_1")
    reviewers = [(a.id, a.reviewer, a.cancelled, a.ground_truth) for a in first.annotations]
    assert reviewers == [
        ("1", "labelstudio:ann@example.com", False, False),
        ("2", "labelstudio:4", True, False),
        ("3", "labelstudio:5", False, True),
    ]


def test_an_annotation_becomes_answers_a_reason_and_edits():
    _, tasks, _ = parsing.parse_export(orjson.dumps(FULL_EXPORT), CONTROLS)

    read = parsing.read_answers(QA, LAYOUT.layout, tasks[0].annotations[0])

    assert read == Answers(
        answers={"decision": "reject", "rating": 2, "topic": ["math", "art"]},
        reason="wrong: 2+2 is not 5\nand more",
        edits={"answer__text": "4."},
    )


def test_json_min_is_read_by_the_control_names():
    rows = [
        {**DATA, "id": 11, "decision": "approve", "topic": {"choices": ["art"]}, "rating": 5.0,
         "comment": ["fine", "really"], "annotator": "ann@example.com", "annotation_id": 1,
         "created_at": "x", "updated_at": "2026-12-01T10:00:00Z", "lead_time": 2.5},
        {**DATA, "id": 11, "decision": "approve", "topic": "math", "annotator": 4,
         "annotation_id": 2},
    ]  # fmt: skip

    file_format, tasks, problems = parsing.parse_export(orjson.dumps(rows), CONTROLS)

    assert (file_format, problems, len(tasks)) == ("json-min", [], 1)
    [task] = tasks
    assert task.data == DATA
    first, second = task.annotations
    assert first.reviewer == "labelstudio:ann@example.com"
    assert second.reviewer == "labelstudio:4"
    read = parsing.read_answers(QA, LAYOUT.layout, first)
    assert isinstance(read, Answers)
    assert read.answers == {"decision": "approve", "topic": ["art"], "rating": 5,
                            "comment": "fine\nreally"}  # fmt: skip
    assert parsing.read_answers(QA, LAYOUT.layout, second).answers["topic"] == ["math"]


@pytest.mark.parametrize(
    ("results", "wrong"),
    [
        ([result("verdict", "choices", {"choices": ["approve"]})], "'verdict' is no control"),
        ([result("decision", "choices", {"choices": ["maybe"]})], "'maybe' is not one of"),
        ([result("decision", "choices", {"choices": ["approve", "reject"]})], "choose one"),
        ([result("decision", "choices", {"labels": ["approve"]})], "has no `choices`"),
        ([result("topic", "choices", {"choices": ["math"]})], "'decision' needs an answer"),
        (
            [result("decision", "choices", {"choices": ["approve"]}),
             result("rating", "rating", {"rating": 7})],
            "whole number from 1 to 5",
        ),
        (
            [result("decision", "choices", {"choices": ["reject"]}),
             result("topic", "choices", {"choices": ["math"]})],
            "a reject needs a reason",
        ),
        (["not a result"], "result[0] is not a JSON object"),
    ],
)  # fmt: skip
def test_what_is_wrong_is_said(results: list[Any], wrong: str):
    annotation = Annotation(id="1", reviewer="labelstudio:1", results=results)
    read = parsing.read_answers(QA, LAYOUT.layout, annotation)
    assert isinstance(read, str)
    assert wrong in read


def test_a_gold_reject_needs_no_reason():
    only = Annotation(
        id="1",
        reviewer="labelstudio:1",
        results=[result("decision", "choices", {"choices": ["reject"]}),
                 result("topic", "choices", {"choices": ["math"]})],
    )  # fmt: skip
    assert isinstance(parsing.read_answers(QA, LAYOUT.layout, only), str)
    gold = parsing.read_answers(QA, LAYOUT.layout, only, need_reason=False)
    assert isinstance(gold, Answers)
    assert gold.answers["decision"] == "reject"


def test_the_key_is_the_content_not_the_times_or_ids():
    one = Annotation(id="1", reviewer="labelstudio:1", results=DECIDED, updated_at="a")
    same = Annotation(id="9", reviewer="labelstudio:1", results=DECIDED, updated_at="b")
    other = Annotation(id="1", reviewer="labelstudio:1", results=DECIDED[:1], updated_at="a")
    by_someone_else = Annotation(id="1", reviewer="labelstudio:2", results=DECIDED)
    assert one.key == same.key
    assert len({one.key, other.key, by_someone_else.key}) == 3


def test_edits_change_only_text_that_differs():
    fields = {f.key: f for f in LAYOUT.layout.fields}
    content = {"question": "Q?", "answer": {"text": "A."}, "meta": {}}

    new, refused = parsing.edited_content(content, {"answer__text": "B.", "question": "Q?"}, fields)

    assert new == {"question": "Q?", "answer": {"text": "B."}, "meta": {}}
    assert content["answer"] == {"text": "A."}  # a copy was changed
    assert refused == []
    assert parsing.edited_content(content, {"answer__text": "A."}, fields) == (None, [])
    odd = {"question": {"nested": 1}, "answer": "flat"}
    new, refused = parsing.edited_content(odd, {"question": "x", "answer__text": "y"}, fields)
    assert new is None
    assert len(refused) == 2
    assert "holds no text" in refused[0]
    assert "not in the content" in refused[1]


@pytest.mark.parametrize("body", [b"{", b'{"tasks": []}', b'"text"'])
def test_a_file_that_is_no_export_is_a_400(body: bytes):
    with pytest.raises(InvalidRequest) as raised:
        parsing.parse_export(body, CONTROLS)
    assert raised.value.param == "file"


def test_reviewers_are_named_by_email_else_id():
    assert parsing.reviewer_of({"id": 3, "email": " a@b.c "}) == "labelstudio:a@b.c"
    assert parsing.reviewer_of({"id": 3, "email": ""}) == "labelstudio:3"
    assert parsing.reviewer_of(7) == "labelstudio:7"
    assert parsing.reviewer_of("ann@example.com") == "labelstudio:ann@example.com"
    assert parsing.reviewer_of(None) is None
    assert parsing.reviewer_of(True) is None
    assert parsing.reviewer_of({"first_name": "x"}) is None


def test_pre_filled_text_submitted_unchanged_is_no_edit():
    fields = {f.key: f for f in LAYOUT.layout.fields}
    shown = {"answer__text": "A."}  # what the task showed
    edited_by_another = {"question": "Q?", "answer": {"text": "B."}}

    kept = parsing.edited_content(edited_by_another, {"answer__text": "A."}, fields, shown)
    made = parsing.edited_content(edited_by_another, {"answer__text": "C."}, fields, shown)

    assert kept == (None, [])  # the other reviewer's edit stays
    assert made == ({"question": "Q?", "answer": {"text": "C."}}, [])


def test_an_annotation_label_studio_sdk_generated_for_the_qa_config_is_read():
    # label-studio-sdk 2.1.2's LabelInterface(config of QA).generate_sample_annotation(),
    # put in a task as Label Studio's JSON export has it (completed_by -1: no user).
    body = (Path(__file__).parent / "data" / "sdk_generated_annotation.json").read_bytes()
    _, [task], problems = parsing.parse_export(body, CONTROLS)
    assert problems == []
    [annotation] = task.annotations
    assert annotation.reviewer == "labelstudio:-1"

    read = parsing.read_answers(QA, LAYOUT.layout, annotation)

    assert isinstance(read, Answers), read
    assert set(read.answers) == {"decision", "rating", "topic", "tone", "comment"}
    assert read.reason is not None
    assert set(read.edits) == {"question", "answer__text"}
