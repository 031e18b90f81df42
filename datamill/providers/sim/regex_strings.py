"""Strings that match a regular expression, for ``pattern`` in simulated JSON outputs.

The stdlib regex parser drives generation; it is private but has been stable since 3.11
(it was sre_parse). Without it, callers fall back to plain candidate strings.
"""

from __future__ import annotations

import functools
import importlib
import random
import re
from typing import Any

try:
    _sre: Any = importlib.import_module("re._parser")
except ImportError:  # pragma: no cover
    _sre = None


@functools.lru_cache(maxsize=256)
def compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@functools.lru_cache(maxsize=256)
def parsed(pattern: str) -> Any:
    return _sre.parse(pattern) if _sre is not None else None


class Unsupported(Exception):
    """A regex construct the generator does not produce (lookarounds are skipped instead)."""


def from_regex(items: Any, rng: random.Random, groups: dict[int, str], spread: int) -> str:
    out: list[str] = []
    for op, arg in items:
        name = op.name
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "NOT_LITERAL":
            out.append("a" if arg != ord("a") else "b")
        elif name == "ANY":
            out.append(rng.choice("abcdefghijklmnopqrstuvwxyz"))
        elif name == "IN":
            out.append(_from_class(arg, rng))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = arg
            count = rng.randint(low, min(high, low + spread))
            out.extend(from_regex(sub, rng, groups, spread) for _ in range(count))
        elif name == "SUBPATTERN":
            group, _, _, sub = arg
            text = from_regex(sub, rng, groups, spread)
            if group is not None:
                groups[group] = text
            out.append(text)
        elif name == "ATOMIC_GROUP":
            out.append(from_regex(arg, rng, groups, spread))
        elif name == "BRANCH":
            out.append(from_regex(rng.choice(arg[1]), rng, groups, spread))
        elif name == "GROUPREF":
            out.append(groups.get(arg, ""))
        elif name not in ("AT", "ASSERT", "ASSERT_NOT"):
            raise Unsupported(name)
    return "".join(out)


_CATEGORY_CHARS = {
    "CATEGORY_DIGIT": "0123456789",
    "CATEGORY_NOT_DIGIT": "abcdefghij",
    "CATEGORY_WORD": "abcdefghijklmnopqrstuvwxyz",
    "CATEGORY_NOT_WORD": "-.,",
    "CATEGORY_SPACE": " ",
    "CATEGORY_NOT_SPACE": "abcdefghij",
}


def _from_class(items: list[tuple[Any, Any]], rng: random.Random) -> str:
    if items and items[0][0].name == "NEGATE":
        for char in "aZ0 -_.x":
            if not _class_contains(items[1:], char):
                return char
        raise Unsupported("NEGATE")
    op, arg = rng.choice(items)
    name = op.name
    if name == "LITERAL":
        return chr(arg)
    if name == "RANGE":
        return chr(rng.randint(arg[0], arg[1]))
    if name == "CATEGORY" and arg.name in _CATEGORY_CHARS:
        return rng.choice(_CATEGORY_CHARS[arg.name])
    raise Unsupported(name)


_CATEGORY_TESTS = {
    "CATEGORY_DIGIT": str.isdigit,
    "CATEGORY_WORD": lambda c: c.isalnum() or c == "_",
    "CATEGORY_SPACE": str.isspace,
}


def _class_contains(items: list[tuple[Any, Any]], char: str) -> bool:
    code = ord(char)
    for op, arg in items:
        name = op.name
        if name == "LITERAL" and arg == code:
            return True
        if name == "RANGE" and arg[0] <= code <= arg[1]:
            return True
        if name == "CATEGORY":
            category = arg.name.replace("_NOT", "")
            test = _CATEGORY_TESTS.get(category)
            # An unknown category might contain anything: assume it does.
            if test is None or test(char) != ("_NOT" in arg.name):
                return True
    return False
