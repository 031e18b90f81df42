"""Values built for JSON Schemas are valid (checked by the jsonschema package) and plausible."""

from __future__ import annotations

import datetime as dt
import random
import re
import uuid
from typing import Any
from urllib.parse import urlparse

import pytest
from jsonschema import Draft7Validator, Draft202012Validator

from datamill.providers.sim.schema_instance import instance_for_schema

SEEDS = range(40)


def check(schema: dict[str, Any], *, seeds: range = SEEDS, draft7: bool = False) -> list[Any]:
    """Build a value per seed and assert each one validates; return the values."""
    validator_class = Draft7Validator if draft7 else Draft202012Validator
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    values = []
    for seed in seeds:
        value = instance_for_schema(schema, random.Random(seed))
        errors = [e.message for e in validator.iter_errors(value)]
        assert not errors, (seed, value, errors)
        values.append(value)
    return values


PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "height_m": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 3},
        "member": {"type": "boolean"},
        "role": {"type": "string", "enum": ["admin", "editor", "viewer"]},
        "tags": {
            "type": "array",
            "items": {"type": "string", "maxLength": 12},
            "minItems": 1,
            "maxItems": 4,
            "uniqueItems": True,
        },
        "nickname": {"type": ["string", "null"]},
    },
    "required": ["name", "age", "role"],
    "additionalProperties": False,
}


def test_object_with_scalars_enums_arrays_and_nullable() -> None:
    values = check(PERSON)
    assert all(set(PERSON["required"]) <= set(v) for v in values)
    # Optional properties and nullable types are sometimes present, sometimes not.
    assert any("tags" in v for v in values)
    assert any("tags" not in v for v in values)
    assert any(v.get("nickname") is None and "nickname" in v for v in values)
    assert any(isinstance(v.get("nickname"), str) for v in values)


def test_same_seed_same_value_and_seeds_vary() -> None:
    first = instance_for_schema(PERSON, random.Random(7))
    assert instance_for_schema(PERSON, random.Random(7)) == first
    assert len({repr(instance_for_schema(PERSON, random.Random(s))) for s in SEEDS}) > 30


def test_strings_are_plain_words() -> None:
    for value in check({"type": "string"}):
        assert re.fullmatch(r"[A-Z][a-z]+( [a-z]+)+", value), value


def test_openai_strict_mode_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "steps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "explanation": {"type": "string"},
                        "output": {"type": "string"},
                    },
                    "required": ["explanation", "output"],
                    "additionalProperties": False,
                },
            },
            "final_answer": {"type": "string"},
            "confidence": {"anyOf": [{"type": "number"}, {"type": "null"}]},
        },
        "required": ["steps", "final_answer", "confidence"],
        "additionalProperties": False,
    }
    check(schema)


def test_string_lengths() -> None:
    for value in check({"type": "string", "minLength": 30, "maxLength": 40}):
        assert 30 <= len(value) <= 40
    assert check({"type": "string", "maxLength": 0}, seeds=range(3)) == ["", "", ""]
    check({"type": "string", "minLength": 1, "maxLength": 3})


@pytest.mark.parametrize(
    "pattern",
    [
        r"^[A-Z]{3}-\d{4}$",
        r"^[a-z]+(-[a-z]+)*$",
        r"^\+?[0-9]{10,12}$",
        r"^(foo|bar)_\d+$",
        r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$",
        r"^#[0-9a-fA-F]{6}$",
        r"^v\d+\.\d+\.\d+$",
        r"^(\w)\w*\1$",
        r"@",
        r"^[a-z ]+$",
        r"^\S+$",
    ],
)
def test_patterns(pattern: str) -> None:
    for value in check({"type": "string", "pattern": pattern}):
        assert re.search(pattern, value)


def test_pattern_with_length() -> None:
    schema = {"type": "string", "pattern": "^[a-z]+$", "minLength": 12, "maxLength": 14}
    for value in check(schema):
        assert 12 <= len(value) <= 14


