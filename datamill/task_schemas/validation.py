"""Sample contents checked against their task schema's ``content`` JSON Schema.

A schema in a small vocabulary whose checks take time linear in the content (types,
properties, required, lengths, bounds, enums: `PLAIN_KEYWORDS`) is checked here, in the
process. Any other (a ``pattern`` can backtrack for ever, ``uniqueItems`` is quadratic,
``$ref`` and the combinators can recurse) is checked in generation's bounded worker
processes (`generation.confined.validate_all`): a check that overruns its deadline is a
problem saying so, never a hung server.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jsonschema

from datamill.errors import InvalidRequest
from datamill.generation.confined import ConfinedPool, SchemaProblem, validate_all
from datamill.protocol.task_schema_format import TaskSchema

_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description"})
PLAIN_KEYWORDS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "prefixItems",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
    }
)


def is_plain(schema: Any) -> bool:
    """Whether ``schema`` uses only `PLAIN_KEYWORDS` (subschemas included)."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, bool):
            continue
        if not isinstance(node, dict) or not set(node) <= PLAIN_KEYWORDS:
            return False
        properties = node.get("properties", {})
        if not isinstance(properties, dict):
            return False
        stack.extend(properties.values())
        for key in ("additionalProperties", "items"):
            if key in node:
                stack.append(node[key])
        prefix = node.get("prefixItems", [])
        if not isinstance(prefix, list):
            return False
        stack.extend(prefix)
    return True


async def content_problems(
    items: Sequence[tuple[TaskSchema, dict[str, Any]]], pool: ConfinedPool | None = None
) -> list[SchemaProblem | None]:
    """Each ``(schema, content)``'s first problem, None when the content passes."""
    problems: list[SchemaProblem | None] = [None] * len(items)
    # Per schema (by identity) in this call: None (any object passes), a validator, or
    # False (checked apart).
    checkers: dict[int, jsonschema.Draft202012Validator | bool | None] = {}
    confined: list[int] = []
    for index, (schema, content) in enumerate(items):
        key = id(schema)
        if key not in checkers:
            checkers[key] = _checker(schema.content)
        checker = checkers[key]
        if checker is None:
            continue
        if checker is False or checker is True:
            confined.append(index)
            continue
        error = min(checker.iter_errors(content), key=_by_path, default=None)
        if error is not None:
            problems[index] = SchemaProblem(tuple(error.path), error.message[:300])
    if confined:
        checked = await validate_all([(items[i][0].content, items[i][1]) for i in confined], pool)
        for index, problem in zip(confined, checked, strict=True):
            problems[index] = problem
    return problems


def _checker(schema: dict[str, Any]) -> jsonschema.Draft202012Validator | bool | None:
    if set(schema) <= _ANNOTATIONS | {"type"} and schema.get("type", "object") == "object":
        return None  # a content is always an object
    if not is_plain(schema):
        return False
    return jsonschema.Draft202012Validator(schema)


def _by_path(error: jsonschema.ValidationError) -> Any:
    # The first problem by path, as generation reports it (`first_schema_error`).
    return [str(part) for part in error.path]


def problem_param(problem: SchemaProblem, *, prefix: str = "content") -> str:
    """The dotted path of a problem (``content.answer.text``, ``content.tags.2``)."""
    return ".".join([prefix, *(str(part) for part in problem.path)])


def invalid_content(problem: SchemaProblem, schema: TaskSchema) -> InvalidRequest:
    """The 400 answering a content its schema refuses, naming the path at fault."""
    param = problem_param(problem)
    return InvalidRequest(
        f"{param}: {problem.message} (task schema {schema.name!r})",
        param=param,
        code="invalid_content",
    )
