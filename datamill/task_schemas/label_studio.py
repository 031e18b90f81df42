"""A task schema as a Label Studio labeling config (XML), with the names of `names`.

Each shown field is a ``<Header>`` and an object tag: ``<Text name="f_<key>"
value="$<key>"/>``, or for chat fields ``<Paragraphs>`` in the dialogue layout over a list of
``{role, content}`` (``nameKey="role" textKey="content"``). Markdown is shown as ``<Text>``:
``<HyperText>`` renders HTML, unsafe for untrusted text. Then the questions, each a control
on the first field: the decision a required single ``<Choices>`` of ``approve`` and
``reject``, its reject reason (``<Choices>`` of the listed reasons, and a ``<TextArea>``) in a
``<View>`` shown when ``reject`` is chosen; rating ``<Rating maxRating="5">``; labels
``<Choices>`` (``choice="multiple"`` when several may be chosen); text ``<TextArea>``. An
editable schema adds ``<TextArea name="edit__<key>" value="$<key>" editable="true"
maxSubmissions="1">`` per text field, pre-filled with the field's text: a reviewer who
submits changed text there edits the sample.

Every tag and attribute used is in Label Studio's tag reference (labelstud.io/tags);
`TAG_ATTRIBUTES` lists them, and the tests hold the config to it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from datamill.protocol.task_schema_format import (
    DECISION_VALUES,
    RATING_RANGE,
    FieldKind,
    Question,
    QuestionKind,
    TaskSchema,
)
from datamill.task_schemas import label_studio_names as names
from datamill.task_schemas.label_studio_names import Layout, ShownField

# The attributes each tag may carry here, from Label Studio's tag reference.
TAG_ATTRIBUTES: dict[str, frozenset[str]] = {
    "View": frozenset({"style", "visibleWhen", "whenTagName", "whenChoiceValue"}),
    "Header": frozenset({"value"}),
    "Text": frozenset({"name", "value"}),
    "Paragraphs": frozenset({"name", "value", "layout", "nameKey", "textKey"}),
    "Choices": frozenset({"name", "toName", "choice", "required", "showInline"}),
    "Choice": frozenset({"value"}),
    "Rating": frozenset({"name", "toName", "maxRating", "required"}),
    "TextArea": frozenset(
        {"name", "toName", "value", "editable", "maxSubmissions", "rows", "required", "placeholder"}
    ),
}


def labeling_config(schema: TaskSchema, top_level: Sequence[str] = ()) -> str:
    """The schema's labeling config; ``top_level``: the samples' top-level fields, shown
    when the schema names none (`names.layout`). Raises `names.NameConflict`."""
    found = names.layout(schema, top_level)
    view = ET.Element("View")
    if found.whole_content:
        ET.SubElement(view, "Header", value="Content")
        key = names.WHOLE_CONTENT
        ET.SubElement(view, "Text", name=names.object_name(key), value=f"${key}")
        target = names.object_name(key)
    else:
        for field in found.fields:
            _object_tag(view, field)
        target = found.fields[0].object_name
    for question in schema.review.questions:
        _question(view, question, target)
    _edits(view, found)
    ET.indent(view)
    return ET.tostring(view, encoding="unicode") + "\n"


def _object_tag(view: ET.Element, field: ShownField) -> None:
    ET.SubElement(view, "Header", value=field.label)
    if field.kind is FieldKind.chat:
        ET.SubElement(
            view,
            "Paragraphs",
            name=field.object_name,
            value=f"${field.key}",
            layout="dialogue",
            nameKey="role",
            textKey="content",
        )
    else:
        ET.SubElement(view, "Text", name=field.object_name, value=f"${field.key}")


def _question(view: ET.Element, question: Question, target: str) -> None:
    ET.SubElement(view, "Header", value=question.prompt or question.name)
    required = "true" if question.required else "false"
    if question.kind is QuestionKind.decision:
        choices = ET.SubElement(
            view,
            "Choices",
            name=question.name,
            toName=target,
            choice="single",
            required="true",
            showInline="true",
        )
        for value in DECISION_VALUES:
            ET.SubElement(choices, "Choice", value=value)
        # The reason is asked for once "reject" is chosen.
        why = ET.SubElement(
            view,
            "View",
            visibleWhen="choice-selected",
            whenTagName=question.name,
            whenChoiceValue="reject",
        )
        if question.reasons:
            reasons = ET.SubElement(
                why,
                "Choices",
                name=names.reason_choice_name(question.name),
                toName=target,
                choice="single",
            )
            for reason in question.reasons:
                ET.SubElement(reasons, "Choice", value=reason)
        ET.SubElement(
            why,
            "TextArea",
            name=names.reason_name(question.name),
            toName=target,
            rows="2",
            maxSubmissions="1",
            placeholder="Why reject it?",
        )
    elif question.kind is QuestionKind.rating:
        ET.SubElement(
            view,
            "Rating",
            name=question.name,
            toName=target,
            maxRating=str(RATING_RANGE[1]),
            required=required,
        )
    elif question.kind is QuestionKind.labels:
        choices = ET.SubElement(
            view,
            "Choices",
            name=question.name,
            toName=target,
            choice="multiple" if question.multiple else "single",
            required=required,
        )
        for option in question.options:
            ET.SubElement(choices, "Choice", value=option)
    else:
        ET.SubElement(
            view,
            "TextArea",
            name=question.name,
            toName=target,
            rows="3",
            maxSubmissions="1",
            required=required,
        )


def _edits(view: ET.Element, found: Layout) -> None:
    for name, field in found.edits.items():
        ET.SubElement(view, "Header", value=f"Edit {field.label}")
        ET.SubElement(
            view,
            "TextArea",
            name=name,
            toName=field.object_name,
            value=f"${field.key}",
            editable="true",
            maxSubmissions="1",
            rows="4",
        )