def test_unsatisfiable_pattern_raises_naming_the_path() -> None:
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^(?=x)y$"}},
        "required": ["code"],
    }
    with pytest.raises(ValueError, match=r"\$\.code: could not make a string matching pattern"):
        instance_for_schema(schema, random.Random(0))
    with pytest.raises(ValueError, match=r"\$: pattern '\(' is not a valid regex"):
        instance_for_schema({"type": "string", "pattern": "("}, random.Random(0))


def test_formats() -> None:
    for value in check({"type": "string", "format": "date"}):
        dt.date.fromisoformat(value)
    for value in check({"type": "string", "format": "date-time"}):
        assert dt.datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
    for value in check({"type": "string", "format": "email"}):
        assert re.fullmatch(r"[a-z]+\.[a-z]+@example\.com", value)
    for value in check({"type": "string", "format": "uri"}):
        parsed = urlparse(value)
        assert parsed.scheme == "https"
        assert parsed.netloc
    for value in check({"type": "string", "format": "uuid"}):
        assert uuid.UUID(value).version == 4


def test_numbers_respect_bounds_and_multiples() -> None:
    check({"type": "integer", "minimum": 5, "maximum": 5})
    check({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 2})
    check({"type": "integer", "minimum": -1000, "maximum": -990, "multipleOf": 3})
    check({"type": "number", "minimum": 0.5, "maximum": 0.75})
    check({"type": "number", "exclusiveMinimum": 1, "exclusiveMaximum": 1.01})
    check({"type": "number", "multipleOf": 0.1, "minimum": 0, "maximum": 1})
    check({"type": "number", "multipleOf": 0.25, "exclusiveMinimum": 10})
    check({"type": "integer", "multipleOf": 0.5, "maximum": -3})
    for value in check({"type": "integer"}):
        assert type(value) is int


def test_impossible_numbers_raise() -> None:
    with pytest.raises(ValueError, match=r"\$: no integer lies between"):
        instance_for_schema({"type": "integer", "minimum": 1.2, "maximum": 1.8}, random.Random(0))
    schema = {"type": "integer", "minimum": 1, "maximum": 6, "multipleOf": 7}
    with pytest.raises(ValueError, match="no multiple of 7"):
        instance_for_schema(schema, random.Random(0))


def test_const_enum_and_type_lists() -> None:
    assert check({"const": {"a": [1, 2]}}, seeds=range(3)) == [{"a": [1, 2]}] * 3
    check({"type": "string", "enum": ["a", 1, None, "b"]})
    values = check({"type": ["integer", "string", "boolean", "null"]})
    assert {type(v) for v in values} >= {int, str, bool}


def test_any_of_one_of_and_all_of() -> None:
    check({"anyOf": [{"type": "string", "format": "date"}, {"type": "integer", "minimum": 3}]})
    # Overlapping branches: only strings longer than 5 match exactly one.
    for value in check({"oneOf": [{"type": "string"}, {"type": "string", "maxLength": 5}]}):
        assert len(value) > 5
    check(
        {
            "oneOf": [
                {
                    "type": "object",
                    "properties": {"kind": {"const": "circle"}, "r": {"type": "number"}},
                    "required": ["kind", "r"],
                },
                {
                    "type": "object",
                    "properties": {"kind": {"const": "square"}, "side": {"type": "number"}},
                    "required": ["kind", "side"],
                },
            ]
        }
    )
    schema = {
        "$defs": {
            "Base": {
                "type": "object",
                "properties": {"id": {"type": "string", "format": "uuid"}},
                "required": ["id"],
            }
        },
        "allOf": [
            {"$ref": "#/$defs/Base"},
            {"properties": {"count": {"type": "integer", "minimum": 1}}, "required": ["count"]},
            {"properties": {"count": {"maximum": 3}}},
        ],
    }
    for value in check(schema):
        assert {"id", "count"} <= set(value)
        assert 1 <= value["count"] <= 3


