"""JSON Schemas that clients give (generation specs' output schemas, task schemas'
``content``): checked as schemas before anything is validated against them."""

from __future__ import annotations

from typing import Any

import jsonschema


def valid_json_schema(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` if it is a valid JSON Schema (draft 2020-12, its patterns compiling), else
    a ValueError naming the path at fault."""
    try:
        jsonschema.Draft202012Validator.check_schema(value)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(part) for part in exc.path)
        raise ValueError(
            f"not a valid JSON Schema{f' at {where}' if where else ''}: {exc.message}"
        ) from None
    except RecursionError:
        # A `pattern` nesting thousands of groups (compiled by recursion).
        raise ValueError("not a valid JSON Schema: a pattern nests too deeply") from None
    return value
