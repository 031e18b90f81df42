"""A sample's JSON from a model's answer, whatever way the model wrapped it.

Tried in order: a tool call's arguments; the message content as JSON; the content of a
fenced block (```json ... ```); the first balanced JSON object (or array) inside prose.
Providers' JSON modes answer the second way; chat models that were only asked nicely, the
third or fourth.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from datamill.protocol.limits import json_depth_exceeds, too_deep_message

_FENCE = re.compile(r"```[ \t]*(?:json|JSON|jsonc)?[ \t]*\r?\n?(.*?)```", re.S)


class ExtractionError(ValueError):
    """No JSON could be read from the answer; the message says why."""


def answer_text(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """A chat completion's (content, tool-call arguments)."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ExtractionError("the answer has no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise ExtractionError("the answer has no message")
    arguments = None
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            arguments = function["arguments"]
            break
    content = message.get("content")
    if isinstance(content, list):  # content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if content is None and arguments is None and message.get("refusal"):
        raise ExtractionError(f"the model refused: {str(message['refusal'])[:200]}")
    return (content if isinstance(content, str) else None), arguments


def extract_json(body: dict[str, Any]) -> Any:
    """The JSON value a chat completion carries; `ExtractionError` when there is none, or
    when it nests too deeply to be stored."""
    value = _carried_json(body)
    if json_depth_exceeds(value):
        raise ExtractionError(too_deep_message("the answer's JSON"))
    return value


def _carried_json(body: dict[str, Any]) -> Any:
    content, arguments = answer_text(body)
    if arguments is not None:
        try:
            return orjson.loads(arguments)
        except orjson.JSONDecodeError:
            pass
    if content is None or not content.strip():
        raise ExtractionError("the answer is empty")
    return json_in_text(content)


def json_in_text(text: str) -> Any:
    stripped = text.strip().removeprefix("\ufeff")
    try:
        return orjson.loads(stripped)
    except orjson.JSONDecodeError:
        pass
    for match in _FENCE.finditer(stripped):
        try:
            return orjson.loads(match.group(1).strip())
        except orjson.JSONDecodeError:
            continue
    found = _first_balanced(stripped)
    if found is not None:
        return found
    raise ExtractionError("no JSON found in the answer")


def _first_balanced(text: str) -> Any:
    """The first ``{...}`` (or ``[...]``) in ``text`` that parses, scanning brackets outside
    strings; None when there is none."""
    for start, char in enumerate(text):
        if char not in "{[":
            continue
        end = _closing(text, start)
        if end is None:
            continue
        try:
            return orjson.loads(text[start : end + 1])
        except orjson.JSONDecodeError:
            continue
    return None


def _closing(text: str, start: int) -> int | None:
    depth = 0
    in_string = escaped = False
    for position in range(start, len(text)):
        char = text[position]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return position
    return None
