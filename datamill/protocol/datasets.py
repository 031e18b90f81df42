"""Datasets and samples on the wire: `/api/datasets` bodies and answers, and the lines of
dataset imports and exports. datamill's own API (OpenAI has no such objects); field names
follow OpenAI's conventions (``object``, ``created_at`` in Unix seconds, cursor lists)."""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator


def check_plain_text(value: str) -> str:
    """Refuse what a text column cannot hold: NUL characters (PostgreSQL's text) and lone
    surrogates (which JSON's escapes can make, and UTF-8 cannot encode)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode (it has a lone surrogate)") from None
    return value


# A string stored in a text column.
PlainText = Annotated[str, AfterValidator(check_plain_text)]


class SampleStatus(StrEnum):
    """Whether a sample is valid and unique; where its review stands is `ReviewState`."""

    accepted = "accepted"  # valid and unique: generated, imported or approved


class ReviewState(StrEnum):
    """Where a sample's review stands (a sample's ``review_state``)."""

    unreviewed = "unreviewed"  # no review yet
    in_review = "in_review"  # some reviews, fewer than the overlap
    approved = "approved"  # final: the rule says approve
    edited = "edited"  # final: approved, and a review changed its content
    rejected = "rejected"  # final: the rule says reject
    disputed = "disputed"  # the reviews disagree; an adjudication decides


class Visibility(StrEnum):
    """Which samples (or datasets) a read includes, by soft deletion."""

    exclude = "exclude"  # live ones only (the default)
    include = "include"  # live and deleted
    only = "only"  # deleted ones only: the trash


class ExportFormat(StrEnum):
    jsonl = "jsonl"  # one `SampleLine` per line; imports as it is
    parquet = "parquet"  # the same fields as columns; needs the `export` extra (pyarrow)
    openai_chat = "openai-chat"  # OpenAI fine-tuning chat JSONL (`curation.formats.chat`)
    icl = "icl"  # a prompt file of few-shot examples
    csv = "csv"  # content flattened to a column per top-level field
    label_studio = "label-studio"  # a JSON array of Label Studio tasks (`labelstudio.tasks`)


# Names are used in URLs, shell commands and file names; ``ds_`` starts ids, not names.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            "must be 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if value.startswith("ds_"):
        raise ValueError("must not start with 'ds_' (dataset ids do)")
    return value


# A task schema's name (`datamill.protocol.task_schema_format.NAME_PATTERN`).
TaskSchemaName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")]


class DatasetCreate(BaseModel):
    """`POST /api/datasets`."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: PlainText | None = Field(default=None, max_length=10_000)
    task_schema: TaskSchemaName | None = Field(
        default=None, description="the task schema of samples whose sample_type names none"
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _check_name(value)


class DatasetUpdate(BaseModel):
    """`PATCH /api/datasets/{id}`: the fields sent are changed; ``description: null``
    clears it."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    description: PlainText | None = Field(default=None, max_length=10_000)
    task_schema: TaskSchemaName | None = None  # null: no default schema

    @field_validator("name")
    @classmethod
    def _name_given(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError("a dataset keeps a name: give a new one or leave the field out")
        return _check_name(value)


class SampleProvenance(BaseModel):
    """Where a sample came from. Unknown fields are kept: other tools record more."""

    model_config = ConfigDict(extra="allow")

    source: str | None = None  # generation, import, ...
    job_id: PlainText | None = Field(default=None, max_length=256)  # the generation job
    spec: str | None = None  # the generation spec's name ...
    spec_version: str | int | None = None  # ... and version
    template: str | None = None  # the prompt template's name
    prompt: Any = None  # the rendered prompt: text, or chat messages
    deployment: str | None = None  # the deployment that answered
    batch_id: PlainText | None = Field(default=None, max_length=256)
    request_id: str | None = None  # the batch request (custom_id) or gateway call
    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cost: float = Field(default=0.0, ge=0)  # USD


def _finite(value: Any, where: str = "") -> Any:
    """Refuse NaN and infinities anywhere in a JSON value: stores cannot keep them."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where or 'value'} is not a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            _finite(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _finite(item, f"{where}[{index}]")
    return value


class SampleLine(BaseModel):
    """One line of a dataset import, and of a JSONL export (which imports as it is: ``id``
    and ``created_at`` are read and ignored, the imported sample gets new ones)."""

    model_config = ConfigDict(extra="forbid")

    content: dict[str, Any]
    topic: PlainText | None = Field(default=None, min_length=1, max_length=200)
    sample_type: PlainText | None = Field(default=None, min_length=1, max_length=100)
    status: SampleStatus = SampleStatus.accepted
    model: PlainText | None = Field(default=None, min_length=1, max_length=256)
    metadata: dict[str, Any] | None = None
    provenance: SampleProvenance | None = None
    id: str | None = None
    created_at: int | float | None = None

    @field_validator("content")
    @classmethod
    def _content(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("must be a non-empty JSON object")
        return _finite(value)  # type: ignore[no-any-return]

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _finite(value)  # type: ignore[no-any-return]


class SampleObject(BaseModel):
    id: str
    object: Literal["dataset.sample"] = "dataset.sample"
    dataset_id: str
    topic: str | None
    sample_type: str | None
    status: str
    content: dict[str, Any]
    content_hash: str
    model: str | None
    provenance: dict[str, Any] | None
    metadata: dict[str, Any] | None
    created_at: int
    deleted_at: int | None = None


class CountByValue(BaseModel):
    value: str | None
    count: int


class CellCount(BaseModel):
    topic: str | None
    sample_type: str | None
    count: int


class DatasetStats(BaseModel):
    """Counts over a dataset's live samples (``deleted_samples`` aside), largest first."""

    samples: int
    deleted_samples: int
    by_topic: list[CountByValue]
    by_sample_type: list[CountByValue]
    by_status: list[CountByValue]
    by_model: list[CountByValue]
    cells: list[CellCount]  # accepted samples per topic x sample type
    input_tokens: int
    output_tokens: int
    cost_usd: float


class DatasetObject(BaseModel):
    id: str
    object: Literal["dataset"] = "dataset"
    name: str
    description: str | None
    created_at: int
    updated_at: int
    deleted_at: int | None = None
    task_schema: str | None = None  # the default task schema's name
    sample_count: int  # live samples
    stats: DatasetStats | None = None  # in `GET /api/datasets/{id}` only


class DatasetDeleted(BaseModel):
    id: str
    object: Literal["dataset.deleted"] = "dataset.deleted"
    deleted: bool = True


class SamplesChanged(BaseModel):
    """What a delete or restore by filter did. ``skipped``: deleted samples left deleted
    because a live sample of the dataset has the same content."""

    object: Literal["dataset.samples.changed"] = "dataset.samples.changed"
    changed: int
    skipped: int = 0


class DuplicateLine(BaseModel):
    line: int
    duplicate_of: str  # the live sample with the same content (maybe from an earlier line)


class ImportReport(BaseModel):
    object: Literal["dataset.import"] = "dataset.import"
    dataset_id: str
    lines: int  # samples read (blank lines aside)
    imported: int
    duplicates: int  # exact duplicates of a live sample or an earlier line: not imported
    duplicate_lines: list[DuplicateLine]  # the first 1000 of them


class LeftOutSample(BaseModel):
    id: str
    errors: list[str]  # the fine-tuning checks it fails, or `unmapped`


class ExportCheck(BaseModel):
    """`GET /api/datasets/{id}/export/check`: what an `openai-chat` export with the same
    parameters writes, by the checks of OpenAI's data-preparation guide."""

    object: Literal["dataset.export_check"] = "dataset.export_check"
    dataset_id: str
    samples: int  # matching the filters (and in the split)
    exported: int  # examples the export writes
    left_out: dict[str, int]  # error -> samples failing it (a sample can fail several)
    left_out_samples: list[LeftOutSample]  # the first 100
    warnings: dict[str, int]  # over_token_limit, missing_system_message, missing_user_message
    token_limit: int
    tokens: dict[str, int | float]  # estimated tokens per example: min, max, mean, p50, p95
    assistant_tokens: dict[str, int | float]  # the same, of the assistant messages
    epochs: int  # the epochs fine-tuning picks by default for this many examples
    billing_tokens: int  # tokens charged: each example up to the limit, times epochs


class SampleFilterFields(BaseModel):
    """Which samples, in a request body: the sample filters of a list, by field."""

    model_config = ConfigDict(extra="forbid")

    ids: list[PlainText] | None = Field(default=None, min_length=1, max_length=10_000)
    topic: PlainText | None = None
    sample_type: PlainText | None = None
    status: SampleStatus | None = None
    model: PlainText | None = None
    created_after: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    created_before: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    q: PlainText | None = None
    batch_id: PlainText | None = None
    job_id: PlainText | None = None
    review_state: list[ReviewState] | None = Field(default=None, min_length=1)


class SampleFilterBody(SampleFilterFields):
    """`POST /api/datasets/{id}/samples/delete` and `.../restore`: which samples. At least
    one field: acting on a whole dataset says so with ``all: true``."""

    all: bool = False


class SampleCreate(BaseModel):
    """`POST /api/datasets/{id}/samples`: one sample, added by hand."""

    model_config = ConfigDict(extra="forbid")

    content: dict[str, Any]
    topic: PlainText | None = Field(default=None, min_length=1, max_length=200)
    sample_type: PlainText | None = Field(default=None, min_length=1, max_length=100)
    metadata: dict[str, Any] | None = None

    @field_validator("content")
    @classmethod
    def _content(cls, value: dict[str, Any]) -> dict[str, Any]:
        return SampleLine._content(value)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _finite(value)  # type: ignore[no-any-return]


class SampleUpdate(BaseModel):
    """`PATCH /api/datasets/{id}/samples/{sample_id}`: the fields sent are changed;
    ``null`` clears ``topic``, ``sample_type`` or ``metadata`` (a sample keeps a content)."""

    model_config = ConfigDict(extra="forbid")

    content: dict[str, Any] | None = None
    topic: PlainText | None = Field(default=None, min_length=1, max_length=200)
    sample_type: PlainText | None = Field(default=None, min_length=1, max_length=100)
    metadata: dict[str, Any] | None = None

    @field_validator("content")
    @classmethod
    def _content(cls, value: dict[str, Any] | None) -> dict[str, Any]:
        if value is None:
            raise ValueError("a sample keeps a content: give a new one or leave the field out")
        return SampleLine._content(value)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _finite(value)  # type: ignore[no-any-return]


class SampleVersionObject(BaseModel):
    """One version of a sample (`GET .../samples/{sample_id}/history`). ``changed_by`` is
    the API key's id that made it (None in local mode, and for the version a generation
    job or an import created); ``changed`` the fields it changed from the version before."""

    object: Literal["dataset.sample.version"] = "dataset.sample.version"
    sample_id: str
    version: int
    action: Literal["created", "edited", "restored"]
    restored_from: int | None = None
    changed_by: str | None
    changed_at: int
    changed: list[str]
    content: dict[str, Any]
    topic: str | None
    sample_type: str | None
    metadata: dict[str, Any] | None


class BatchImportRequest(BaseModel):
    """`POST /api/datasets/{id}/import-batch`: a finished batch's answers as samples."""

    model_config = ConfigDict(extra="forbid")

    batch_id: PlainText = Field(min_length=1, max_length=64)
    only: Literal["succeeded"] = "succeeded"


class BatchImportReport(BaseModel):
    object: Literal["dataset.batch_import"] = "dataset.batch_import"
    dataset_id: str
    batch_id: str
    requests: int  # the batch's requests that succeeded
    imported: int
    duplicates: int  # already in the dataset (an earlier import, or the same content)
    invalid: int = 0  # contents the dataset's task schema refuses: not imported


class ExportCounts(BaseModel):
    samples: int  # read: matching the filters (and in the split)
    exported: int  # written
    left_out: int  # failing the format's checks or mapping


class ExportEvent(BaseModel):
    """The `export` event (and the `export.completed` webhook's ``data``): an export of a
    dataset finished streaming."""

    object: Literal["dataset.export"] = "dataset.export"
    id: str  # exp_...: this export
    dataset_id: str
    format: str
    filters: dict[str, Any]  # the sample filters given
    split: str | None = None  # the one split written, if one was chosen
    seed: int | None = None  # with splits
    counts: ExportCounts  # all splits together
    split_counts: dict[str, ExportCounts] | None = None  # an export of every split at once
