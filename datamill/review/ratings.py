"""What the agreement statistics read, as plain values: ratings, gold answers and final
decisions, and each question of a task schema as a scale of categories.

A ``labels`` question with ``multiple`` becomes one yes/no scale per option, named
``question[option]``; a ``text`` question has no scale (free text has no agreement). A
rating of a question the schema does not have, or of a text question, is ignored; a value
that does not fit its question (a rating of 7, a label not among the options) is counted
as invalid and left out. One reviewer has one answer per item and question: of two, the
later in the input counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from datamill.protocol.task_schema_format import (
    DECISION_VALUES,
    RATING_RANGE,
    Question,
    QuestionKind,
)
from datamill.review.statistics import Level

# A review's answer to one question: a decision or a single label (str), a rating (int),
# or the labels chosen of a ``multiple`` question (a tuple; a list is taken too).
Value = str | int | tuple[str, ...]
Indexes = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Rating:
    """One reviewer's answer to one question about one item."""

    item_id: str
    reviewer_id: str
    question: str
    value: Value


def ratings_of(item_id: str, reviewer_id: str, answers: Mapping[str, Value]) -> list[Rating]:
    """A review's ``answers`` (question name -> answer, as a review holds them) as ratings."""
    return [Rating(item_id, reviewer_id, name, value) for name, value in answers.items()]


@dataclass(frozen=True, slots=True)
class Scale:
    """A question as the statistics see it: its categories, in order, and their level."""

    key: str  # the question's name, or ``name[option]`` for an option of a multiple labels
    question: Question
    option: str | None
    categories: tuple[str | int, ...]
    level: Level

    def category(self, value: object) -> int | None:
        """The index of ``value`` among the categories, or None if it does not fit."""
        kind = self.question.kind
        if self.option is not None:
            if not isinstance(value, tuple | list):
                return None
            if not all(isinstance(v, str) and v in self.question.options for v in value):
                return None
            return int(self.option in value)
        if kind is QuestionKind.rating:
            # bool is an int in Python, and True is not a rating of 1.
            if isinstance(value, bool) or not isinstance(value, int):
                return None
            low, high = RATING_RANGE
            return value - low if low <= value <= high else None
        if not isinstance(value, str):
            return None
        try:
            return self.categories.index(value)
        except ValueError:
            return None


def scales_of(questions: Iterable[Question]) -> list[Scale]:
    """The scales of a schema's questions, in their order (text questions have none)."""
    scales = []
    for question in questions:
        kind = question.kind
        if kind is QuestionKind.decision:
            scales.append(Scale(question.name, question, None, DECISION_VALUES, Level.nominal))
        elif kind is QuestionKind.rating:
            low, high = RATING_RANGE
            values = tuple(range(low, high + 1))
            scales.append(Scale(question.name, question, None, values, Level.ordinal))
        elif kind is QuestionKind.labels and question.multiple:
            for option in question.options:
                key = f"{question.name}[{option}]"
                scales.append(Scale(key, question, option, ("no", "yes"), Level.nominal))
        elif kind is QuestionKind.labels:
            categories = tuple(question.options)
            scales.append(Scale(question.name, question, None, categories, Level.nominal))
    return scales


@dataclass(slots=True)
class ScaleRatings:
    """One scale's valid ratings as parallel arrays sorted by item, then reviewer (indexes
    into `Collected`'s ids), and its gold answers by item index."""

    scale: Scale
    items: Indexes
    reviewers: Indexes
    categories: Indexes
    gold: dict[int, int]
    invalid: int

    def counts(self, item_count: int) -> npt.NDArray[np.int64]:
        """Items x categories: how many ratings of each value each item has."""
        width = len(self.scale.categories)
        flat = np.bincount(self.items * width + self.categories, minlength=item_count * width)
        return flat.reshape(item_count, width).astype(np.int64)


@dataclass(slots=True)
class Collected:
    """Every scale's ratings over one numbering of items and reviewers (reviewers in the
    order of their ids, so each pair is named in one order)."""

    item_ids: list[str]
    reviewer_ids: list[str]
    scales: list[ScaleRatings]
    answers: int  # answers to the scales' questions, one per item, reviewer and question
    ignored: int  # ratings of no scale: unknown or text questions
    # The decision scale's final category by item index, where one is given and valid.
    final: dict[int, int] = field(default_factory=dict)

    @property
    def decision(self) -> ScaleRatings | None:
        return next(
            (s for s in self.scales if s.scale.question.kind is QuestionKind.decision), None
        )


