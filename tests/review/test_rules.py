"""The review's rules as pure functions: the final state by rule and adjudication, and
answers checked against a schema's questions."""

from __future__ import annotations

from typing import Any

import pytest

from datamill.errors import InvalidRequest
from datamill.protocol.task_schema_format import DEFAULT_SCHEMA, TaskSchema
from datamill.review.rules import ReviewSettings, Verdict, check_answers, final_state

A, R = Verdict("approve"), Verdict("reject")


@pytest.mark.parametrize(
    ("verdicts", "overlap", "rule", "state"),
    [
        ([], 1, "majority", "unreviewed"),
        ([A], 2, "majority", "in_review"),
        ([A], 1, "majority", "approved"),
        ([R], 1, "majority", "rejected"),
        ([A, A], 2, "majority", "approved"),
        ([A, R], 2, "majority", "disputed"),
        ([A, A, R], 3, "majority", "approved"),
        ([R, R, A], 3, "majority", "rejected"),
        ([A, A, R], 3, "unanimous", "disputed"),
        ([R, R], 2, "unanimous", "rejected"),
        ([A, R], 2, "adjudicator", "disputed"),
        ([A, R, Verdict("approve", adjudication=True)], 2, "majority", "approved"),
        ([A, R, Verdict("reject", adjudication=True)], 2, "adjudicator", "rejected"),
        # The newest adjudication decides, before the overlap is reached too.
        (
            [Verdict("reject", adjudication=True), Verdict("approve", adjudication=True)],
            3,
            "unanimous",
            "approved",
        ),
        ([Verdict("approve", edited=True), A], 2, "majority", "edited"),
        ([Verdict("reject", edited=True), R], 2, "majority", "rejected"),
    ],
)
def test_the_final_state_follows_the_rule(verdicts, overlap, rule, state):
    assert final_state(verdicts, ReviewSettings(overlap=overlap, rule=rule)) == state


LABELS = TaskSchema.model_validate(
    {
        "name": "labelled",
        "review": {
            "questions": [
                {"name": "verdict", "kind": "decision"},
                {"name": "topic", "kind": "labels", "options": ["math", "art"]},
                {
                    "name": "tags",
                    "kind": "labels",
                    "options": ["a", "b"],
                    "multiple": True,
                    "required": False,
                },
            ]
        },
    }
)


@pytest.mark.parametrize(
    ("schema", "answers", "reason", "param"),
    [
        (DEFAULT_SCHEMA, {"decision": "ok"}, None, "answers.decision"),
        (DEFAULT_SCHEMA, {"decision": "reject"}, " ", "reason"),
        (DEFAULT_SCHEMA, {"decision": "approve", "rating": True}, None, "answers.rating"),
        (DEFAULT_SCHEMA, {"decision": "approve", "rating": 0}, None, "answers.rating"),
        (DEFAULT_SCHEMA, {"decision": "approve", "comment": 5}, None, "answers.comment"),
        (LABELS, {"verdict": "approve"}, None, "answers.topic"),
        (LABELS, {"verdict": "approve", "topic": "law"}, None, "answers.topic"),
        (LABELS, {"verdict": "approve", "topic": ["math"]}, None, "answers.topic"),
        (LABELS, {"verdict": "approve", "topic": "art", "tags": "a"}, None, "answers.tags"),
        (LABELS, {"verdict": "approve", "topic": "art", "tags": ["a", "a"]}, None, "answers.tags"),
        (LABELS, {"decision": "approve"}, None, "answers.decision"),
    ],
)
def test_bad_answers_name_the_question(
    schema: TaskSchema, answers: dict[str, Any], reason: str | None, param: str
):
    with pytest.raises(InvalidRequest) as refused:
        check_answers(schema, answers, reason=reason)
    assert refused.value.param == param


def test_good_answers_give_the_decision():
    assert check_answers(DEFAULT_SCHEMA, {"decision": "approve", "rating": 5}, reason=None) == (
        "approve"
    )
    answers = {"verdict": "reject", "topic": "math", "tags": ["a", "b"]}
    assert check_answers(LABELS, answers, reason="wrong") == "reject"
    assert check_answers(LABELS, answers, reason=None, need_reason=False) == "reject"
