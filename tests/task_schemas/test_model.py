"""The task schema format: files read (YAML or JSON, bounded, aliases refused), problems
named by their key path, the default schema, ICL templates, and which schema a sample
follows."""

from __future__ import annotations

from pathlib import Path

import pytest

from datamill.errors import InvalidRequest
from datamill.protocol.task_schema_format import (
    DEFAULT_SCHEMA,
    MAX_SCHEMA_BYTES,
    SCHEMA_FORMAT_VERSION,
    QuestionKind,
    field_value,
    render_template,
    schema_format,
)
from datamill.render.task_schemas import FORMAT_VERSION
from datamill.storage.datasets import DatasetRecord
from datamill.task_schemas.files import parse_task_schema, read_task_schema_file
from datamill.task_schemas.service import SchemaSet
from datamill.task_schemas.validation import is_plain

EXAMPLE = Path(__file__).parents[2] / "examples" / "task-schemas" / "legal_qa.yaml"


def test_the_example_file_reads_with_every_part():
    schema = read_task_schema_file(EXAMPLE)
    assert schema.name == "legal_qa"
    assert [q.kind for q in schema.review.questions] == [
        QuestionKind.decision,
        QuestionKind.rating,
        QuestionKind.labels,
        QuestionKind.text,
    ]
    assert schema.review.decision.reasons[0] == "Wrong law"
    assert schema.chat.user_field == "question"
    assert schema.export.fields == ["question", "answer", "caveats"]


def test_the_default_schema_asks_a_decision_a_rating_and_a_comment():
    assert [q.name for q in DEFAULT_SCHEMA.review.questions] == ["decision", "rating", "comment"]
    assert DEFAULT_SCHEMA.content == {"type": "object"}
    assert FORMAT_VERSION == SCHEMA_FORMAT_VERSION  # rendering's copy agrees


@pytest.mark.parametrize(
    ("text", "param", "words"),
    [
        ("name: qa\ncolour: red\n", "s.colour", "Extra inputs"),
        (
            "name: qa\nreview: {questions: [{name: d, kind: vote}]}\n",
            "s.review.questions[0].kind",
            "",
        ),
        (
            "name: qa\ncontent: {type: object, properties: {a: {type: nope}}}\n",
            "s.content",
            "properties/a/type",
        ),
        (
            "name: qa\ncontent: {properties: {a: {pattern: '('}}}\n",
            "s.content",
            "not a valid JSON Schema",
        ),
        ("name: qa\nicl: {template: 'a { b'}\n", "s.icl.template", "placeholder"),
        ("name: qa\ndisplay: {css: 'a { background: url(x) }'}\n", "s.display.css", "url"),
        ("name: qa\ndescription: &a x\nicl: {template: *a}\n", "s", "YAML aliases"),
        ("- a list\n", "s", "mapping"),
        ("name: _hidden\n", "s.name", "pattern"),
    ],
)
def test_a_problem_names_its_key_path(text: str, param: str, words: str):
    with pytest.raises(InvalidRequest) as raised:
        parse_task_schema(text, param="s")
    assert raised.value.param == param
    assert words in raised.value.message
    assert raised.value.code == "invalid_task_schema"


def test_a_schema_over_the_size_cap_is_refused():
    text = "name: qa\ndescription: x\ncontent: {description: '" + "x" * MAX_SCHEMA_BYTES + "'}\n"
    with pytest.raises(InvalidRequest, match="more than the"):
        parse_task_schema(text)


def test_the_format_is_a_json_schema_of_every_key():
    form = schema_format()
    assert set(form["properties"]) == {
        "name", "description", "content", "display", "review", "chat", "icl", "export"
    }  # fmt: skip


def test_templates_and_field_paths():
    content = {"q": "2+2?", "a": {"text": "4", "n": 4}, "x.y": "dotted key"}
    assert (
        render_template("Q: {q} A: {a.text} ({a.n}) {{lit}}", content) == "Q: 2+2? A: 4 (4) {lit}"
    )
    assert render_template("{missing}", content) is None
    assert field_value(content, "x.y") == "dotted key"  # a key with a dot is a key first
    assert field_value(content, "a.nope") is None


def test_plain_schemas_are_told_from_those_checked_apart():
    assert is_plain({"type": "object", "properties": {"a": {"type": "string", "maxLength": 3}}})
    assert is_plain({"type": "array", "items": {"enum": [1, 2]}, "prefixItems": [True]})
    assert not is_plain({"properties": {"a": {"pattern": "^a$"}}})
    assert not is_plain({"items": {"uniqueItems": True}})
    assert not is_plain({"$ref": "#/$defs/a"})
    assert not is_plain({"anyOf": [{"type": "string"}]})


def test_a_sample_follows_its_type_else_the_dataset_default_else_the_built_in():
    qa = parse_task_schema({"name": "qa"})
    other = parse_task_schema({"name": "other"})
    found = SchemaSet({"qa": qa, "other": other}, fallback=other)
    assert found.for_type("qa") is qa
    assert found.for_type("unknown") is other
    assert found.for_type(None) is other
    assert SchemaSet({}, DEFAULT_SCHEMA).for_type("qa") is DEFAULT_SCHEMA
    assert DatasetRecord("ds_1", "p", "d", None, 0, 0, None).task_schema is None
