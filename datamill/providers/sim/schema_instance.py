"""Make a JSON value that is valid for a JSON Schema, for simulated structured outputs.

Covers the subset providers accept for structured outputs, and a little more: ``type`` (one or
a list, ``"null"`` included), ``enum``, ``const``, ``properties`` / ``required`` /
``additionalProperties`` / ``minProperties`` / ``maxProperties``, ``items`` / ``prefixItems`` /
``minItems`` / ``maxItems`` / ``uniqueItems``, ``anyOf`` / ``oneOf`` / ``allOf`` / ``not``,
local ``$ref`` (``#/$defs/...``, ``#/definitions/...``, any ``#/...`` pointer), string length,
``pattern`` and ``format``, and number bounds and ``multipleOf``. Values are deterministic for a
given ``random.Random`` state; strings are a few plain words, not noise. A schema it cannot
satisfy raises `ValueError` naming the path (``$.items[0].name``) and the reason.
"""

from __future__ import annotations

import functools
import math
import random
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datamill.providers.sim.json_values import (
    canonical,
    is_multiple,
    is_type,
    json_equal,
    number_ok,
    string_ok,
)
from datamill.providers.sim.regex_strings import Unsupported, compiled, from_regex, parsed

Refs = tuple[str, ...]  # the $refs followed on the way to a value

_VOCABULARY = (
    "amber anchor atlas autumn beacon bright bridge canyon cedar clear cloud coastal copper "
    "crystal delta early ember field forest gentle golden harbor hidden horizon island lantern "
    "meadow morning north ocean orchard quiet river sample signal silver simple spring stone "
    "summit swift timber valley velvet willow winter"
)
_WORDS = tuple(_VOCABULARY.split())
# A larger vocabulary for longer strings: the first lower-case words of the MiniLM
# tokenizer's vocabulary (shipped in datamill/nlp/data). Answers drawn from 48 words all look
# alike to an embedding model, so generated datasets would be all near-duplicates.
_LEXICON_SIZE = 8000
_TOKENIZER = Path(__file__).parents[2] / "nlp" / "data" / "minilm_tokenizer.json"
# Share of a long string's words taken from its answer's theme (3 words drawn per answer):
# the fields of one answer hang together and two answers differ in meaning.
_THEME_SHARE = 0.35
_SCALARS = ("string", "number", "integer", "boolean")
_REPEATS_BEFORE_MINIMAL = 2  # a recursive $ref seen this often more: build the smallest value
_HARD_REF_DEPTH = 32  # nested $refs past this cannot end: give up with a clear error
_PATTERN_TRIES = 100


@functools.cache
def _lexicon() -> tuple[str, ...]:
    import orjson

    vocabulary = orjson.loads(_TOKENIZER.read_bytes())["model"]["vocab"]
    words = (w for w in vocabulary if len(w) >= 4 and w.isascii() and w.isalpha() and w.islower())
    return tuple(sorted(words, key=vocabulary.__getitem__))[:_LEXICON_SIZE]


def instance_for_schema(schema: dict[str, Any], rng: random.Random) -> Any:
    """Return a JSON value valid for ``schema``; raise `ValueError` if none can be made."""
    return _Builder(schema, rng).build(schema, "$", ())


