"""A dataset's agreement report from its stored reviews: which ratings, questions, gold
answers and final decisions `agreement.compute_agreement` is given.

- Ratings: each current review's answers, oldest first; adjudications are left out (they
  settle a disagreement, they are not one more reviewer's reading).
- Questions: those of the schemas the reviewed samples follow, by name, the first schema's
  question winning when two schemas share a name; with ``sample_type``, only that type's
  samples and schema.
- Final decisions: ``approve`` for samples approved or edited, ``reject`` for rejected ones
  (undecided samples have none).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from datamill.protocol.task_schema_format import Question
from datamill.review.agreement import AgreementReport, compute_agreement
from datamill.review.ratings import Rating, Value, ratings_of

_DECISIONS = {"approved": "approve", "edited": "approve", "rejected": "reject"}


def dataset_agreement(
    reviews: Iterable[tuple[str, str, Mapping[str, Any], bool]],
    *,
    sample_states: Mapping[str, tuple[str | None, str]],
    questions_by_type: Mapping[str | None, Iterable[Question]],
    gold: Mapping[str, Mapping[str, Any]],
    min_shared_items: int,
) -> AgreementReport:
    """``reviews``: (sample id, reviewer, answers, adjudication) oldest first;
    ``sample_states``: sample id -> (sample type, review state) of the samples to count;
    ``questions_by_type``: the questions of each sample type present."""
    ratings: list[Rating] = []
    for sample_id, reviewer, answers, adjudication in reviews:
        if not adjudication and sample_id in sample_states:
            ratings.extend(ratings_of(sample_id, reviewer, _values(answers)))
    questions: dict[str, Question] = {}
    for found in questions_by_type.values():
        for question in found:
            questions.setdefault(question.name, question)
    finals = {
        sample_id: _DECISIONS[state]
        for sample_id, (_, state) in sample_states.items()
        if state in _DECISIONS
    }
    return compute_agreement(
        ratings,
        questions=list(questions.values()),
        gold={k: _values(v) for k, v in gold.items() if k in sample_states},
        final_decisions=finals,
        min_shared_items=min_shared_items,
    )


def _values(answers: Mapping[str, Any]) -> dict[str, Value]:
    """Stored answers (JSON: a multiple labels answer is a list) as rating values."""
    return {
        name: tuple(value) if isinstance(value, list) else value for name, value in answers.items()
    }
