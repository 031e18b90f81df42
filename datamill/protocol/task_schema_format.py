"""A task schema: what one type of sample is, and how people and exports treat it.

A schema names a sample type (samples whose ``sample_type`` is the schema's ``name`` follow
it; a dataset may also name a default schema for the rest) and says:

- ``content``: a JSON Schema every sample's content must satisfy (checked on add, edit,
  import and review edits);
- ``display``: which content fields a reviewer sees, in which order, how (text, markdown,
  code, chat, json), with optional CSS for the review page;
- ``review``: the questions a reviewer answers (see `Question`);
- ``chat``: how a sample becomes chat messages for fine-tuning (the ``openai-chat`` export);
- ``icl``: how a sample is written into an in-context-learning prompt file;
- ``export``: which content fields the table exports (CSV, Parquet) carry as columns.

Schemas are YAML or JSON, validated with ``extra="forbid"`` (an unknown key is an error
naming its path). `DEFAULT_SCHEMA` applies to a sample no schema names.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from datamill.protocol.json_schemas import valid_json_schema

# The version of the schema format, stored with each schema; bumped when keys change meaning.
SCHEMA_FORMAT_VERSION = 1
# A schema's size at most, as JSON: a schema is a description, not data.
MAX_SCHEMA_BYTES = 256 * 1024
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
# A question's, a label's or a field's identifier: what the review's answers are keyed by.
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
# A content field: a top-level key, or a dotted path into nested objects (``answer.text``).
FIELD_PATH_PATTERN = r"^[^.\s][^.]{0,99}(\.[^.\s][^.]{0,99}){0,7}$"

Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
FieldPath = Annotated[str, Field(pattern=FIELD_PATH_PATTERN)]
Label = Annotated[str, Field(min_length=1, max_length=100)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldKind(StrEnum):
    """How a content field is shown to a reviewer."""

    text = "text"  # plain text, whitespace kept
    markdown = "markdown"  # rendered Markdown (no raw HTML)
    code = "code"  # monospaced, whitespace kept
    chat = "chat"  # a list of {role, content} messages, as bubbles
    json = "json"  # any value, pretty-printed


class DisplayField(_Strict):
    """One content field on the review page."""

    field: FieldPath
    label: str | None = Field(default=None, max_length=100, description="default: the field")
    kind: FieldKind = FieldKind.text


class Display(_Strict):
    """What a reviewer sees of a sample: these fields in this order (none given: every
    top-level field, as JSON), and optional CSS scoped to the sample's card."""

    fields: list[DisplayField] = Field(default_factory=list, max_length=50)
    css: str | None = Field(default=None, max_length=20_000)

    @field_validator("css")
    @classmethod
    def _no_escape(cls, value: str | None) -> str | None:
        # The CSS goes into a <style> element: it may not end it, nor import anything.
        if value is not None and re.search(r"</|@import|url\s*\(", value, re.IGNORECASE):
            raise ValueError("css may not contain '</', @import or url(...)")
        return value


class QuestionKind(StrEnum):
    """What a reviewer answers. Each kind's answer, as a review's ``answers`` holds it:"""

    decision = "decision"  # "approve" or "reject" (a reject carries a reason)
    rating = "rating"  # an integer from 1 to 5
    labels = "labels"  # one of ``options`` (``multiple``: a list of them)
    text = "text"  # free text


DECISION_VALUES = ("approve", "reject")
RATING_RANGE = (1, 5)


class Question(_Strict):
    """One question of the review. A schema has exactly one ``decision`` question (the one
    the sample's final state follows); others are optional extras."""

    name: Identifier
    kind: QuestionKind
    prompt: str | None = Field(default=None, max_length=500, description="shown to reviewers")
    required: bool = Field(default=True, description="a review must answer it")
    options: list[Label] = Field(
        default_factory=list, max_length=50, description="labels: the choices"
    )
    multiple: bool = Field(default=False, description="labels: more than one may be chosen")
    reasons: list[Label] = Field(
        default_factory=list,
        max_length=50,
        description="decision: reject reasons offered (a reviewer may also write one)",
    )

    @model_validator(mode="after")
    def _options_fit_kind(self) -> Question:
        if self.kind is QuestionKind.labels:
            if not self.options:
                raise ValueError("a labels question needs options")
            if len(set(self.options)) != len(self.options):
                raise ValueError("options must be distinct")
        elif self.options or self.multiple:
            raise ValueError("options and multiple belong to labels questions only")
        if self.reasons and self.kind is not QuestionKind.decision:
            raise ValueError("reasons belong to the decision question only")
        if self.kind is QuestionKind.decision and not self.required:
            raise ValueError("the decision question is always required")
        return self


DEFAULT_QUESTIONS: tuple[Question, ...] = (
    Question(name="decision", kind=QuestionKind.decision, prompt="Keep this sample?"),
    Question(name="rating", kind=QuestionKind.rating, prompt="Quality", required=False),
    Question(name="comment", kind=QuestionKind.text, prompt="Comment", required=False),
)