class _Builder:
    def __init__(self, root: dict[str, Any], rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self._theme: list[str] | None = None

    def word(self) -> str:
        """A word of a long string: from the answer's theme, or from the lexicon."""
        lexicon = _lexicon()
        if self._theme is None:
            self._theme = [self.rng.choice(lexicon) for _ in range(3)]
        if self.rng.random() < _THEME_SHARE:
            return self.rng.choice(self._theme)
        return self.rng.choice(lexicon)

    def build(self, schema: Any, path: str, refs: Refs) -> Any:
        if schema is True or schema == {}:
            return self.text(0, None)
        if schema is False:
            raise ValueError(f"{path}: the schema is `false`, no value is valid")
        if not isinstance(schema, dict):
            raise ValueError(f"{path}: a schema must be an object, got {type(schema).__name__}")
        schema, refs = self.flatten(schema, path, refs)
        if "not" in schema:
            rest = {k: v for k, v in schema.items() if k != "not"}
            for _ in range(20):
                value = self.build(rest, path, refs)
                if not self.matches(schema["not"], value):
                    return value
            raise ValueError(f"{path}: every value tried was excluded by `not`")
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            types = _types(schema)
            options = [
                e for e in schema["enum"] if types is None or any(is_type(e, t) for t in types)
            ]
            if not options:
                raise ValueError(f"{path}: no `enum` value has an allowed type")
            return self.rng.choice(options)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self.build_choice(schema, key, path, refs)
        kind = self.pick_type(schema, path, refs)
        if kind == "null":
            return None
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "object":
            return self.build_object(schema, path, refs)
        if kind == "array":
            return self.build_array(schema, path, refs)
        if kind in ("number", "integer"):
            return _number(schema, self.rng, path, integer=kind == "integer")
        if kind == "string":
            return self.build_string(schema, path)
        raise ValueError(f"{path}: unknown type {kind!r}")

    # --- references and combinators -------------------------------------------------------

    def resolve(self, ref: Any, path: str) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise ValueError(f"{path}: only local $ref ('#/$defs/...') is supported, got {ref!r}")
        node: Any = self.root
        for part in ref[1:].lstrip("/").split("/") if ref != "#" else ():
            key = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise ValueError(f"{path}: $ref {ref!r} points to nothing")
        return node

    def flatten(self, schema: dict[str, Any], path: str, refs: Refs) -> tuple[dict[str, Any], Refs]:
        """Inline ``$ref`` and merge ``allOf`` into one schema."""
        while "$ref" in schema:
            refs = (*refs, str(schema["$ref"]))
            if len(refs) > _HARD_REF_DEPTH:
                raise ValueError(f"{path}: $ref recursion does not end (a value would be infinite)")
            target = self.resolve(schema["$ref"], path)
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            if target is False:
                raise ValueError(f"{path}: $ref {schema['$ref']!r} is `false`")
            schema = _merge(target if isinstance(target, dict) else {}, siblings)
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                if part is False:
                    raise ValueError(f"{path}: an `allOf` member is `false`")
                if isinstance(part, dict):
                    flat, refs = self.flatten(part, path, refs)
                    merged = _merge(merged, flat)
            return self.flatten(merged, path, refs)
        return schema, refs

    def build_choice(self, schema: dict[str, Any], key: str, path: str, refs: Refs) -> Any:
        siblings = {k: v for k, v in schema.items() if k != key}
        branches = list(schema[key])
        if _recursing(refs):
            branches.sort(key=_simplicity)  # end recursion through the simplest branch
        else:
            self.rng.shuffle(branches)
        reasons = []
        for branch in branches:
            merged = _merge(siblings, branch) if isinstance(branch, dict) else branch
            try:
                value = self.build(merged, path, refs)
            except ValueError as exc:
                reasons.append(str(exc))
                continue
            if key == "anyOf" or sum(self.matches(b, value) for b in schema[key]) == 1:
                return value
            reasons.append(f"{path}: the value matched more than one `oneOf` branch")
        detail = "; ".join(reasons) or "it is empty"
        raise ValueError(f"{path}: no `{key}` branch could be satisfied ({detail})")

    def pick_type(self, schema: dict[str, Any], path: str, refs: Refs) -> str:
        types = _types(schema)
        if types is None:
            return _inferred_type(schema)
        if not types:
            raise ValueError(f"{path}: the allowed types do not overlap")
        if len(types) == 1:
            return types[0]
        if _recursing(refs):
            return min(types, key=lambda t: 0 if t == "null" else 1 if t in _SCALARS else 2)
        concrete = [t for t in types if t != "null"]
        # Mostly a real value: a nullable field answered null every other time is unhelpful.
        if not concrete or (len(concrete) < len(types) and self.rng.random() < 0.15):
            return "null"
        return self.rng.choice(concrete)

    # --- objects and arrays ---------------------------------------------------------------

    def build_object(self, schema: dict[str, Any], path: str, refs: Refs) -> dict[str, Any]:
        properties: dict[str, Any] = schema.get("properties") or {}
        required = list(dict.fromkeys(schema.get("required") or ()))
        extra = schema.get("additionalProperties", True)
        low = schema.get("minProperties", 0)
        high = schema.get("maxProperties")
        if high is not None and len(required) > high:
            raise ValueError(f"{path}: {len(required)} required properties exceed maxProperties")
        minimal = _recursing(refs)
        names = [
            n for n in properties if n in required or (not minimal and self.rng.random() < 0.8)
        ]
        names += [n for n in required if n not in properties]
        optional = [n for n in properties if n not in names]
        while len(names) < low and optional:
            names.append(optional.pop(0))
        counter = 0
        while len(names) < low:
            if extra is False:
                raise ValueError(f"{path}: minProperties {low} needs more properties than allowed")
            counter += 1
            names.append(f"extra_{counter}")
        if high is not None and len(names) > high:
            names = required + [n for n in names if n not in required][: high - len(required)]
        result: dict[str, Any] = {}
        for name in names:
            if name in properties:
                sub = properties[name]
            elif extra is False:
                raise ValueError(f"{path}: {name!r} is required but additionalProperties is false")
            else:
                sub = extra if isinstance(extra, dict) else {}
            result[name] = self.build(sub, f"{path}.{name}", refs)
        return result

    def build_array(self, schema: dict[str, Any], path: str, refs: Refs) -> list[Any]:
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", {})
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, schema.get("additionalItems", {})
        low = schema.get("minItems", 0)
        high = schema.get("maxItems")
        count = low if _recursing(refs) else self.rng.randint(max(low, 1), max(low, 1) + 2)
        if high is not None:
            count = min(count, high)
        if items is False:
            count = min(count, len(prefix))
        if count < low:
            raise ValueError(f"{path}: minItems {low} cannot be met")
        result: list[Any] = []
        seen: set[str] = set()
        for index in range(count):
            sub = prefix[index] if index < len(prefix) else items
            if index == 0 and "contains" in schema:
                sub = _merge(sub, schema["contains"]) if isinstance(sub, dict) else sub
            if not schema.get("uniqueItems"):
                result.append(self.build(sub, f"{path}[{index}]", refs))
                continue
            found, value = self.distinct_item(sub, f"{path}[{index}]", refs, seen)
            if not found:
                if len(result) >= low:
                    break
                raise ValueError(f"{path}: cannot find {low} distinct items (uniqueItems)")
            seen.add(canonical(value))
            result.append(value)
        return result

    def distinct_item(self, sub: Any, path: str, refs: Refs, seen: set[str]) -> tuple[bool, Any]:
        if isinstance(sub, dict) and "enum" in sub:
            sub = {**sub, "enum": [e for e in sub["enum"] if canonical(e) not in seen]}
            if not sub["enum"]:
                return False, None
        for _ in range(16):
            value = self.build(sub, path, refs)
            if canonical(value) not in seen:
                return True, value
        return False, None

    # --- strings -----------------------------------------------------------------------------

    def text(self, low: int, high: int | None) -> str:
        """A few plain words; a string with a ``minLength`` gets between it and about twice
        it (a model writes past the minimum), in words from a large lexicon."""
        if low < 8:
            words = [self.rng.choice(_WORDS) for _ in range(self.rng.randint(2, 5))]
            value = " ".join(words).capitalize()
        else:
            value = self.word().capitalize()
            goal = low + int(low * self.rng.random()) + self.rng.randint(0, 40)
            while len(value) < goal and (high is None or len(value) < high):
                value += " " + self.word()
        while len(value) < low:
            value += " " + self.rng.choice(_WORDS)
        if high is not None and len(value) > high:
            cut = value[:high]
            value = cut.rstrip() if len(cut.rstrip()) >= low else cut
        return value

    def build_string(self, schema: dict[str, Any], path: str) -> str:
        low = schema.get("minLength", 0)
        high = schema.get("maxLength")
        if high is not None and low > high:
            raise ValueError(f"{path}: minLength {low} is greater than maxLength {high}")
        fmt = schema.get("format")
        pattern = schema.get("pattern")
        if pattern is None:
            value = _formatted(fmt, self.rng) if isinstance(fmt, str) else None
            return value if value is not None else self.text(low, high)
        try:
            regex = compiled(pattern)
        except re.error as exc:
            raise ValueError(f"{path}: pattern {pattern!r} is not a valid regex: {exc}") from None
        for candidate in self.pattern_candidates(pattern, fmt, low, high):
            fits = low <= len(candidate) and (high is None or len(candidate) <= high)
            if fits and regex.search(candidate):
                return candidate
        raise ValueError(
            f"{path}: could not make a string matching pattern {pattern!r}"
            f" with length {low}..{high if high is not None else ''}; simplify the pattern"
        )

    def pattern_candidates(
        self, pattern: str, fmt: Any, low: int, high: int | None
    ) -> Iterator[str]:
        if isinstance(fmt, str) and (value := _formatted(fmt, self.rng)) is not None:
            yield value
        word = self.rng.choice(_WORDS)
        yield self.text(low, high)
        yield from (word, word.capitalize(), word.upper(), f"{word}-{self.rng.choice(_WORDS)}")
        yield from (f"{word}_{self.rng.choice(_WORDS)}", str(self.rng.randint(1, 999)))
        tree = parsed(pattern)
        if tree is None:
            return
        length_spread = max(2, high if high is not None else low)
        for attempt in range(_PATTERN_TRIES):
            # Repeats spread by powers of two (short ones first: plausible), and, every other
            # time, by the length asked for, so minLength/maxLength windows get hit.
            spread = length_spread if attempt % 2 else 2 ** (1 + (attempt // 2) % 6)
            try:
                yield from_regex(tree, self.rng, {}, spread)
            except Unsupported:
                return

    # --- checking (for oneOf and not) ----------------------------------------------------------

    def matches(self, schema: Any, value: Any, depth: int = 0) -> bool:
        """A validator for the subset this module builds (``format`` is not checked)."""
        if schema is True:
            return True
        if schema is False or not isinstance(schema, dict) or depth > 64:
            return False
        check = functools.partial(self.matches, depth=depth + 1)
        if "$ref" in schema and not check(self.resolve(schema["$ref"], "$"), value):
            return False
        types = _types(schema)
        if types is not None and not any(is_type(value, t) for t in types):
            return False
        if "const" in schema and not json_equal(value, schema["const"]):
            return False
        if "enum" in schema and not any(json_equal(value, e) for e in schema["enum"]):
            return False
        if not all(check(s, value) for s in schema.get("allOf", ())):
            return False
        if "anyOf" in schema and not any(check(s, value) for s in schema["anyOf"]):
            return False
        if "oneOf" in schema and sum(check(s, value) for s in schema["oneOf"]) != 1:
            return False
        if "not" in schema and check(schema["not"], value):
            return False
        if isinstance(value, str):
            return string_ok(schema, value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return number_ok(schema, value)
        if isinstance(value, list):
            return self.array_ok(schema, value, depth)
        if isinstance(value, dict):
            return self.object_ok(schema, value, depth)
        return True

    def array_ok(self, schema: dict[str, Any], value: list[Any], depth: int) -> bool:
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            return False
        if schema.get("uniqueItems") and len({canonical(v) for v in value}) != len(value):
            return False
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", True)
        if isinstance(items, list):
            prefix, items = items, schema.get("additionalItems", True)
        return all(
            self.matches(prefix[i] if i < len(prefix) else items, v, depth + 1)
            for i, v in enumerate(value)
        )

    def object_ok(self, schema: dict[str, Any], value: dict[str, Any], depth: int) -> bool:
        if any(name not in value for name in schema.get("required", ())):
            return False
        if not schema.get("minProperties", 0) <= len(value) <= schema.get("maxProperties", 1e9):
            return False
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties", True)
        patterns = schema.get("patternProperties") or {}
        for name, item in value.items():
            if name in properties:
                sub = properties[name]
            elif any(re.search(p, name) for p in patterns):
                continue
            else:
                sub = extra
            if not self.matches(sub, item, depth + 1):
                return False
        return True


# --- helpers ---------------------------------------------------------------------------------


def _recursing(refs: Refs) -> bool:
    """True once a $ref has repeated enough on this path that the value must start to end."""
    return len(refs) - len(set(refs)) >= _REPEATS_BEFORE_MINIMAL


def _types(schema: dict[str, Any]) -> list[str] | None:
    kind = schema.get("type")
    if kind is None:
        return None
    return [kind] if isinstance(kind, str) else list(kind)


def _inferred_type(schema: dict[str, Any]) -> str:
    keys = schema.keys()
    if keys & {"properties", "required", "additionalProperties", "minProperties"}:
        return "object"
    if keys & {"items", "prefixItems", "minItems", "maxItems", "contains", "uniqueItems"}:
        return "array"
    if keys & {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}:
        return "number"
    return "string"


def _simplicity(branch: Any) -> int:
    if not isinstance(branch, dict):
        return 3
    types = _types(branch) or []
    if "null" in types or "const" in branch or "enum" in branch:
        return 0
    if types and all(t in _SCALARS for t in types):
        return 1
    return 2 if "$ref" not in branch else 3


_TAKE_MAX = {"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"}
_TAKE_MIN = {"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"}


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Combine two schemas so a value valid for the result is valid for both (for allOf)."""
    out = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
            continue
        mine = out[key]
        if key == "properties":
            both = {n: {"allOf": [mine[n], s]} for n, s in value.items() if n in mine}
            out[key] = {**mine, **value, **both}
        elif key == "required":
            out[key] = list(dict.fromkeys([*mine, *value]))
        elif key == "type":
            theirs = [value] if isinstance(value, str) else value
            ours = [mine] if isinstance(mine, str) else mine
            shared = [t for t in ours if t in theirs or (t == "integer" and "number" in theirs)]
            shared += [t for t in theirs if t == "integer" and "number" in ours and t not in shared]
            out[key] = shared
        elif key in _TAKE_MAX and not isinstance(value, bool):
            out[key] = max(mine, value)
        elif key in _TAKE_MIN and not isinstance(value, bool):
            out[key] = min(mine, value)
        elif key == "enum":
            out[key] = [v for v in mine if any(json_equal(v, w) for w in value)]
        elif key in ("anyOf", "oneOf"):
            out[key] = [{"allOf": [x, y]} for x in mine for y in value]
        elif key in ("items", "additionalProperties", "additionalItems"):
            out[key] = False if mine is False or value is False else {"allOf": [mine, value]}
        elif key == "not":
            out[key] = {"anyOf": [mine, value]}
        else:
            out[key] = value
    # additionalProperties: false on one side forbids the other side's extra properties.
    for side in (a, b):
        if side.get("additionalProperties") is False and "properties" in out:
            allowed = side.get("properties") or {}
            out["properties"] = {n: s for n, s in out["properties"].items() if n in allowed}
    return out


def _number(schema: dict[str, Any], rng: random.Random, path: str, *, integer: bool) -> int | float:
    given_low: float | None = schema.get("minimum")
    given_high: float | None = schema.get("maximum")
    low_open = high_open = False
    ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(ex_low, bool):  # draft 4: a flag on minimum
        low_open = ex_low and given_low is not None
    elif ex_low is not None and (given_low is None or ex_low >= given_low):
        given_low, low_open = ex_low, True
    if isinstance(ex_high, bool):
        high_open = ex_high and given_high is not None
    elif ex_high is not None and (given_high is None or ex_high <= given_high):
        given_high, high_open = ex_high, True
    # Unbounded sides get a plausible span of 100 (non-negative where the bounds allow).
    if given_low is None:
        low = 0.0 if given_high is None or given_high > 0 else given_high - 100
    else:
        low = given_low
    high = given_high if given_high is not None else max(low, 0) + 100

    def inside(v: float) -> bool:
        above = v > low if low_open else v >= low
        below = v < high if high_open else v <= high
        return above and below

    step = schema.get("multipleOf")
    if step is not None:
        first, last = math.ceil(low / step), math.floor(high / step)
        picks = [rng.randint(first, last) for _ in range(4)] if first <= last else []
        for k in [*picks, *range(first, min(last, first + 50) + 1)]:
            for value in (round(k * step, 10), k * step):
                if integer and value != int(value):
                    continue
                value = int(value) if integer else value
                if inside(value) and is_multiple(value, step):
                    return value
        raise ValueError(f"{path}: no multiple of {step} lies within the bounds")
    if integer:
        first = math.ceil(low) + (1 if low_open and low == math.ceil(low) else 0)
        last = math.floor(high) - (1 if high_open and high == math.floor(high) else 0)
        if first > last:
            raise ValueError(f"{path}: no integer lies between {low} and {high}")
        return rng.randint(first, last)
    number = round(rng.uniform(low, high), 2)
    if not inside(number):
        number = (low + high) / 2
        if not inside(number):
            raise ValueError(f"{path}: no number lies between {low} and {high}")
    return number


def _formatted(fmt: str, rng: random.Random) -> str | None:
    word, other = rng.choice(_WORDS), rng.choice(_WORDS)
    day = f"{rng.randint(2020, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    clock = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
    values = {
        "date": day,
        "date-time": f"{day}T{clock}Z",
        "time": f"{clock}Z",
        "email": f"{word}.{other}@example.com",
        "uri": f"https://example.com/{word}/{other}",
        "url": f"https://example.com/{word}/{other}",
        "uri-reference": f"/{word}/{other}",
        "iri": f"https://example.com/{word}/{other}",
        "hostname": f"{word}.example.com",
        "ipv4": f"192.0.2.{rng.randint(1, 254)}",
        "ipv6": f"2001:db8::{rng.randint(1, 65535):x}",
        "duration": f"P{rng.randint(1, 30)}D",
    }
    if fmt == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return values.get(fmt)
