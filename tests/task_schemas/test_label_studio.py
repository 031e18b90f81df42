"""The Label Studio labeling config: XML that parses, one control per question (named by
it), the display fields as object tags whose ``$`` values are keys of the task's ``data``,
edits for editable text fields, and names refused when they would collide.

label-studio-sdk is not used here: installing it pulls about thirty packages (pandas,
opencv-python-headless, nltk, black...) and would downgrade numpy to 2.2.6 in the venv. The
checks below are the rules of Label Studio's config parser that matter to datamill: unique
names, every control's ``toName`` an object tag, every ``$`` value a key of the task data."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from datamill.errors import InvalidRequest
from datamill.protocol.task_schema_format import DEFAULT_SCHEMA, TaskSchema
from datamill.task_schemas.files import parse_task_schema
from datamill.task_schemas.label_studio import data_key, labeling_config, task_data

OBJECTS = {"Text", "Paragraphs", "HyperText"}
CONTROLS = {"Choices", "TextArea", "Rating"}

SCHEMA = {
    "name": "chatty",
    "display": {
        "fields": [
            {"field": "dialog", "kind": "chat", "label": "Conversation"},
            {"field": "answer.text", "kind": "markdown"},
            {"field": "meta", "kind": "json"},
            {"field": "odd-name"},
        ]
    },
    "review": {
        "questions": [
            {"name": "keep", "kind": "decision", "prompt": "Keep?", "reasons": ["Rude", "Wrong"]},
            {"name": "stars", "kind": "rating"},
            {"name": "tags", "kind": "labels", "options": ["a", "b"], "multiple": True},
            {"name": "kind", "kind": "labels", "options": ["x", "y"]},
            {"name": "why", "kind": "text", "required": False},
        ]
    },
}
CONTENT = {
    "dialog": [{"role": "user", "content": "hi"}],
    "answer": {"text": "**hello**"},
    "meta": {"n": 1},
    "odd-name": "x",
}


def checked(schema: TaskSchema, content: dict) -> ET.Element:
    """The config, parsed, after Label Studio's rules that datamill relies on."""
    view = ET.fromstring(labeling_config(schema))
    assert view.tag == "View"
    named = [e for e in view if e.get("name")]
    names = [e.get("name") for e in named]
    assert len(names) == len(set(names)), names
    objects = {e.get("name") for e in named if e.tag in OBJECTS}
    data = task_data(schema, content)
    for element in named:
        if element.tag in CONTROLS:
            assert element.get("toName") in objects, element.attrib
        value = element.get("value")
        if value is not None and value.startswith("$"):
            assert value[1:] in data, (value, data)
    return view


def test_every_question_and_field_has_its_tag():
    schema = parse_task_schema(SCHEMA)
    view = checked(schema, CONTENT)
    tags = {e.get("name"): e for e in view if e.get("name")}
    assert tags["dialog"].tag == "Paragraphs"
    assert tags["answer__text"].tag == "Text"
    assert tags["odd_name"].get("value") == "$odd_name"
    assert [c.get("value") for c in tags["keep"]] == ["approve", "reject"]
    assert tags["keep"].get("choice") == "single"
    assert [c.get("value") for c in tags["keep_reasons"]] == ["Rude", "Wrong"]
    assert tags["keep_reason"].tag == "TextArea"
    assert tags["keep_reason"].get("whenChoiceValue") == "reject"
    assert (tags["stars"].tag, tags["stars"].get("maxRating")) == ("Rating", "5")
    assert tags["tags"].get("choice") == "multiple"
    assert tags["kind"].get("choice") == "single"
    assert tags["why"].tag == "TextArea"
    # Editable: text, markdown and code fields only (not chat, not json).
    edits = sorted(name for name in tags if name.startswith("edited_"))
    assert edits == ["edited_answer__text", "edited_odd_name"]
    assert tags["edited_answer__text"].get("editable") == "true"
    assert task_data(schema, CONTENT) == {
        "dialog": CONTENT["dialog"],
        "answer__text": "**hello**",
        "meta": '{"n":1}',
        "odd_name": "x",
    }


def test_names_are_stable_and_the_headers_say_what_each_is():
    schema = parse_task_schema(SCHEMA)
    assert labeling_config(schema) == labeling_config(parse_task_schema(SCHEMA))
    headers = [e.get("value") for e in ET.fromstring(labeling_config(schema)) if e.tag == "Header"]
    assert headers[:2] == ["Conversation", "answer.text"]
    assert "Keep?" in headers


def test_without_display_fields_the_properties_or_the_whole_content_show():
    with_properties = parse_task_schema(
        {"name": "p", "content": {"type": "object", "properties": {"q": {}, "a": {}}}}
    )
    view = checked(with_properties, {"q": "1", "a": "2"})
    assert [e.get("name") for e in view if e.tag == "Text"] == ["q", "a"]
    view = checked(DEFAULT_SCHEMA, {"anything": [1]})
    assert [e.get("name") for e in view if e.tag == "Text"] == ["content"]
    assert task_data(DEFAULT_SCHEMA, {"anything": [1]}) == {"content": '{"anything":[1]}'}
    not_editable = parse_task_schema({"name": "n", "review": {"editable": False}})
    assert not [e for e in checked(not_editable, {}) if str(e.get("name")).startswith("edited_")]


@pytest.mark.parametrize(
    "review",
    [
        {"questions": [{"name": "d", "kind": "decision"}, {"name": "d_reason", "kind": "text"}]},
        {"questions": [{"name": "d", "kind": "decision"}, {"name": "content", "kind": "text"}]},
    ],
)
def test_colliding_names_are_refused(review: dict):
    with pytest.raises(InvalidRequest, match="would both be named"):
        parse_task_schema({"name": "c", "review": review})


def test_data_keys():
    assert data_key("answer.text") == "answer__text"
    assert data_key("a b.c-d") == "a_b__c_d"
