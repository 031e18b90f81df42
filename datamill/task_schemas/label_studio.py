"""A task schema as a Label Studio labeling config (XML), and a sample's content as the
``data`` of a Label Studio task that config reads.

Names, stable for a schema (the Label Studio import reads annotations back by them):

- a display field's data key and object tag name: its path with ``.`` written ``__`` and
  every character other than a letter, digit or ``_`` written ``_`` (``answer.text`` ->
  ``answer__text``); chat fields are ``<Paragraphs>``, every other kind ``<Text>`` (values
  that are not text are written as JSON text). A schema without display fields shows its
  content's top-level ``properties``, or else the whole content as JSON in ``content``;
- a question: its ``name`` (decision: ``<Choices>`` of ``approve`` and ``reject``; rating:
  ``<Rating maxRating="5">``; labels: ``<Choices>``, ``choice="multiple"`` when several may
  be chosen; text: ``<TextArea>``);
- the decision's reject reason: ``<name>_reason`` (a ``<TextArea>``) and, when the schema
  offers reasons, ``<name>_reasons`` (a ``<Choices>`` of them);
- an edit, when the schema is editable: ``edited_<key>`` per text, markdown or code field.

Names that would collide are refused (`LabelStudioConflict`), so a name always means one
thing.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import orjson

from datamill.protocol.task_schema_format import (
    DisplayField,
    FieldKind,
    QuestionKind,
    TaskSchema,
    field_value,
)

_NOT_NAME = re.compile(r"[^A-Za-z0-9_]")
WHOLE_CONTENT = "content"
_EDITABLE_KINDS = frozenset({FieldKind.text, FieldKind.markdown, FieldKind.code})


class LabelStudioConflict(ValueError):
    """Two parts of a schema would have the same Label Studio name."""


def data_key(path: str) -> str:
    """A content path's key in a task's ``data`` (and its object tag's name)."""
    return "__".join(_NOT_NAME.sub("_", part) for part in path.split("."))


def display_fields(schema: TaskSchema) -> list[DisplayField]:
    """The fields Label Studio shows: the schema's display fields, else its content's
    top-level properties (as text); empty: the whole content, as JSON."""
    if schema.display.fields:
        return list(schema.display.fields)
    properties = schema.content.get("properties")
    if isinstance(properties, dict):
        return [DisplayField(field=name) for name in properties if "." not in name and name]
    return []


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def task_data(schema: TaskSchema, content: dict[str, Any]) -> dict[str, Any]:
    """A sample's content as the ``data`` of a Label Studio task for `labeling_config`."""
    fields = display_fields(schema)
    if not fields:
        return {WHOLE_CONTENT: _text(content)}
    data: dict[str, Any] = {}
    for field in fields:
        value = field_value(content, field.field)
        if field.kind is FieldKind.chat:
            data[data_key(field.field)] = value if isinstance(value, list) else []
        else:
            data[data_key(field.field)] = _text(value)
    return data


class _Names:
    def __init__(self) -> None:
        self._taken: dict[str, str] = {}

    def take(self, name: str, what: str) -> str:
        if name in self._taken:
            raise LabelStudioConflict(
                f"{what} and {self._taken[name]} would both be named {name!r} in Label Studio; "
                "rename one"
            )
        self._taken[name] = what
        return name


def labeling_config(schema: TaskSchema) -> str:
    """The schema's labeling config (see the module for its names)."""
    names = _Names()
    view = ET.Element("View")
    fields = display_fields(schema)
    targets: list[str] = []
    if not fields:
        name = names.take(WHOLE_CONTENT, "the content")
        ET.SubElement(view, "Header", value="content")
        ET.SubElement(view, "Text", name=name, value=f"${name}")
        targets.append(name)
    for field in fields:
        key = names.take(data_key(field.field), f"display field {field.field!r}")
        ET.SubElement(view, "Header", value=field.label or field.field)
        if field.kind is FieldKind.chat:
            ET.SubElement(
                view,
                "Paragraphs",
                name=key,
                value=f"${key}",
                layout="dialogue",
                nameKey="role",
                textKey="content",
            )
        else:
            ET.SubElement(view, "Text", name=key, value=f"${key}")
        targets.append(key)
    target = targets[0]
    for question in schema.review.questions:
        name = names.take(question.name, f"question {question.name!r}")
        ET.SubElement(view, "Header", value=question.prompt or question.name)
        required = "true" if question.required else "false"
        if question.kind is QuestionKind.decision:
            choices = ET.SubElement(
                view, "Choices", name=name, toName=target, choice="single", required="true"
            )
            ET.SubElement(choices, "Choice", value="approve", hotkey="a")
            ET.SubElement(choices, "Choice", value="reject", hotkey="r")
            shown = {
                "visibleWhen": "choice-selected",
                "whenTagName": name,
                "whenChoiceValue": "reject",
            }
            if question.reasons:
                reasons = ET.SubElement(
                    view,
                    "Choices",
                    {
                        "name": names.take(f"{name}_reasons", f"question {name!r}'s reasons"),
                        "toName": target,
                        "choice": "single",
                        **shown,
                    },
                )
                for reason in question.reasons:
                    ET.SubElement(reasons, "Choice", value=reason)
            ET.SubElement(
                view,
                "TextArea",
                {
                    "name": names.take(f"{name}_reason", f"question {name!r}'s reject reason"),
                    "toName": target,
                    "rows": "2",
                    "maxSubmissions": "1",
                    "placeholder": "Why reject it?",
                    **shown,
                },
            )
        elif question.kind is QuestionKind.rating:
            ET.SubElement(
                view, "Rating", name=name, toName=target, maxRating="5", required=required
            )
        elif question.kind is QuestionKind.labels:
            choice = "multiple" if question.multiple else "single"
            choices = ET.SubElement(
                view, "Choices", name=name, toName=target, choice=choice, required=required
            )
            for option in question.options:
                ET.SubElement(choices, "Choice", value=option)
        else:
            ET.SubElement(
                view,
                "TextArea",
                name=name,
                toName=target,
                rows="3",
                maxSubmissions="1",
                required=required,
            )
    if schema.review.editable:
        for field in fields:
            if field.kind not in _EDITABLE_KINDS:
                continue
            key = data_key(field.field)
            ET.SubElement(view, "Header", value=f"Edit {field.label or field.field}")
            ET.SubElement(
                view,
                "TextArea",
                name=names.take(f"edited_{key}", f"the edit of {field.field!r}"),
                toName=key,
                value=f"${key}",
                editable="true",
                maxSubmissions="1",
                rows="4",
            )
    ET.indent(view)
    return ET.tostring(view, encoding="unicode") + "\n"
