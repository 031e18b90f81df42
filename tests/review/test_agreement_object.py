"""The agreement report on the wire: every field of the computed report, and nothing else."""

from __future__ import annotations

import dataclasses
import json
import random
import typing

import pytest
from pydantic import ValidationError

from datamill.protocol.agreement import (
    EstimateObject,
    NullReasonName,
    QuestionAgreementObject,
)
from datamill.protocol.task_schema_format import DEFAULT_QUESTIONS, Question, QuestionKind
from datamill.render.agreement import agreement_report_object
from datamill.review.agreement import compute_agreement
from datamill.review.ratings import Rating
from datamill.review.statistics import Level, NullReason

TAGS = Question(name="tags", kind=QuestionKind.labels, options=["a", "b"], multiple=True)


def some_ratings(seed: int) -> list[Rating]:
    rng = random.Random(seed)
    ratings = []
    for item in range(30):
        for reviewer in rng.sample(["ann", "bob", "cid", "dee"], rng.randint(1, 3)):
            ratings.append(
                Rating(f"i{item}", reviewer, "decision", rng.choice(["approve", "reject"]))
            )
            ratings.append(Rating(f"i{item}", reviewer, "rating", rng.randint(1, 5)))
            ratings.append(Rating(f"i{item}", reviewer, "comment", "text"))
            ratings.append(
                Rating(f"i{item}", reviewer, "tags", tuple(rng.sample("ab", rng.randint(0, 2))))
            )
    return ratings


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_object_carries_the_report_field_for_field(seed: int) -> None:
    report = compute_agreement(
        some_ratings(seed),
        questions=[*DEFAULT_QUESTIONS, TAGS],
        gold={"i1": {"decision": "approve", "tags": ["a"]}},
        final_decisions={"i2": "reject", "i3": "approve"},
        min_shared_items=3,
    )
    rendered = agreement_report_object(report, dataset_id="ds_1").model_dump(mode="json")
    assert rendered.pop("object") == "agreement_report"
    assert rendered.pop("dataset_id") == "ds_1"
    expected = json.loads(json.dumps(dataclasses.asdict(report), allow_nan=False))
    assert rendered == expected
    assert [q["question"] for q in rendered["questions"]] == [
        "decision",
        "rating",
        "tags[a]",
        "tags[b]",
    ]


def test_the_empty_report_renders() -> None:
    report = compute_agreement([], questions=list(DEFAULT_QUESTIONS))
    rendered = agreement_report_object(report, dataset_id="ds_1").model_dump(mode="json")
    assert rendered["questions"][0]["krippendorff_alpha"] == {
        "value": None,
        "reason": "too_few_ratings",
        "values": 0,
    }


def test_the_wire_names_every_reason_and_level() -> None:
    assert set(typing.get_args(NullReasonName)) == {r.value for r in NullReason}
    level = QuestionAgreementObject.model_fields["level"].annotation
    assert set(typing.get_args(level)) == {lv.value for lv in Level}


def test_nan_never_reaches_json() -> None:
    with pytest.raises(ValidationError):
        EstimateObject(value=float("nan"), reason=None)
