"""JSON value checks for the schema-instance builder: types, equality, bounds."""

from __future__ import annotations

from typing import Any

from datamill.providers.sim.regex_strings import compiled


def is_multiple(value: float, step: float) -> bool:
    # The same test as common validators: an exact integer quotient, in float arithmetic.
    if isinstance(step, float) or isinstance(value, float):
        quotient = value / step
        return quotient == int(quotient)
    return value % step == 0


def string_ok(schema: dict[str, Any], value: str) -> bool:
    if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
        return False
    pattern = schema.get("pattern")
    return pattern is None or compiled(pattern).search(value) is not None


def number_ok(schema: dict[str, Any], value: float) -> bool:
    checks = (
        ("minimum", lambda b: value >= b),
        ("maximum", lambda b: value <= b),
        ("exclusiveMinimum", lambda b: isinstance(b, bool) or value > b),
        ("exclusiveMaximum", lambda b: isinstance(b, bool) or value < b),
        ("multipleOf", lambda b: is_multiple(value, b)),
    )
    return all(key not in schema or test(schema[key]) for key, test in checks)


_PYTHON_TYPES: dict[str, type | tuple[type, ...]] = {
    "null": type(None),
    "boolean": bool,
    "string": str,
    "array": list,
    "object": dict,
    "number": (int, float),
}


def is_type(value: Any, kind: str) -> bool:
    if isinstance(value, bool) and kind != "boolean":
        return False
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    expected = _PYTHON_TYPES.get(kind)
    return expected is not None and isinstance(value, expected)


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but True is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)


def canonical(value: Any) -> str:
    return repr(_freeze(value))


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return (type(value).__name__, value) if isinstance(value, bool) else value
