"""The labeling config against Label Studio's tag reference: only documented tags and
attributes, every control labelling an object tag of the config, every object reading a
data key the tasks write, the names of `labelstudio.names`; and, when label-studio-sdk is
installed, its own parser reading the config and checking tasks against it."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from datamill.labelstudio.tasks import task, task_layout
from datamill.protocol.task_schema_format import DEFAULT_SCHEMA, TaskSchema
from datamill.task_schemas import label_studio_names as names
from datamill.task_schemas.label_studio import TAG_ATTRIBUTES, labeling_config
from tests.labelstudio.records import record
from tests.labelstudio.schemas import PLAIN, QA

# The parameters of each tag as labelstud.io/tags lists them (written here from the
# reference pages, apart from `config.TAG_ATTRIBUTES`).
REFERENCE: dict[str, set[str]] = {
    "View": {"display", "style", "className", "idAttr", "visibleWhen", "whenTagName",
             "whenLabelValue", "whenChoiceValue"},
    "Header": {"value", "size", "style", "underline"},
    "Text": {"name", "value", "valueType", "saveTextResult", "encoding", "selectionEnabled",
             "clickableLinks", "highlightColor", "showLabels", "granularity"},
    "Paragraphs": {"name", "value", "valueType", "audioUrl", "sync", "showPlayer",
                   "saveTextResult", "layout", "nameKey", "textKey", "contextScroll"},
    "Choices": {"name", "toName", "choice", "showInline", "required", "requiredMessage",
                "visibleWhen", "whenTagName", "whenLabelValue", "whenChoiceValue", "perRegion",
                "perItem", "value", "allowNested", "layout"},
    "Choice": {"value", "selected", "alias", "style", "hotkey", "html", "hint", "color"},
    "Rating": {"name", "toName", "maxRating", "icon", "size", "defaultValue", "hotkey",
               "required", "requiredMessage", "perRegion", "perItem"},
    "TextArea": {"name", "toName", "value", "label", "placeholder", "maxSubmissions",
                 "editable", "skipDuplicates", "transcription", "displayMode", "rows",
                 "required", "requiredMessage", "showSubmitButton", "perRegion", "perItem"},
}  # fmt: skip
OBJECT_TAGS = {"Text", "Paragraphs"}
CONTROL_TAGS = {"Choices", "Rating", "TextArea"}
SCHEMAS = [QA, PLAIN, DEFAULT_SCHEMA]


def parsed(schema: TaskSchema, top_level: list[str] | None = None) -> ET.Element:
    return ET.fromstring(labeling_config(schema, top_level or ["question", "answer"]))


def test_the_attribute_table_is_within_the_reference():
    for tag, attributes in TAG_ATTRIBUTES.items():
        assert attributes <= REFERENCE[tag], (tag, attributes - REFERENCE[tag])


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.name)
def test_only_documented_tags_and_attributes(schema: TaskSchema):
    for element in parsed(schema).iter():
        assert element.tag in TAG_ATTRIBUTES, element.tag
        assert set(element.attrib) <= TAG_ATTRIBUTES[element.tag], (element.tag, element.attrib)


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.name)
def test_controls_label_objects_and_objects_read_the_tasks_data(schema: TaskSchema):
    root = parsed(schema)
    objects = {e.get("name"): e for e in root.iter() if e.tag in OBJECT_TAGS}
    controls = [e for e in root.iter() if e.tag in CONTROL_TAGS]
    names_ = [e.get("name") for e in [*objects.values(), *controls]]
    assert len(names_) == len(set(names_))  # every name once
    for control in controls:
        assert control.get("toName") in objects, control.attrib
    content = {"question": "Q?", "answer": {"text": "A."}, "messages": [], "meta": {"a": 1},
               "prompt": "P", "completion": "C"}  # fmt: skip
    layout = task_layout(schema, ["question", "answer"])
    data = task(layout, record(content))["data"]
    for element in [*objects.values(), *(c for c in controls if c.get("value"))]:
        key = element.get("value", "").removeprefix("$")
        assert key in data, (element.attrib, sorted(data))


def test_the_qa_schema_as_the_contract_names_it():
    root = parsed(QA)
    by_name = {e.get("name"): e for e in root.iter() if e.get("name")}
    assert by_name["f_question"].tag == "Text"
    assert by_name["f_answer__text"].attrib == {"name": "f_answer__text", "value": "$answer__text"}
    chat = by_name["f_messages"]
    assert (chat.tag, chat.get("nameKey"), chat.get("textKey")) == ("Paragraphs", "role", "content")
    assert chat.get("layout") == "dialogue"
    decision = by_name["decision"]
    assert decision.tag == "Choices"
    assert (decision.get("choice"), decision.get("required")) == ("single", "true")
    assert [c.get("value") for c in decision] == ["approve", "reject"]
    assert by_name["decision_reason"].tag == "TextArea"
    assert [c.get("value") for c in by_name["decision_reason_choice"]] == ["wrong", "toxic"]
    shown_when = next(e for e in root.iter("View") if e.get("visibleWhen"))
    assert shown_when.attrib == {
        "visibleWhen": "choice-selected",
        "whenTagName": "decision",
        "whenChoiceValue": "reject",
    }
    assert {e.get("name") for e in shown_when} == {"decision_reason", "decision_reason_choice"}
    assert by_name["rating"].attrib["maxRating"] == "5"
    assert by_name["topic"].get("choice") == "multiple"
    assert by_name["tone"].get("choice") == "single"
    assert by_name["comment"].tag == "TextArea"
    # Edits: the text fields (markdown is text), pre-filled; not chat, not JSON.
    edits = {n: e for n, e in by_name.items() if n.startswith("edit__")}
    assert set(edits) == {"edit__question", "edit__answer__text"}
    assert edits["edit__answer__text"].attrib == {
        "name": "edit__answer__text",
        "toName": "f_answer__text",
        "value": "$answer__text",
        "editable": "true",
        "maxSubmissions": "1",
        "rows": "4",
    }
    assert not any(e.tag == "HyperText" for e in root.iter())


def test_fields_come_from_properties_then_the_samples_then_the_whole_content():
    plain = parsed(PLAIN, ["ignored"])
    assert [e.get("name") for e in plain.iter("Text")] == ["f_prompt", "f_completion"]
    assert not [e for e in plain.iter("TextArea") if e.get("name", "").startswith("edit__")]
    found = ET.fromstring(labeling_config(DEFAULT_SCHEMA, ["instruction", "output"]))
    assert [e.get("name") for e in found.iter("Text")] == ["f_instruction", "f_output"]
    whole = ET.fromstring(labeling_config(DEFAULT_SCHEMA))
    assert [e.get("value") for e in whole.iter("Text")] == ["$content"]


@pytest.mark.parametrize(
    ("fields", "questions", "clash"),
    [
        (["a-b", "a_b"], [], "'a_b'"),
        (["question"], [{"name": "f_question", "kind": "text"}], "'f_question'"),
        (["q"], [{"name": "decision_reason", "kind": "text"}], "'decision_reason'"),
        (["datamill_sample_id"], [], "'datamill_sample_id'"),
    ],
)
def test_names_that_would_collide_are_refused(fields, questions, clash):
    schema = TaskSchema.model_validate(
        {
            "name": "clash",
            "display": {"fields": [{"field": f} for f in fields]},
            "review": {"questions": [{"name": "decision", "kind": "decision"}, *questions]},
        }
    )
    with pytest.raises(names.NameConflict, match=clash):
        labeling_config(schema)


def test_label_studio_sdk_reads_the_config_and_the_tasks():
    sdk = pytest.importorskip("label_studio_sdk.label_interface")
    for schema in SCHEMAS:
        config = labeling_config(schema, ["question", "answer"])
        interface = sdk.LabelInterface(config)
        controls = {c.name for c in interface.controls}
        expected = {e.get("name") for e in ET.fromstring(config).iter() if e.tag in CONTROL_TAGS}
        assert controls == expected
        layout = task_layout(schema, ["question", "answer"])
        content = {"question": "Q?", "answer": {"text": "A."}, "messages": [], "meta": {},
                   "prompt": "P", "completion": "C"}  # fmt: skip
        made = task(layout, record(content, metadata={"rating": 4, "topic": ["math"]}))
        # (validate_task with predictions calls validate_prediction without one: an SDK bug.)
        assert interface.validate_task({"data": made["data"]}) is True
        assert interface.validate_task({"data": {}}) is False
        for prediction in made["predictions"]:
            assert interface.validate_prediction(prediction) is True
        wrong = {"from_name": "decision", "type": "choices", "value": {"choices": ["maybe"]}}
        wrong["to_name"] = layout.target
        if schema is not PLAIN:
            assert interface.validate_prediction({"result": [wrong]}) is False