class Review(_Strict):
    """The review's questions, and whether a reviewer may edit the content."""

    questions: list[Question] = Field(
        default_factory=lambda: list(DEFAULT_QUESTIONS), min_length=1, max_length=20
    )
    editable: bool = Field(default=True, description="a reviewer may edit the content")

    @model_validator(mode="after")
    def _one_decision(self) -> Review:
        names = [q.name for q in self.questions]
        if len(set(names)) != len(names):
            raise ValueError("question names must be distinct")
        decisions = [q for q in self.questions if q.kind is QuestionKind.decision]
        if len(decisions) != 1:
            raise ValueError("give exactly one decision question")
        return self

    @property
    def decision(self) -> Question:
        return next(q for q in self.questions if q.kind is QuestionKind.decision)


class Chat(_Strict):
    """A sample as fine-tuning chat messages: ``messages_field`` (a list of messages as is),
    or ``user_field`` and ``assistant_field`` with an optional ``system`` text. None given:
    the export's default mapping (`curation.formats.chat`)."""

    messages_field: FieldPath | None = None
    user_field: FieldPath | None = None
    assistant_field: FieldPath | None = None
    system: str | None = Field(default=None, max_length=20_000)

    @model_validator(mode="after")
    def _one_way(self) -> Chat:
        if self.messages_field is not None and (self.user_field or self.assistant_field):
            raise ValueError("give messages_field, or user_field and assistant_field, not both")
        if (self.user_field is None) != (self.assistant_field is None):
            raise ValueError("give user_field and assistant_field together")
        return self


class Icl(_Strict):
    """A sample as an example of an in-context-learning prompt: ``template`` with
    ``{field}`` placeholders (dotted paths allowed; ``{{`` and ``}}`` are braces)."""

    template: str | None = Field(default=None, min_length=1, max_length=20_000)

    @field_validator("template")
    @classmethod
    def _placeholders(cls, value: str | None) -> str | None:
        if value is not None:
            template_fields(value)
        return value


# A template's parts: an escaped brace, a placeholder, or a lone brace (an error).
_TEMPLATE_PART = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def template_fields(template: str) -> list[str]:
    """The field paths an ICL template's placeholders name; a ValueError for a lone brace
    or a placeholder that is not a field path."""
    fields = []
    for match in _TEMPLATE_PART.finditer(template):
        part = match.group(0)
        if part in ("{{", "}}"):
            continue
        path = match.group(1)
        if path is None or not re.fullmatch(FIELD_PATH_PATTERN, path):
            raise ValueError(
                f"{part!r} at character {match.start() + 1} is not a {{field}} placeholder "
                "(write {{ and }} for braces)"
            )
        fields.append(path)
    return fields


def render_template(template: str, content: dict[str, Any]) -> str | None:
    """An ICL template filled from a sample's content (values that are not text as JSON
    text); None when a field it names is missing."""
    missing = False

    def fill(match: re.Match[str]) -> str:
        nonlocal missing
        part = match.group(0)
        if part == "{{":
            return "{"
        if part == "}}":
            return "}"
        value = field_value(content, match.group(1))
        if value is None:
            missing = True
            return ""
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    text = _TEMPLATE_PART.sub(fill, template)
    return None if missing else text


def field_value(content: dict[str, Any], path: str) -> Any:
    """The value of a content field: a top-level key, or a dotted path into nested objects;
    None when it is not there."""
    if path in content:
        return content[path]
    value: Any = content
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


class Export(_Strict):
    """The content fields CSV and Parquet exports carry as columns, in this order (none
    given: every top-level field)."""

    fields: list[FieldPath] = Field(default_factory=list, max_length=200)


class TaskSchema(_Strict):
    """One sample type's schema (the module docstring says what each part does)."""

    name: str = Field(pattern=NAME_PATTERN, description="the sample_type it applies to")
    description: str | None = Field(default=None, max_length=2_000)
    content: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"}, description="JSON Schema of the content"
    )
    display: Display = Field(default_factory=Display)
    review: Review = Field(default_factory=Review)
    chat: Chat = Field(default_factory=Chat)
    icl: Icl = Field(default_factory=Icl)
    export: Export = Field(default_factory=Export)

    @field_validator("content")
    @classmethod
    def _valid_content(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Checked as generation checks a spec's output schema: a path names what is wrong.
        return valid_json_schema(value)


def schema_format() -> dict[str, Any]:
    """The JSON Schema of the task schema format (``GET /api/task-schemas/_format``)."""
    schema = TaskSchema.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://datamill.dev/schemas/task-schema-v{SCHEMA_FORMAT_VERSION}.json"
    return schema


DEFAULT_SCHEMA = TaskSchema(name="default", description="samples no schema names")
