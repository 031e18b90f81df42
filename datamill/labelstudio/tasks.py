"""Samples as Label Studio tasks: ``{"data": {...}, "predictions": [...]}``, written as one
JSON array, streamed a page at a time (`TaskEncoder`, the ``label-studio`` export format).

``data`` holds each shown field under its key (`names`): with display fields, those; else
every top-level field of the content. Text stays text; other values are JSON text; a chat
field is its list of ``{role, content}``. Then ``datamill_sample_id`` and
``datamill_dataset_id``, by which the import finds the sample again.

The one prediction proposes the answers a reviewer starts from: the decision is the sample's
current one (``model_version`` ``datamill-review``) when a review decided it, else
``approve``, the model's proposal (``model_version``: the sample's model, or ``datamill``);
a rating or labels question whose name is a key of the sample's metadata holding a valid
answer (a rating 1-5, an option or a list of options) is proposed with that answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from datamill.curation.formats.report import ExportReport
from datamill.protocol.task_schema_format import (
    RATING_RANGE,
    FieldKind,
    Question,
    QuestionKind,
    TaskSchema,
)
from datamill.storage.samples import SampleRecord
from datamill.task_schemas import label_studio_names as names
from datamill.task_schemas.label_studio_names import Layout

REVIEW_MODEL_VERSION = "datamill-review"
PROPOSAL_MODEL_VERSION = "datamill"
# A sample's review state (the review workflow's) as the decision it stands for.
_DECIDED = {"approved": "approve", "edited": "approve", "rejected": "reject"}


@dataclass(frozen=True, slots=True)
class TaskLayout:
    """What an export of tasks writes: the schema's questions and the fields it shows."""

    schema: TaskSchema
    layout: Layout

    @property
    def target(self) -> str:
        """The object tag the questions' controls label."""
        if self.layout.whole_content:
            return names.object_name(names.WHOLE_CONTENT)
        return self.layout.fields[0].object_name


def task_layout(schema: TaskSchema, top_level: list[str] | tuple[str, ...] = ()) -> TaskLayout:
    """The layout of ``schema``'s tasks (`names.layout`; raises `names.NameConflict`)."""
    return TaskLayout(schema, names.layout(schema, top_level))


def text_of(value: Any) -> str:
    """A value as Label Studio shows it: text as is, anything else as JSON text."""
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def field_value(content: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of the content, None when any step is missing."""
    value: Any = content
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _chat(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        return []
    return [
        {"role": text_of(m.get("role")), "content": text_of(m.get("content"))}
        for m in value
        if isinstance(m, dict)
    ]


def task_data(layout: TaskLayout, record: SampleRecord) -> dict[str, Any]:
    """A sample as a task's ``data``."""
    content = record.content
    data: dict[str, Any] = {}
    if layout.schema.display.fields:
        for field in layout.layout.fields:
            value = field_value(content, field.path)
            data[field.key] = _chat(value) if field.kind is FieldKind.chat else text_of(value)
    else:
        if layout.layout.whole_content:
            data[names.WHOLE_CONTENT] = text_of(content)
        for name, value in content.items():
            data.setdefault(names.data_key(name), text_of(value))
    data[names.SAMPLE_ID_KEY] = record.id
    data[names.DATASET_ID_KEY] = record.dataset_id
    return data


def current_decision(record: SampleRecord) -> str | None:
    """The decision the sample's reviews settled on, if they did (its review state)."""
    return _DECIDED.get(record.review_state)


def prediction(layout: TaskLayout, record: SampleRecord) -> dict[str, Any]:
    """The task's prediction (see the module)."""
    decided = current_decision(record)
    target = layout.target
    result: list[dict[str, Any]] = []
    metadata = record.metadata or {}
    for question in layout.schema.review.questions:
        if question.kind is QuestionKind.decision:
            found: tuple[str, dict[str, Any]] | None = (
                "choices",
                {"choices": [decided or "approve"]},
            )
        elif question.name in metadata:
            found = _metadata_answer(question, metadata[question.name])
        else:
            found = None
        if found is not None:
            kind, value = found
            result.append(
                {"from_name": question.name, "to_name": target, "type": kind, "value": value}
            )
    version = REVIEW_MODEL_VERSION if decided else (record.model or PROPOSAL_MODEL_VERSION)
    return {"model_version": version, "result": result}


def _metadata_answer(question: Question, answer: Any) -> tuple[str, dict[str, Any]] | None:
    if question.kind is QuestionKind.rating:
        low, high = RATING_RANGE
        if isinstance(answer, int) and not isinstance(answer, bool) and low <= answer <= high:
            return "rating", {"rating": answer}
        return None
    if question.kind is QuestionKind.labels:
        chosen = answer if isinstance(answer, list) and question.multiple else [answer]
        if chosen and all(isinstance(c, str) and c in question.options for c in chosen):
            return "choices", {"choices": list(chosen)}
    return None


def task(layout: TaskLayout, record: SampleRecord) -> dict[str, Any]:
    """A sample as a Label Studio task."""
    return {"data": task_data(layout, record), "predictions": [prediction(layout, record)]}


class TaskEncoder:
    """`label-studio`: a JSON array of tasks, one page of samples at a time."""

    def __init__(self, layout: TaskLayout, report: ExportReport) -> None:
        self._layout = layout
        self._report = report
        self._first = True

    def begin(self) -> bytes:
        return b"["

    def encode(self, page: list[SampleRecord]) -> bytes:
        if not page:
            return b""
        parts = [orjson.dumps(task(self._layout, record)) for record in page]
        head = b"\n" if self._first else b",\n"
        self._first = False
        self._report.exported += len(page)
        return head + b",\n".join(parts)

    def end(self) -> bytes:
        return b"\n]\n"
