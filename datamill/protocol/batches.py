"""Batch API objects and JSONL lines (openai-python `types/batch.py`,
`types/batch_create_params.py`, `types/batch_request_counts.py`; Batch guide for the lines)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class BatchStatus(StrEnum):
    validating = "validating"  # input file being checked and split into requests
    failed = "failed"  # the input file was invalid; `errors` says where
    in_progress = "in_progress"  # requests are being executed
    finalizing = "finalizing"  # every request has a result; output files being written
    completed = "completed"  # output and error files are ready
    expired = "expired"  # the completion window ended; finished requests were delivered
    cancelling = "cancelling"  # in-flight requests finish, the rest are cancelled
    cancelled = "cancelled"  # cancellation finished; files hold what had finished

    @property
    def terminal(self) -> bool:
        return self in {
            BatchStatus.failed,
            BatchStatus.completed,
            BatchStatus.expired,
            BatchStatus.cancelled,
        }


BATCH_ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings", "/v1/responses")
COMPLETION_WINDOWS = {"24h": 24 * 3600}


class BatchMode(StrEnum):
    """How a batch runs (the ``datamill.mode`` option)."""

    online = "online"  # datamill calls the provider for each request (the default)
    native = "native"  # delegated to the provider's own batch API (about half price)
    auto = "auto"  # native when every deployment it needs has one and it is cheaper


# Metadata key read as the mode when a client cannot send the ``datamill`` field.
MODE_METADATA_KEY = "datamill_mode"
# Metadata key naming a dataset (name or id) of the batch's project: when the batch
# completes, its succeeded answers are imported into it (`curation.batch_imports`).
DATASET_METADATA_KEY = "datamill_dataset"


class BatchOptions(BaseModel):
    """datamill's extension to batch creation, sent as ``"datamill": {...}`` in the body
    (``extra_body={"datamill": {...}}`` with the openai SDK)."""

    model_config = ConfigDict(extra="forbid")

    max_retries: int | None = Field(default=None, ge=0, le=100)
    timeout: float | None = Field(default=None, gt=0, le=86_400)
    mode: BatchMode | None = None  # None: online, unless metadata says otherwise
    # USD the batch may spend; once reached, requests not sent yet end budget_exhausted.
    budget_usd: float | None = Field(default=None, gt=0)


class ExpiresAfter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    anchor: Literal["created_at"]
    seconds: int = Field(ge=3600, le=2_592_000)


class BatchCreate(BaseModel):
    """`POST /v1/batches`. Unknown fields are refused so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")

    input_file_id: str = Field(min_length=1)
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None = None
    output_expires_after: ExpiresAfter | None = None
    datamill: BatchOptions | None = None

    @field_validator("input_file_id")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:  # no file has one, and PostgreSQL's text cannot hold it
            raise ValueError("holds a NUL character")
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint_supported(cls, value: str) -> str:
        if value not in BATCH_ENDPOINTS:
            raise ValueError(f"must be one of {', '.join(BATCH_ENDPOINTS)}")
        return value

    @field_validator("completion_window")
    @classmethod
    def _window_supported(cls, value: str) -> str:
        if value not in COMPLETION_WINDOWS:
            raise ValueError(f"must be one of {', '.join(COMPLETION_WINDOWS)}")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return value
        if len(value) > 16:
            raise ValueError("at most 16 key-value pairs")
        for key, item in value.items():
            if len(key) > 64:
                raise ValueError(f"key {key[:20]!r}... is longer than 64 characters")
            if len(item) > 512:
                raise ValueError(f"value of {key!r} is longer than 512 characters")
        return value

    def requested_mode(self) -> tuple[BatchMode, str]:
        """The mode asked for, and the parameter that asked: ``datamill.mode`` wins over
        ``metadata.datamill_mode`` (for clients that cannot send extra fields).

        Raises `ValueError` naming the metadata value when it is not a mode."""
        if self.datamill is not None and self.datamill.mode is not None:
            return self.datamill.mode, "datamill.mode"
        value = (self.metadata or {}).get(MODE_METADATA_KEY)
        if value is None:
            return BatchMode.online, "datamill.mode"
        try:
            return BatchMode(value), f"metadata.{MODE_METADATA_KEY}"
        except ValueError:
            modes = ", ".join(mode.value for mode in BatchMode)
            raise ValueError(
                f"metadata.{MODE_METADATA_KEY} must be one of {modes}, got {value!r}"
            ) from None


class BatchError(BaseModel):
    code: str | None = None
    message: str | None = None
    param: str | None = None
    line: int | None = None


class BatchErrors(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchError] = Field(default_factory=list)


class BatchRequestCounts(BaseModel):
    total: int = 0
    completed: int = 0
    failed: int = 0


class InputTokensDetails(BaseModel):
    cached_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class BatchUsage(BaseModel):
    input_tokens: int = 0
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens: int = 0
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int = 0


class BatchDatamill(BaseModel):
    """datamill's extension of the Batch object."""

    mode: BatchMode  # the mode the batch runs in (while validating: the one asked for)
    requested_mode: BatchMode  # what the client asked for (auto resolves to online or native)
    cost_usd: float = 0.0  # spent so far, at the deployments' prices
    budget_usd: float | None = None  # the batch's budget, if it has one
    stop_reason: str | None = None  # budget_exhausted: stopped before every request ran


class BatchObject(BaseModel):
    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    model: str | None = None
    errors: BatchErrors | None = None
    input_file_id: str
    completion_window: str
    status: BatchStatus
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: BatchRequestCounts = Field(default_factory=BatchRequestCounts)
    usage: BatchUsage = Field(default_factory=BatchUsage)
    metadata: dict[str, str] | None = None
    datamill: BatchDatamill | None = None


class BatchResponse(BaseModel):
    status_code: int
    request_id: str | None = None
    body: Any = None


class BatchLineError(BaseModel):
    code: str
    message: str


class BatchRequestOutputLine(BaseModel):
    """One line of an output or error file; each ``custom_id`` is in exactly one of them."""

    id: str
    custom_id: str
    response: BatchResponse | None = None
    error: BatchLineError | None = None
