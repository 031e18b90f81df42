"""Label Studio's annotation export read back: tasks, their annotations, and each
annotation's results as a review's answers by the names of `names`.

Two export formats are read:

- ``JSON`` (the full one): a list of tasks ``{"id", "data", "annotations": [{"id",
  "completed_by", "result": [{"from_name", "to_name", "type", "value"}], "was_cancelled",
  "ground_truth", "updated_at"}]}``; ``completed_by`` is a user id or an object with an
  ``email``;
- ``JSON_MIN``: a list of flat objects, one per annotation, holding the task's data keys and
  each control's value by its name (a choice as text, several as ``{"choices": [...]}``, a
  rating as a number, text as text or a list), with ``annotator``, ``annotation_id`` and
  ``id`` (the task's).

Nothing here touches the store: `parse_export` reads the file, `read_answers` turns one
annotation into answers, a reason and edits, or the problems that keep it out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from datamill.errors import InvalidRequest
from datamill.protocol.task_schema_format import (
    DECISION_VALUES,
    RATING_RANGE,
    Question,
    QuestionKind,
    TaskSchema,
)
from datamill.task_schemas import label_studio_names as names
from datamill.task_schemas.label_studio_names import Layout, ShownField

REVIEWER_PREFIX = "labelstudio:"
# JSON_MIN keys that are the annotation's, not the task's data or a control's value.
_MIN_KEYS = frozenset(
    {"id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "drafts"}
)

Format = Literal["json", "json-min"]


@dataclass(frozen=True, slots=True)
class Annotation:
    """One annotation of a task, as exported."""

    id: str | None
    reviewer: str | None  # ``labelstudio:<email or user id>``; None: nobody named
    results: list[Any]
    cancelled: bool = False
    ground_truth: bool = False
    updated_at: str | None = None

    @property
    def key(self) -> str:
        """What the annotation says, as a digest: the same results give the same key, so an
        annotation imported again is recognised (its id and times do not count)."""
        said = [self.reviewer, self.ground_truth, self.results]
        return "ls_" + hashlib.sha256(orjson.dumps(said, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(slots=True)
class Task:
    """One task of the export: where it is in the file, its data and annotations."""

    index: int  # its position in the file, from 0
    id: str | None
    data: dict[str, Any]
    annotations: list[Annotation] = field(default_factory=list)

    @property
    def sample_id(self) -> Any:
        return self.data.get(names.SAMPLE_ID_KEY)

    @property
    def dataset_id(self) -> Any:
        return self.data.get(names.DATASET_ID_KEY)


@dataclass(frozen=True, slots=True)
class Problem:
    """What keeps (part of) a task out: where, and what is wrong."""

    task: int
    message: str
    param: str | None = None
    annotation_id: str | None = None


@dataclass(frozen=True, slots=True)
class Answers:
    """One annotation read: its answers, reason and edits (data key -> text)."""

    answers: dict[str, Any]
    reason: str | None
    edits: dict[str, str]


def reviewer_of(completed_by: Any) -> str | None:
    """``labelstudio:<email>`` for a user object with an email, else ``labelstudio:<id>``."""
    if isinstance(completed_by, Mapping):
        email = completed_by.get("email")
        if isinstance(email, str) and email.strip():
            return REVIEWER_PREFIX + email.strip()
        completed_by = completed_by.get("id")
    if isinstance(completed_by, bool) or completed_by is None:
        return None
    if isinstance(completed_by, int | str) and str(completed_by).strip():
        return REVIEWER_PREFIX + str(completed_by).strip()
    return None


def _id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    return str(value)


def parse_export(body: bytes, controls: frozenset[str]) -> tuple[Format, list[Task], list[Problem]]:
    """The export's tasks, and the problems of items that are no task. ``controls``: the
    control names of the schema (JSON_MIN's values are told from data keys by them). A file
    that is not a JSON list is a 400 naming ``file``."""
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"the file is not Label Studio's JSON export: {exc}", param="file"
        ) from None
    if not isinstance(items, list):
        raise InvalidRequest(
            "the file is not Label Studio's JSON export: it holds no list of tasks", param="file"
        )
    full = any(isinstance(item, dict) and isinstance(item.get("data"), dict) for item in items)
    tasks: list[Task] = []
    problems: list[Problem] = []
    by_id: dict[str, Task] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(Problem(index, "a task is a JSON object"))
            continue
        if full:
            found = _full_task(index, item, problems)
            if found is not None:
                tasks.append(found)
            continue
        # JSON_MIN: one item per annotation; those of one task are put together by its id.
        task_id = _id(item.get("id"))
        data = {k: v for k, v in item.items() if k not in controls and k not in _MIN_KEYS}
        task = by_id.get(task_id) if task_id is not None else None
        if task is None:
            task = Task(index, task_id, data)
            tasks.append(task)
            if task_id is not None:
                by_id[task_id] = task
        results = [
            {"from_name": name, "min": True, "value": value}
            for name, value in item.items()
            if name in controls
        ]
        if results or item.get("annotator") is not None:
            task.annotations.append(
                Annotation(
                    id=_id(item.get("annotation_id")),
                    reviewer=reviewer_of(item.get("annotator")),
                    results=results,
                    updated_at=_text_or_none(item.get("updated_at")),
                )
            )
    return ("json" if full else "json-min"), tasks, problems


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _full_task(index: int, item: dict[str, Any], problems: list[Problem]) -> Task | None:
    data = item.get("data")
    if not isinstance(data, dict):
        problems.append(Problem(index, "the task has no `data` object", param="data"))
        return None
    task = Task(index, _id(item.get("id")), data)
    annotations = item.get("annotations") or []
    if not isinstance(annotations, list):
        problems.append(Problem(index, "`annotations` is not a list", param="annotations"))
        return task
    for position, raw in enumerate(annotations):
        if not isinstance(raw, dict):
            problems.append(
                Problem(index, "an annotation is a JSON object", param=f"annotations[{position}]")
            )
            continue
        results = raw.get("result") or []
        if not isinstance(results, list):
            problems.append(
                Problem(
                    index,
                    "the annotation's `result` is not a list",
                    param=f"annotations[{position}].result",
                    annotation_id=_id(raw.get("id")),
                )
            )
            continue
        task.annotations.append(
            Annotation(
                id=_id(raw.get("id")),
                reviewer=reviewer_of(raw.get("completed_by")),
                results=results,
                cancelled=raw.get("was_cancelled") is True,
                ground_truth=raw.get("ground_truth") is True,
                updated_at=_text_or_none(raw.get("updated_at")),
            )
        )
    return task


def control_names(schema: TaskSchema, layout: Layout) -> frozenset[str]:
    """Every control name an annotation of the schema's tasks may hold."""
    found = {name for q in schema.review.questions for name in names.question_names(q)}
    return frozenset(found | set(layout.edits))


class _Bad(ValueError):
    pass


def read_answers(
    schema: TaskSchema, layout: Layout, annotation: Annotation, *, need_reason: bool = True
) -> Answers | str:
    """The annotation as answers, a reason and edits, or what is wrong with it (a control
    the schema does not have, a value of the wrong kind, a required question unanswered, a
    reject without a reason when ``need_reason``)."""
    questions = {q.name: q for q in schema.review.questions}
    decision = schema.review.decision
    reasons: dict[str, str] = {}
    edits_by_name = layout.edits
    answers: dict[str, Any] = {}
    edits: dict[str, str] = {}
    for position, result in enumerate(annotation.results):
        if not isinstance(result, dict):
            return f"result[{position}] is not a JSON object"
        name = result.get("from_name")
        if not isinstance(name, str):
            return f"result[{position}] has no `from_name`"
        try:
            if name in questions:
                answers[name] = _answer(questions[name], result)
            elif name == names.reason_name(decision.name):
                reasons["text"] = _text(result)
            elif decision.reasons and name == names.reason_choice_name(decision.name):
                reasons["choice"] = _one_of(result, decision.reasons)
            elif name in edits_by_name:
                edits[edits_by_name[name].key] = _text(result)
            else:
                return f"{name!r} is no control of schema {schema.name!r}"
        except _Bad as bad:
            return f"{name}: {bad}"
    for question in schema.review.questions:
        if question.required and answers.get(question.name) in (None, "", []):
            return f"question {question.name!r} needs an answer"
    reason = ": ".join(r for r in (reasons.get("choice"), reasons.get("text")) if r) or None
    if need_reason and answers[decision.name] == "reject" and not (reason and reason.strip()):
        return f"a reject needs a reason: {names.reason_name(decision.name)} is empty"
    return Answers(answers, reason, edits)


def _values(result: dict[str, Any], key: str) -> Any:
    value = result.get("value")
    if result.get("min"):
        # JSON_MIN writes the value itself, or {"choices": [...]} for several.
        if isinstance(value, dict) and key in value:
            return value[key]
        return value
    if not isinstance(value, dict):
        raise _Bad("the result has no `value` object")
    if key not in value:
        raise _Bad(f"the value has no `{key}`")
    return value[key]


def _choices(result: dict[str, Any]) -> list[str]:
    chosen = _values(result, "choices")
    chosen = [chosen] if isinstance(chosen, str) else chosen
    if not isinstance(chosen, list) or not all(isinstance(c, str) for c in chosen):
        raise _Bad("choices are a list of text")
    return chosen


def _one_of(result: dict[str, Any], allowed: list[str] | tuple[str, ...]) -> str:
    chosen = _choices(result)
    if len(chosen) != 1:
        raise _Bad(f"choose one, not {len(chosen)}")
    if chosen[0] not in allowed:
        raise _Bad(f"{chosen[0]!r} is not one of {', '.join(allowed)}")
    return chosen[0]


def _text(result: dict[str, Any]) -> str:
    text = _values(result, "text")
    if isinstance(text, list) and all(isinstance(t, str) for t in text):
        return "\n".join(text)
    if isinstance(text, str):
        return text
    raise _Bad("text is text or a list of text")


def _answer(question: Question, result: dict[str, Any]) -> Any:
    if question.kind is QuestionKind.decision:
        return _one_of(result, DECISION_VALUES)
    if question.kind is QuestionKind.rating:
        rating = _values(result, "rating")
        low, high = RATING_RANGE
        if isinstance(rating, float) and rating.is_integer():
            rating = int(rating)
        if isinstance(rating, bool) or not isinstance(rating, int) or not low <= rating <= high:
            raise _Bad(f"a rating is a whole number from {low} to {high}, not {rating!r}")
        return rating
    if question.kind is QuestionKind.labels:
        chosen = _choices(result)
        wrong = [c for c in chosen if c not in question.options]
        if wrong:
            raise _Bad(f"{wrong[0]!r} is not one of {', '.join(question.options)}")
        if question.multiple:
            return chosen
        if len(chosen) != 1:
            raise _Bad(f"choose one, not {len(chosen)}")
        return chosen[0]
    return _text(result)


def edited_content(
    content: dict[str, Any],
    edits: dict[str, str],
    fields: dict[str, ShownField],
    shown: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any] | None, list[str]]:
    """The content with the edits applied (None: no change), and the edits refused (a field
    holding something other than text). An edit is text that differs from what the task
    showed (``shown``, the task's data; without it, from the content): a reviewer who
    submitted the pre-filled text unchanged edited nothing, and does not undo another's
    edit."""
    changed = False
    refused: list[str] = []
    new = orjson.loads(orjson.dumps(content))
    for key, text in edits.items():
        field = fields[key]
        if shown is not None and isinstance(shown.get(key), str) and shown[key] == text:
            continue
        parts = field.path.split(".")
        holder: Any = new
        for part in parts[:-1]:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if not isinstance(holder, dict):
            refused.append(f"{names.edit_name(key)}: {field.path!r} is not in the content")
            continue
        current = holder.get(parts[-1])
        if current == text:
            continue
        if current is not None and not isinstance(current, str):
            refused.append(f"{names.edit_name(key)}: {field.path!r} holds no text")
            continue
        holder[parts[-1]] = text
        changed = True
    return (new if changed else None), refused
