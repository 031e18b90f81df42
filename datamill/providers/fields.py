"""Which OpenAI request fields an adapter can express, declared once per adapter.

Each adapter declares a `FieldTable` for chat completions (and one for embeddings when it has
them). The table drives two things: `reject_unsupported` refuses a request that sets a field
the provider cannot express (a `bad_request` naming the field: never silently dropped), and
docs/providers.md shows the same table, checked against the code by tests/test_docs.py.

Besides the top-level fields of OpenAI's request body, a table may name message features as
``messages[].<feature>`` (see `MESSAGE_FEATURES`), e.g. ``messages[].image_url``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from datamill.errors import ErrorCategory, ProviderError

# OpenAI's chat completion request body (API reference, "Create chat completion"), the
# deprecated function fields included: every adapter's table must cover each of them.
CHAT_FIELDS = (
    "model",
    "messages",
    "audio",
    "frequency_penalty",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "max_completion_tokens",
    "max_tokens",
    "metadata",
    "modalities",
    "n",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "prompt_cache_key",
    "reasoning_effort",
    "response_format",
    "safety_identifier",
    "seed",
    "service_tier",
    "stop",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "user",
    "verbosity",
    "web_search_options",
)

# What messages can hold, as rows of the same table.
MESSAGE_FEATURES = (
    "messages[].system",  # system and developer messages
    "messages[].name",  # a participant's name on a message
    "messages[].image_url",  # image content parts (URL or data URL)
    "messages[].input_audio",  # audio content parts
    "messages[].file",  # file content parts (PDFs)
    "messages[].tool_calls",  # assistant messages that called tools
    "messages[].tool",  # tool results
)

# OpenAI's embeddings request body.
EMBEDDING_FIELDS = ("model", "input", "dimensions", "encoding_format", "user")


class Support(StrEnum):
    """How an adapter handles one field."""

    yes = "yes"  # translated faithfully
    partial = "partial"  # translated for some values; the others are rejected (see the note)
    no = "no"  # rejected whenever it is set to anything but its neutral value


@dataclass(frozen=True, slots=True)
class FieldSupport:
    support: Support
    note: str = ""

    def cell(self) -> str:
        """The cell of docs/providers.md: ``yes``, ``no``, or ``partial: <note>``."""
        return f"{self.support.value}: {self.note}" if self.note else self.support.value


FieldTable = Mapping[str, FieldSupport]

YES = FieldSupport(Support.yes)
NO = FieldSupport(Support.no)


def partial(note: str) -> FieldSupport:
    return FieldSupport(Support.partial, note)


# A field set to one of these values asks for nothing, so even a provider that cannot
# express the field accepts it (OpenAI's own defaults).
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "frequency_penalty": (None, 0, 0.0),
    "presence_penalty": (None, 0, 0.0),
    "logprobs": (None, False),
    "n": (None, 1),
    "parallel_tool_calls": (None, True),
    "store": (None, False),
    "stream": (None, False),
    "logit_bias": (None, {}),
    "metadata": (None, {}),
    "service_tier": (None, "auto", "default"),
    "functions": (None, []),
    "tools": (None, []),
}


def is_neutral(field: str, value: Any) -> bool:
    """True when ``value`` for ``field`` asks for nothing (None, or OpenAI's default)."""
    return any(value == neutral for neutral in _NEUTRAL.get(field, (None,)))


def reject_unsupported(body: Mapping[str, Any], table: FieldTable, *, provider: str) -> None:
    """Raise `bad_request` (naming the field) for the first top-level field of ``body`` that
    ``table`` says the provider cannot express, or does not know at all."""
    for field, value in body.items():
        support = table.get(field)
        if support is None:
            raise unsupported(field, provider, "is not an OpenAI request field datamill knows")
        if support.support is Support.no and not is_neutral(field, value):
            raise unsupported(field, provider, "cannot be expressed")


def unsupported(field: str, provider: str, why: str) -> ProviderError:
    """The error for a field (or a value of it) the provider cannot take."""
    message = (
        f"`{field}` {why} by the {provider} provider; remove it, or send this request "
        "to a deployment whose provider supports it (docs/providers.md has the table)"
    )
    return ProviderError(
        ErrorCategory.bad_request,
        message,
        body={"error": {"message": message, "type": "invalid_request_error", "param": field}},
        param=field,
    )


def markdown_table(tables: Mapping[str, FieldTable], fields: tuple[str, ...]) -> str:
    """The docs/providers.md table of ``fields`` (rows) by provider (columns): each cell is
    `FieldSupport.cell`. A field a table does not list is ``no``."""
    names = list(tables)
    lines = [
        "| field | " + " | ".join(f"`{name}`" for name in names) + " |",
        "| --- |" + " --- |" * len(names),
    ]
    for field in fields:
        cells = [tables[name].get(field, NO).cell() for name in names]
        lines.append(f"| `{field}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)
