"""Samples as OpenAI fine-tuning chat examples (``{"messages": [...]}``), the mapping the
`openai-chat` and `icl` exports share.

The mapping, first that applies:

1. content with ``messages``: the example is ``{"messages": content["messages"]}``, as is
   (``system`` does not apply; a ``user_field`` skips this rule);
2. content with a user field (``user_field``, else the first of prompt, question, input,
   instruction, query) and an assistant field (``assistant_field``, else the first of
   completion, answer, output, response): a system message (``system``, else the content's
   ``system`` text, if any), the user message, the assistant message;
3. a sample whose provenance has the ``prompt`` it was generated from (text, or chat
   messages): the prompt as the user message (or the messages as they were, a ``system``
   given first), then the whole content as JSON text as the assistant message;
4. anything else is left out (``unmapped``).

Field values that are not text are written as JSON text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from datamill.curation.formats import checks
from datamill.curation.formats.report import ExportReport
from datamill.storage.samples import SampleRecord

USER_FIELDS = ("prompt", "question", "input", "instruction", "query")
ASSISTANT_FIELDS = ("completion", "answer", "output", "response")
UNMAPPED = "unmapped"


@dataclass(frozen=True, slots=True)
class ChatMapping:
    """Export parameters of the mapping; None: the defaults above."""

    user_field: str | None = None
    assistant_field: str | None = None
    system: str | None = None


def to_example(record: SampleRecord, mapping: ChatMapping) -> dict[str, Any] | None:
    """The sample as a chat example, or None when no rule of the mapping applies."""
    content = record.content
    if "messages" in content and mapping.user_field is None:
        return {"messages": content["messages"]}
    user = _field(content, mapping.user_field, USER_FIELDS)
    assistant = _field(content, mapping.assistant_field, ASSISTANT_FIELDS)
    system = mapping.system
    if user is not None and assistant is not None:
        if system is None and isinstance(content.get("system"), str):
            system = content["system"]
        messages = [] if system is None else [{"role": "system", "content": system}]
        messages.append({"role": "user", "content": _text(user)})
        messages.append({"role": "assistant", "content": _text(assistant)})
        return {"messages": messages}
    if mapping.user_field is not None or mapping.assistant_field is not None:
        return None  # the fields asked for are not there
    prompt = record.provenance.get("prompt")
    if isinstance(prompt, str) and prompt:
        prompt_messages: list[Any] = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, list) and prompt:
        prompt_messages = list(prompt)
    else:
        return None
    head = [] if system is None else [{"role": "system", "content": system}]
    answer = {"role": "assistant", "content": _text(content)}
    return {"messages": [*head, *prompt_messages, answer]}


def _field(content: dict[str, Any], chosen: str | None, defaults: tuple[str, ...]) -> Any:
    if chosen is not None:
        return content.get(chosen)
    for name in defaults:
        if name in content:
            return content[name]
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def checked_examples(
    page: list[SampleRecord], mapping: ChatMapping, report: ExportReport
) -> list[dict[str, Any]]:
    """The page's examples that pass the guide's format checks; the others are left out
    and counted in ``report``, with the warnings of those kept."""
    kept = []
    for record in page:
        example = to_example(record, mapping)
        errors = [UNMAPPED] if example is None else checks.format_errors(example)
        if errors or example is None:
            report.leave_out(record.id, errors)
            continue
        messages = example["messages"]
        tokens = None
        if report.tokens is not None:
            counted = checks.count_tokens(messages)
            report.tokens.append((counted.total, counted.assistant))
            tokens = counted.total
        elif checks.could_exceed(messages):
            tokens = checks.count_tokens(messages).total
        for warning in checks.warnings(messages, tokens):
            report.warnings[warning] += 1
        kept.append(example)
    return kept


class ChatEncoder:
    """`openai-chat`: one ``{"messages": [...]}`` per line."""

    def __init__(self, mapping: ChatMapping, report: ExportReport) -> None:
        self._mapping = mapping
        self._report = report

    def begin(self) -> bytes:
        return b""

    def encode(self, page: list[SampleRecord]) -> bytes:
        examples = checked_examples(page, self._mapping, self._report)
        self._report.exported += len(examples)
        return b"".join(orjson.dumps(e, option=orjson.OPT_APPEND_NEWLINE) for e in examples)

    def end(self) -> bytes:
        return b""


_ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}


class IclEncoder:
    """`icl`: a prompt file of few-shot examples, the chat mapping's messages as text:

        ### Example 1
        System: ...
        User: ...
        Assistant: ...

    with a blank line between examples; samples failing the chat checks are left out."""

    def __init__(self, mapping: ChatMapping, report: ExportReport) -> None:
        self._mapping = mapping
        self._report = report

    def begin(self) -> bytes:
        return b""

    def encode(self, page: list[SampleRecord]) -> bytes:
        parts = []
        for example in checked_examples(page, self._mapping, self._report):
            self._report.exported += 1
            lines = [f"### Example {self._report.exported}"]
            for message in example["messages"]:
                role = str(message["role"])
                label = _ROLE_LABELS.get(role, role.capitalize())
                lines.append(f"{label}: {message.get('content') or ''}")
            parts.append("\n".join(lines) + "\n\n")
        return "".join(parts).encode()

    def end(self) -> bytes:
        return b""