def test_all_of_respects_additional_properties_false() -> None:
    schema = {
        "allOf": [
            {"properties": {"a": {"type": "string"}}, "additionalProperties": False},
            {"properties": {"a": {"minLength": 2}, "b": {"type": "string"}}},
        ]
    }
    for value in check(schema):
        assert "b" not in value


def test_refs_to_defs_and_definitions() -> None:
    check(
        {
            "type": "object",
            "properties": {
                "home": {"$ref": "#/$defs/Address"},
                "work": {"$ref": "#/$defs/Address"},
            },
            "required": ["home"],
            "$defs": {
                "Address": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string"},
                        "zip": {"type": "string", "pattern": r"^\d{5}$"},
                    },
                    "required": ["city", "zip"],
                }
            },
        }
    )
    check(
        {
            "definitions": {"Color": {"enum": ["red", "green"]}},
            "type": "array",
            "items": {"$ref": "#/definitions/Color"},
            "minItems": 2,
        },
        draft7=True,
    )


def test_recursive_refs_terminate() -> None:
    tree = {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                    "parent": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
                },
                "required": ["label", "children", "parent"],
                "additionalProperties": False,
            }
        },
        "$ref": "#/$defs/Node",
    }
    check(tree)
    root_recursion = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]},
        },
        "required": ["name", "next"],
    }
    check(root_recursion)


def test_endless_recursion_and_bad_refs_raise() -> None:
    endless = {
        "$defs": {
            "Loop": {
                "type": "object",
                "properties": {"next": {"$ref": "#/$defs/Loop"}},
                "required": ["next"],
            }
        },
        "$ref": "#/$defs/Loop",
    }
    with pytest.raises(ValueError, match="recursion does not end"):
        instance_for_schema(endless, random.Random(0))
    schema = {"properties": {"a": {"$ref": "#/$defs/Missing"}}, "required": ["a"]}
    with pytest.raises(ValueError, match=r"\$\.a: \$ref '#/\$defs/Missing' points to nothing"):
        instance_for_schema(schema, random.Random(0))
    with pytest.raises(ValueError, match="only local"):
        instance_for_schema({"$ref": "https://example.com/s.json"}, random.Random(0))


def test_arrays() -> None:
    for value in check({"type": "array", "items": {"type": "integer"}, "minItems": 5}):
        assert len(value) >= 5
    check(
        {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False}
    )
    check({"type": "array", "items": [{"type": "string"}, {"type": "null"}]}, draft7=True)
    for value in check(
        {"type": "array", "items": {"enum": [1, 2, 3]}, "uniqueItems": True, "minItems": 3}
    ):
        assert sorted(value) == [1, 2, 3]
    check(
        {"type": "array", "contains": {"type": "integer"}, "items": {"type": ["string", "integer"]}}
    )
    schema = {"type": "array", "items": {"enum": [1, 2]}, "uniqueItems": True, "minItems": 3}
    with pytest.raises(ValueError, match="distinct items"):
        instance_for_schema(schema, random.Random(0))


def test_object_property_counts_and_additional_properties() -> None:
    check({"type": "object", "minProperties": 3, "additionalProperties": {"type": "integer"}})
    check(
        {
            "type": "object",
            "properties": {
                "a": {"type": "string"},
                "b": {"type": "string"},
                "c": {"type": "string"},
            },
            "maxProperties": 1,
        }
    )
    check({"type": "object", "required": ["x"], "additionalProperties": {"type": "boolean"}})
    schema = {"type": "object", "required": ["x"], "additionalProperties": False}
    with pytest.raises(ValueError, match="'x' is required but additionalProperties is false"):
        instance_for_schema(schema, random.Random(0))


def test_not_and_boolean_schemas() -> None:
    check({"type": "integer", "minimum": 0, "maximum": 3, "not": {"const": 2}})
    check({"type": "object", "properties": {"anything": True}, "required": ["anything"]})
    schema = {"properties": {"never": False}, "required": ["never"]}
    with pytest.raises(ValueError, match=r"\$\.never: the schema is `false`"):
        instance_for_schema(schema, random.Random(0))
