"""The review's rules, as pure functions: a dataset's settings, the final state a sample's
reviews give it, and a review's answers checked against its schema's questions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from datamill.errors import InvalidRequest
from datamill.protocol.reviews import ReviewState, Rule
from datamill.protocol.task_schema_format import (
    DECISION_VALUES,
    RATING_RANGE,
    Question,
    QuestionKind,
    TaskSchema,
)
from datamill.storage.reviews import ReviewSettings, Verdict

# A free-text answer: at most this many characters.
MAX_TEXT = 10_000

__all__ = ["ReviewSettings", "ReviewState", "Rule", "Verdict", "check_answers", "final_state"]


def final_state(verdicts: Sequence[Verdict], settings: ReviewSettings) -> str:
    """The review state ``verdicts`` (a sample's current reviews, oldest first) give.

    The newest adjudication overrides everything (under every rule: a dispute must end
    somehow). Otherwise: no review is unreviewed, fewer than ``overlap`` in review, and at
    ``overlap`` or more the rule decides. An approved sample some review edited is edited."""
    edited = any(v.edited for v in verdicts)
    adjudications = [v for v in verdicts if v.adjudication]
    if adjudications:
        return _decided(adjudications[-1].decision, edited)
    reviews = [v for v in verdicts if not v.adjudication]
    if not reviews:
        return ReviewState.unreviewed
    if len(reviews) < settings.overlap:
        return ReviewState.in_review
    approvals = sum(1 for v in reviews if v.decision == "approve")
    rejections = len(reviews) - approvals
    if settings.rule == Rule.majority:
        if approvals * 2 > len(reviews):
            return _decided("approve", edited)
        if rejections * 2 > len(reviews):
            return _decided("reject", edited)
        return ReviewState.disputed
    if approvals == len(reviews):
        return _decided("approve", edited)
    if rejections == len(reviews):
        return _decided("reject", edited)
    return ReviewState.disputed


def _decided(decision: str, edited: bool) -> ReviewState:
    if decision == "reject":
        return ReviewState.rejected
    return ReviewState.edited if edited else ReviewState.approved


def check_answers(
    schema: TaskSchema,
    answers: Mapping[str, Any],
    *,
    reason: str | None,
    param: str = "answers",
    need_reason: bool = True,
) -> str:
    """Check ``answers`` against the schema's questions; returns the decision. A 400 names
    the question at fault (``answers.<name>``): an unknown name, a missing required one, a
    value of the wrong kind, a reject without a reason (``need_reason``)."""
    questions = {q.name: q for q in schema.review.questions}
    for name in answers:
        if name not in questions:
            known = ", ".join(questions)
            raise InvalidRequest(
                f"{name!r} is not a question of schema {schema.name!r} (its questions: {known})",
                param=f"{param}.{name}",
                code="unknown_question",
            )
    for question in schema.review.questions:
        if question.name not in answers or answers[question.name] is None:
            if question.required:
                raise InvalidRequest(
                    f"question {question.name!r} needs an answer",
                    param=f"{param}.{question.name}",
                    code="missing_answer",
                )
            continue
        _check_value(question, answers[question.name], f"{param}.{question.name}")
    decision = str(answers[schema.review.decision.name])
    if need_reason and decision == "reject" and not (reason and reason.strip()):
        raise InvalidRequest(
            "a reject needs a reason: give `reason`", param="reason", code="missing_reason"
        )
    return decision


def _check_value(question: Question, value: Any, param: str) -> None:
    def bad(why: str) -> InvalidRequest:
        return InvalidRequest(
            f"question {question.name!r}: {why}", param=param, code="invalid_answer"
        )

    if question.kind is QuestionKind.decision:
        if value not in DECISION_VALUES:
            raise bad(f"answer {' or '.join(DECISION_VALUES)}")
    elif question.kind is QuestionKind.rating:
        low, high = RATING_RANGE
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise bad(f"a rating is an integer from {low} to {high}")
    elif question.kind is QuestionKind.labels:
        chosen = value if question.multiple else [value]
        if question.multiple and (not isinstance(value, list) or not value):
            raise bad("a list of one or more of its options")
        for label in chosen:
            if not isinstance(label, str) or label not in question.options:
                raise bad(f"{label!r} is not one of {question.options}")
        if len(set(chosen)) != len(chosen):
            raise bad("a label is chosen twice")
    elif not isinstance(value, str) or len(value) > MAX_TEXT:
        raise bad(f"a text of at most {MAX_TEXT} characters")
