"""The checks of OpenAI's data-preparation guide for chat fine-tuning (the cookbook's
"Data preparation and analysis for chat model fine-tuning"), re-implemented from its
description. Format errors make an example unusable (an export leaves it out); warnings are
counted: an example over the context limit is truncated in training, one without a system
or user message may be a mistake.

Errors (the guide's names): ``data_type`` (not an object), ``missing_messages_list``,
``message_missing_key`` (a message without ``role`` or ``content``),
``message_unrecognized_key`` (keys other than role, content, name, function_call, weight),
``unrecognized_role`` (not system, user, assistant or function), ``missing_content``
(content empty or not text, unless the message has a function_call),
``example_missing_assistant_message``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from datamill.nlp.tokens import estimate_message_tokens, estimate_tokens

MESSAGE_KEYS = frozenset({"role", "content", "name", "function_call", "weight"})
ROLES = frozenset({"system", "user", "assistant", "function"})
TOKEN_LIMIT = 16_385  # the guide's context length: longer examples are truncated

OVER_TOKEN_LIMIT = "over_token_limit"
MISSING_SYSTEM = "missing_system_message"
MISSING_USER = "missing_user_message"


def format_errors(example: Any) -> list[str]:
    """The guide's format errors of one example, each named once, in the guide's order."""
    if not isinstance(example, dict):
        return ["data_type"]
    messages = example.get("messages")
    if not messages or not isinstance(messages, list):
        return ["missing_messages_list"]
    found: set[str] = set()
    for message in messages:
        if not isinstance(message, dict):
            found.add("message_missing_key")
            continue
        if "role" not in message or "content" not in message:
            found.add("message_missing_key")
        if any(key not in MESSAGE_KEYS for key in message):
            found.add("message_unrecognized_key")
        if message.get("role") not in ROLES:
            found.add("unrecognized_role")
        content = message.get("content")
        if (not content or not isinstance(content, str)) and not message.get("function_call"):
            found.add("missing_content")
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        found.add("example_missing_assistant_message")
    return [name for name in _ERROR_ORDER if name in found]


_ERROR_ORDER = (
    "message_missing_key",
    "message_unrecognized_key",
    "unrecognized_role",
    "missing_content",
    "example_missing_assistant_message",
)


@dataclass(frozen=True, slots=True)
class Tokens:
    """Estimated tokens of an example (`nlp.tokens`, the guide's per-message overhead)."""

    total: int
    assistant: int


def count_tokens(messages: list[Mapping[str, Any]]) -> Tokens:
    assistant = sum(
        estimate_tokens(m["content"])
        for m in messages
        if m.get("role") == "assistant" and isinstance(m.get("content"), str)
    )
    return Tokens(total=estimate_message_tokens(messages), assistant=assistant)


def could_exceed(messages: list[Mapping[str, Any]], limit: int = TOKEN_LIMIT) -> bool:
    """False when the example is surely within ``limit`` tokens: a cheap bound (an
    estimate never counts more than two tokens a character, plus the per-message
    overhead), so an export counts tokens only for long examples."""
    characters = 0
    for message in messages:
        content = message.get("content")
        if not isinstance(content, str):
            return True
        characters += len(content) + len(str(message.get("name") or ""))
    return 2 * characters + 8 * len(messages) + 3 > limit


def warnings(messages: list[Mapping[str, Any]], tokens: int | None) -> list[str]:
    """The guide's warnings for a well-formed example; ``tokens`` None: known to be short."""
    found = []
    if tokens is not None and tokens > TOKEN_LIMIT:
        found.append(OVER_TOKEN_LIMIT)
    roles = {m.get("role") for m in messages}
    if "system" not in roles:
        found.append(MISSING_SYSTEM)
    if "user" not in roles:
        found.append(MISSING_USER)
    return found
