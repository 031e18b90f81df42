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

Field values that are not text are written as JSON text. Each sample's mapping is the
export's parameters over the ``chat`` of the task schema it follows (`ChatMapping.over`):
the schema's fields (``messages_field``, or ``user_field`` and ``assistant_field``, dotted
paths allowed) unless the export names fields of its own; the schema's ``system`` unless the
export gives one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from datamill.curation.formats import checks
from datamill.curation.formats.report import ExportReport
from datamill.protocol.task_schema_format import Chat, TaskSchema, field_value, render_template
from datamill.storage.samples import SampleRecord
from datamill.task_schemas.service import SchemaSet

USER_FIELDS = ("prompt", "question", "input", "instruction", "query")
ASSISTANT_FIELDS = ("completion", "answer", "output", "response")
UNMAPPED = "unmapped"


@dataclass(frozen=True, slots=True)
class ChatMapping:
    """Export parameters of the mapping, or a task schema's ``chat``; None: the defaults
    above. Fields are top-level keys or dotted paths (``answer.text``)."""

    user_field: str | None = None
    assistant_field: str | None = None
    system: str | None = None
    messages_field: str | None = None  # a list of messages, as is (`system` does not apply)

    def over(self, chat: Chat) -> ChatMapping:
        """This mapping (an export's parameters) over a task schema's ``chat``: the
        export's fields when it names any, else the schema's; its ``system``, else the
        schema's."""
        mine = (self.user_field, self.assistant_field, self.messages_field)
        theirs = (chat.user_field, chat.assistant_field, chat.messages_field)
        user, assistant, messages = mine if any(f is not None for f in mine) else theirs
        return ChatMapping(
            user_field=user,
            assistant_field=assistant,
            system=self.system if self.system is not None else chat.system,
            messages_field=messages,
        )


class SchemaMappings:
    """Each sample's mapping: the export's parameters over the ``chat`` of the task schema
    the sample follows (`ChatMapping.over`), made once per schema."""

    def __init__(self, mapping: ChatMapping, schemas: SchemaSet) -> None:
        self.mapping = mapping
        self.schemas = schemas
        self._made: dict[int, ChatMapping] = {}

    def schema_of(self, record: SampleRecord) -> TaskSchema:
        return self.schemas.for_type(record.sample_type)

    def mapping_of(self, record: SampleRecord) -> ChatMapping:
        schema = self.schema_of(record)
        made = self._made.get(id(schema))
        if made is None:
            made = self._made[id(schema)] = self.mapping.over(schema.chat)
        return made


def to_example(record: SampleRecord, mapping: ChatMapping) -> dict[str, Any] | None:
    """The sample as a chat example, or None when no rule of the mapping applies."""
    content = record.content
    if mapping.messages_field is not None:
        listed = field_value(content, mapping.messages_field)
        return {"messages": listed} if isinstance(listed, list) and listed else None
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
        return field_value(content, chosen)
    for name in defaults:
        if name in content:
            return content[name]
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def checked_examples(
    page: list[SampleRecord], mappings: SchemaMappings, report: ExportReport
) -> list[dict[str, Any]]:
    """The page's examples (each sample by its own mapping) that pass the guide's format
    checks; the others are left out and counted in ``report``, with the warnings of those
    kept."""
    kept = []
    for record in page:
        example = to_example(record, mappings.mapping_of(record))
        kept += _checked(record, example, report)
    return kept


def _checked(
    record: SampleRecord, example: dict[str, Any] | None, report: ExportReport
) -> list[dict[str, Any]]:
    """``[example]`` when it passes the checks, else ``[]`` (and the report says why)."""
    errors = [UNMAPPED] if example is None else checks.format_errors(example)
    if errors or example is None:
        report.leave_out(record.id, errors)
        return []
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
    return [example]


class ChatEncoder:
    """`openai-chat`: one ``{"messages": [...]}`` per line."""

    def __init__(self, mappings: SchemaMappings, report: ExportReport) -> None:
        self._mappings = mappings
        self._report = report

    def begin(self) -> bytes:
        return b""

    def encode(self, page: list[SampleRecord]) -> bytes:
        examples = checked_examples(page, self._mappings, self._report)
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

    with a blank line between examples; samples failing the chat checks are left out. A
    sample whose task schema has an ``icl.template`` is that template filled in instead
    (left out as ``unmapped`` when a field it names is missing)."""

    def __init__(self, mappings: SchemaMappings, report: ExportReport) -> None:
        self._mappings = mappings
        self._report = report

    def begin(self) -> bytes:
        return b""

    def encode(self, page: list[SampleRecord]) -> bytes:
        parts = []
        for record in page:
            template = self._mappings.schema_of(record).icl.template
            if template is not None:
                text = render_template(template, record.content)
                if text is None:
                    self._report.leave_out(record.id, [UNMAPPED])
                    continue
                body = text.rstrip("\n")
            else:
                example = to_example(record, self._mappings.mapping_of(record))
                examples = _checked(record, example, self._report)
                if not examples:
                    continue
                lines = []
                for message in examples[0]["messages"]:
                    role = str(message["role"])
                    label = _ROLE_LABELS.get(role, role.capitalize())
                    lines.append(f"{label}: {message.get('content') or ''}")
                body = "\n".join(lines)
            self._report.exported += 1
            parts.append(f"### Example {self._report.exported}\n{body}\n\n")
        return "".join(parts).encode()

    def end(self) -> bytes:
        return b""
