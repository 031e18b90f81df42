"""Generation specs: the example loads, errors name their key path, targets are spread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from datamill.errors import InvalidRequest
from datamill.generation.spec import (
    cell_targets,
    parse_spec,
    read_spec_file,
    spec_hash,
    spec_json_schema,
)

EXAMPLE = Path(__file__).parents[2] / "examples" / "legal-cases.yaml"


def minimal(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "tiny",
        "model": "sim-model",
        "topics": {"items": ["a", "b", "c"]},
        "sample_types": [
            {
                "name": "qa",
                "template": "Ask about {{ topic }}",
                "schema": {"type": "object", "properties": {"q": {"type": "string"}}},
            }
        ],
        "target": {"total": 10},
    }
    spec.update(changes)
    return spec


def test_the_legal_cases_example_is_42_topics_by_4_types_for_7600():
    spec, _ = read_spec_file(EXAMPLE)
    assert spec.topics.items is not None
    assert len(spec.topics.items) == 42
    assert [t.name for t in spec.sample_types] == [
        "case_analysis",
        "statute_explanation",
        "contract_clause_review",
        "legal_qa",
    ]
    targets = cell_targets(spec, spec.topics.items)
    assert len(targets) == 168
    assert sum(targets.values()) == 7600
    assert set(targets.values()) == {45, 46}


@pytest.mark.parametrize(
    ("changes", "param", "words"),
    [
        ({"colour": "red"}, "spec.colour", "Extra inputs"),
        ({"target": {"total": 5, "per_cell": 2}}, "spec.target", "exactly one"),
        ({"topics": {"items": ["a", "a"]}}, "spec.topics", "distinct"),
        ({"sampling": {"messages": []}}, "spec.sampling", "set by the generation job"),
        (
            {"sample_types": [{"name": "x", "template": "{{ topic", "schema": {}}]},
            "spec.sample_types[0].template",
            "does not compile",
        ),
        (
            {"sample_types": [{"name": "x", "template": "t", "schema": {"type": "banana"}}]},
            "spec.sample_types[0].schema",
            "not a valid JSON Schema",
        ),
        (
            {"quality": {"regex": [{"pattern": "(unclosed"}]}},
            "spec.quality.regex[0].pattern",
            "not a valid regex",
        ),
        (
            {"quality": {"judge": {"prompt": "rate {{ sample }}", "threshold": 11}}},
            "spec.quality.judge",
            "between 0 and max_score",
        ),
        ({"dedup": {"threshold": 1.5}}, "spec.dedup.threshold", "less than or equal"),
    ],
)
def test_errors_name_the_key_path(changes: dict[str, Any], param: str, words: str):
    with pytest.raises(InvalidRequest) as caught:
        parse_spec(minimal(**changes))
    assert caught.value.param == param
    assert caught.value.code == "invalid_spec"
    assert words in caught.value.message


def test_yaml_text_and_bad_yaml():
    assert (
        parse_spec(
            "name: t\nmodel: m\ntopics: {items: [x]}\nsample_types:\n"
            "  - {name: a, template: t, schema: {}}\ntarget: {per_cell: 2}\n"
        ).name
        == "t"
    )
    with pytest.raises(InvalidRequest, match="not valid YAML"):
        parse_spec("name: [unclosed")
    with pytest.raises(InvalidRequest, match="mapping"):
        parse_spec("- a list")


def test_targets_per_type_and_per_cell_and_a_types_own():
    spec = parse_spec(minimal(target={"per_type": 7}))
    assert cell_targets(spec, ["a", "b", "c"]) == {("a", "qa"): 3, ("b", "qa"): 2, ("c", "qa"): 2}
    spec = parse_spec(minimal(target={"per_cell": 4}))
    assert set(cell_targets(spec, ["a", "b"]).values()) == {4}
    types = minimal()["sample_types"] + [
        {"name": "other", "template": "t", "schema": {}, "target": 1}
    ]
    spec = parse_spec(minimal(sample_types=types, target={"per_cell": 4}))
    targets = cell_targets(spec, ["a", "b"])
    assert targets[("a", "other")] + targets[("b", "other")] == 1


def test_hash_ignores_key_order_and_the_schema_is_published():
    first = parse_spec(minimal())
    reordered = parse_spec(dict(reversed(list(minimal().items()))))
    assert spec_hash(first) == spec_hash(reordered)
    assert spec_hash(first) != spec_hash(parse_spec(minimal(name="other")))
    schema = spec_json_schema()
    assert schema["additionalProperties"] is False
    assert {"topics", "sample_types", "target", "quality", "dedup", "budget"} <= set(
        schema["properties"]
    )


def test_dedup_defaults_agree_with_the_index():
    from datamill.nlp import dedup

    spec = parse_spec(minimal())
    assert spec.dedup.threshold == dedup.DEFAULT_THRESHOLD
    assert spec.dedup.lexical_threshold == dedup.DEFAULT_LEXICAL_THRESHOLD