def collect_ratings(
    ratings: Iterable[Rating],
    *,
    questions: Sequence[Question],
    gold: Mapping[str, Mapping[str, Value]],
    final_decisions: Mapping[str, str],
) -> Collected:
    """Ratings checked against their questions and numbered for the statistics.

    One pass numbers items, reviewers and distinct answers (a few values recur many
    times); the rest is array work: the latest answer of each reviewer kept, each distinct
    answer's category looked up once per scale."""
    scales = scales_of(questions)
    by_question: dict[str, list[int]] = {}
    for n, scale in enumerate(scales):
        by_question.setdefault(scale.question.name, []).append(n)
    item_index: dict[str, int] = {}
    reviewer_index: dict[str, int] = {}
    # A distinct (question, type, value) -> its number; type, as True is not the rating 1.
    value_index: dict[tuple[str, type, object], int] = {}
    distinct: list[tuple[str, object]] = []
    items: list[int] = []
    reviewers: list[int] = []
    values: list[int] = []
    ignored = 0
    for rating in ratings:
        question = rating.question
        answer: object = rating.value
        if question not in by_question:
            ignored += 1
            continue
        if isinstance(answer, list):
            answer = tuple(answer)
        key: tuple[str, type, object] = (question, type(answer), answer)
        try:
            number = value_index.get(key)
        except TypeError:  # unhashable (a dict): it fits no scale
            key, answer = (question, dict, None), _UNFIT
            number = value_index.get(key)
        if number is None:
            number = value_index[key] = len(distinct)
            distinct.append((question, answer))
        items.append(item_index.setdefault(rating.item_id, len(item_index)))
        reviewers.append(reviewer_index.setdefault(rating.reviewer_id, len(reviewer_index)))
        values.append(number)

    # Reviewers are numbered in the order of their ids, so a pair is always named (a, b).
    reviewer_ids = sorted(reviewer_index)
    rank = np.zeros(len(reviewer_ids), np.int64)
    for new, reviewer_id in enumerate(reviewer_ids):
        rank[reviewer_index[reviewer_id]] = new
    item_array = np.array(items, np.int64)
    reviewer_array = rank[np.array(reviewers, np.int64)]
    value_array = np.array(values, np.int64)
    item_array, reviewer_array, value_array = _latest(
        item_array, reviewer_array, value_array, distinct, by_question
    )

    collected = [
        _scale_ratings(scale, distinct, item_array, reviewer_array, value_array) for scale in scales
    ]
    # Gold answers of rated items only: the others cannot be compared with anything.
    for item_id, answers in gold.items():
        if item_id in item_index:
            for name, answer in answers.items():
                for n in by_question.get(name, ()):
                    category = scales[n].category(answer)
                    if category is not None:
                        collected[n].gold[item_index[item_id]] = category

    result = Collected(
        list(item_index), reviewer_ids, collected, int(value_array.shape[0]), ignored
    )
    decision = result.decision
    if decision is not None:
        for item_id, value in final_decisions.items():
            category = decision.scale.category(value)
            if item_id in item_index and category is not None:
                result.final[item_index[item_id]] = category
    return result


# The value an unhashable answer is replaced with: a category of no scale.
_UNFIT = object()


def _scale_ratings(
    scale: Scale,
    distinct: list[tuple[str, object]],
    items: Indexes,
    reviewers: Indexes,
    values: Indexes,
) -> ScaleRatings:
    """The answers that are ratings of ``scale``: each distinct answer's category looked up
    once (-1: it does not fit, -2: an answer to another question)."""
    lookup = np.full(len(distinct), -2, np.int64)
    for number, (question, answer) in enumerate(distinct):
        if question == scale.question.name:
            category = scale.category(answer)
            lookup[number] = -1 if category is None else category
    categories = lookup[values]
    valid = categories >= 0
    order = np.lexsort((reviewers[valid], items[valid]))
    return ScaleRatings(
        scale=scale,
        items=items[valid][order],
        reviewers=reviewers[valid][order],
        categories=categories[valid][order],
        gold={},
        invalid=int((categories == -1).sum()),
    )


def _latest(
    items: Indexes,
    reviewers: Indexes,
    values: Indexes,
    distinct: list[tuple[str, object]],
    by_question: dict[str, list[int]],
) -> tuple[Indexes, Indexes, Indexes]:
    """Of the answers of one reviewer to one question about one item, the last one."""
    names = {name: n for n, name in enumerate(by_question)}
    question_of = np.array([names[q] for q, _ in distinct], np.int64)
    item_count = int(items.max()) + 1 if items.size else 1
    reviewer_count = int(reviewers.max()) + 1 if reviewers.size else 1
    key = (question_of[values] * item_count + items) * reviewer_count + reviewers
    # np.unique keeps each key's first position: of the reversed arrays, i.e. the last.
    _, first = np.unique(key[::-1], return_index=True)
    last = np.sort(key.shape[0] - 1 - first)
    return items[last], reviewers[last], values[last]
