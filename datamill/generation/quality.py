"""The filters an answer passes before it can become a sample, and why it was rejected.

`check_candidate` runs the local filters in order, cheapest first: the JSON extracted
(`extract`), then the sample type's JSON Schema, the length bounds, the regex rules. The LLM
judge runs afterwards, as a batch of its own (`prompts.judge_body`, `judge_score`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

import jsonschema
import orjson

from datamill.generation.extract import ExtractionError, extract_json, json_in_text
from datamill.generation.spec import Quality
from datamill.nlp.canonical import sample_text


class Rejection(StrEnum):
    """Why an answer did not become a sample (`coverage` counts them per cell)."""

    request_failed = "request_failed"  # the request ended in an error, no answer
    not_sent = "not_sent"  # its batch closed first (cancelled, expired, out of budget)
    unparseable = "unparseable"  # no JSON in the answer
    schema = "schema"  # JSON that does not match the sample type's schema
    too_short = "too_short"  # under quality.min_chars
    too_long = "too_long"  # over quality.max_chars
    regex = "regex"  # a regex rule said no
    judge = "judge"  # the judge scored it under the threshold (or gave no score)
    duplicate = "duplicate"  # the same content as a stored sample
    near_duplicate = "near_duplicate"  # lexically or semantically too close to one
    surplus = "surplus"  # its cell was full when it arrived


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the local filters said: ``sample`` when it passed, else the reason and detail."""

    sample: dict[str, Any] | None
    reason: Rejection | None = None
    detail: str | None = None


@lru_cache(maxsize=64)
def _validator(schema_json: bytes) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(orjson.loads(schema_json))


def check_candidate(body: dict[str, Any], schema: dict[str, Any], quality: Quality) -> Verdict:
    try:
        value = extract_json(body)
    except ExtractionError as exc:
        return Verdict(None, Rejection.unparseable, str(exc))
    return check_value(value, schema, quality)


def check_value(value: Any, schema: dict[str, Any], quality: Quality) -> Verdict:
    return check_schema(value, schema) or check_rules(value, quality)


def check_schema(value: Any, schema: dict[str, Any]) -> Verdict | None:
    """A rejection when ``value`` is not an object matching ``schema``, else None."""
    if not isinstance(value, dict):
        return Verdict(None, Rejection.schema, f"a sample is a JSON object, got {_kind(value)}")
    found = first_schema_error(value, schema)
    if found is not None:
        path, message = found
        where = "/".join(str(part) for part in path) or "(root)"
        return Verdict(None, Rejection.schema, f"{where}: {message}")
    return None


def first_schema_error(value: Any, schema: dict[str, Any]) -> tuple[list[str | int], str] | None:
    """Where ``value`` first fails ``schema`` (its path, and why), or None when it passes."""
    errors = sorted(
        _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)).iter_errors(value),
        key=lambda e: list(e.path),
    )
    if not errors:
        return None
    return list(errors[0].path), errors[0].message[:300]


def check_rules(value: dict[str, Any], quality: Quality) -> Verdict:
    """The length bounds and regex rules on a sample that matched its schema."""
    text = sample_text(value)
    if quality.min_chars is not None and len(text) < quality.min_chars:
        return Verdict(None, Rejection.too_short, f"{len(text)} characters < {quality.min_chars}")
    if quality.max_chars is not None and len(text) > quality.max_chars:
        return Verdict(None, Rejection.too_long, f"{len(text)} characters > {quality.max_chars}")
    for rule in quality.regex:
        target = text if rule.field is None else sample_text(value.get(rule.field, ""))
        found = re.search(rule.pattern, target) is not None
        if found != rule.must_match:
            verb = "does not match" if rule.must_match else "matches"
            scope = f"field {rule.field!r}" if rule.field else "the sample"
            return Verdict(None, Rejection.regex, f"{scope} {verb} {rule.pattern!r}")
    return Verdict(value)


def judge_score(body: dict[str, Any]) -> tuple[float | None, str]:
    """The judge's score and reason from its answer; None when it gave no usable score."""
    try:
        value = extract_json(body)
    except ExtractionError as exc:
        return None, str(exc)
    if isinstance(value, str):
        try:
            value = json_in_text(value)
        except ExtractionError:
            return None, "no score in the judge's answer"
    if not isinstance(value, dict) or isinstance(value.get("score"), bool):
        return None, "no score in the judge's answer"
    score = value.get("score")
    if not isinstance(score, int | float):
        return None, "no score in the judge's answer"
    return float(score), str(value.get("reason", ""))[:500]


def _kind(value: Any) -> str:
    return "an array" if isinstance(value, list) else type(value).__name__
