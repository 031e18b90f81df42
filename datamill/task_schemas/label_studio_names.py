"""What every Label Studio data key and control tag is called: the export writes these
names, the labeling config shows them, and the import reads annotations back by them.

- a shown field's data key: its content path, ``.`` written ``__`` and every character
  other than a letter, digit or ``_`` written ``_`` (``answer.text`` -> ``answer__text``);
  its object tag: ``f_<key>`` (``<Text>``, or ``<Paragraphs>`` for chat fields);
- the sample's and the dataset's ids: ``datamill_sample_id``, ``datamill_dataset_id``;
- a question: its ``name``; the decision's reject reason ``<name>_reason`` (free text) and
  ``<name>_reason_choice`` (the schema's reasons, when it lists some);
- an edit of a text field: ``edit__<key>``.

A schema whose names would collide is refused (`NameConflict`): a name means one thing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from datamill.protocol.task_schema_format import FieldKind, Question, QuestionKind, TaskSchema

SAMPLE_ID_KEY = "datamill_sample_id"
DATASET_ID_KEY = "datamill_dataset_id"
OBJECT_PREFIX = "f_"
EDIT_PREFIX = "edit__"
REASON_SUFFIX = "_reason"
REASON_CHOICE_SUFFIX = "_reason_choice"
# With no field to show, the whole content is shown as JSON text under this key.
WHOLE_CONTENT = "content"
# Top-level fields a config shows at most when neither the schema nor the caller names any.
MAX_SHOWN_FIELDS = 50

_NOT_NAME = re.compile(r"[^A-Za-z0-9_]")
# Kinds whose text a reviewer may edit in Label Studio (chat and JSON values are not text).
EDITABLE_KINDS = frozenset({FieldKind.text, FieldKind.markdown, FieldKind.code})


class NameConflict(ValueError):
    """Two parts of a schema would have the same Label Studio name."""


@functools.lru_cache(maxsize=4096)
def data_key(path: str) -> str:
    """A content path's key in a task's ``data`` (cached: an export asks per sample)."""
    return "__".join(_NOT_NAME.sub("_", part) for part in path.split("."))


def object_name(key: str) -> str:
    """The object tag showing the data key ``key``."""
    return f"{OBJECT_PREFIX}{key}"


def edit_name(key: str) -> str:
    """The ``<TextArea>`` holding the edit of the data key ``key``."""
    return f"{EDIT_PREFIX}{key}"


def reason_name(question: str) -> str:
    """The decision question's free-text reject reason."""
    return f"{question}{REASON_SUFFIX}"


def reason_choice_name(question: str) -> str:
    """The decision question's listed reject reasons."""
    return f"{question}{REASON_CHOICE_SUFFIX}"


@dataclass(frozen=True, slots=True)
class ShownField:
    """A content field as Label Studio shows it: its path, data key and kind."""

    path: str
    key: str
    kind: FieldKind
    label: str

    @property
    def object_name(self) -> str:
        return object_name(self.key)

    @property
    def editable(self) -> bool:
        return self.kind in EDITABLE_KINDS


@dataclass(frozen=True, slots=True)
class Layout:
    """A schema's names: the fields shown (in order), and every control's name."""

    fields: tuple[ShownField, ...]
    whole_content: bool  # True: no field to show; the content as JSON under `WHOLE_CONTENT`
    editable: bool  # the schema lets reviewers edit: an ``edit__<key>`` per editable field

    @property
    def edits(self) -> dict[str, ShownField]:
        """The edit control names and the fields they edit."""
        if not self.editable:
            return {}
        return {edit_name(f.key): f for f in self.fields if f.editable}


def layout(schema: TaskSchema, top_level: Sequence[str] = ()) -> Layout:
    """The fields a schema's tasks show: its display fields; none given, the content's
    top-level ``properties`` its JSON Schema names, else ``top_level`` (the top-level fields
    found in the samples, text shown as is), else the whole content as JSON. Refuses
    (`NameConflict`) a schema two of whose names would collide."""
    shown: list[ShownField] = []
    if schema.display.fields:
        for display in schema.display.fields:
            key = data_key(display.field)
            shown.append(ShownField(display.field, key, display.kind, display.label or key))
    else:
        properties = schema.content.get("properties")
        names: Iterable[str] = properties if isinstance(properties, dict) else top_level
        for name in list(names)[:MAX_SHOWN_FIELDS]:
            if isinstance(name, str) and name and "." not in name:
                shown.append(ShownField(name, data_key(name), FieldKind.text, name))
    found = Layout(tuple(shown), whole_content=not shown, editable=schema.review.editable)
    _check_names(schema, found)
    return found


def question_names(question: Question) -> list[str]:
    """The control names a question's answer is read from."""
    names = [question.name]
    if question.kind is QuestionKind.decision:
        names.append(reason_name(question.name))
        if question.reasons:
            names.append(reason_choice_name(question.name))
    return names


class _Names:
    def __init__(self) -> None:
        self._taken: dict[str, str] = {}

    def take(self, name: str, what: str) -> None:
        if name in self._taken:
            raise NameConflict(
                f"{what} and {self._taken[name]} would both be named {name!r} in Label "
                "Studio; rename one"
            )
        self._taken[name] = what


def _check_names(schema: TaskSchema, found: Layout) -> None:
    keys, tags = _Names(), _Names()
    keys.take(SAMPLE_ID_KEY, "the sample id")
    keys.take(DATASET_ID_KEY, "the dataset id")
    if found.whole_content:
        keys.take(WHOLE_CONTENT, "the content")
        tags.take(object_name(WHOLE_CONTENT), "the content")
    for field in found.fields:
        keys.take(field.key, f"field {field.path!r}")
        tags.take(field.object_name, f"field {field.path!r}")
    for name, field in found.edits.items():
        tags.take(name, f"the edit of {field.path!r}")
    for question in schema.review.questions:
        for name in question_names(question):
            tags.take(name, f"question {question.name!r}")
