"""Domain values the repositories return. Frozen: a record is a snapshot of a row."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, TypeVar

from sqlalchemy.engine import Row

R = TypeVar("R")


def from_row(cls: type[R], row: Row[Any]) -> R:
    """Build a record from a row that has (at least) the record's columns."""
    mapping = row._mapping
    return cls(**{f.name: mapping[f.name] for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class FileRecord:
    id: str
    project_id: str
    filename: str
    purpose: str
    bytes: int
    lines: int | None
    sha256: str | None
    status: str
    created_at: float
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class BatchRecord:
    id: str
    project_id: str
    endpoint: str
    model: str | None
    input_file_id: str
    completion_window: str
    status: str
    target_status: str | None
    metadata: dict[str, str] | None
    options: dict[str, Any] | None
    errors: list[dict[str, Any]] | None
    output_file_id: str | None
    error_file_id: str | None
    created_at: float
    in_progress_at: float | None
    expires_at: float | None
    finalizing_at: float | None
    completed_at: float | None
    failed_at: float | None
    expired_at: float | None
    cancelling_at: float | None
    cancelled_at: float | None
    total_count: int
    completed_count: int
    failed_count: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    reasoning_tokens: int
    progress_at: float | None
    claimed_by: str | None
    idempotency_key: str | None
    mode: str = "online"  # online or native; resolved when validation ends
    cost: float = 0.0  # USD spent so far
    stop_reason: str | None = None  # budget_exhausted: stopped before every request ran
    request_id: str | None = None  # the X-Request-ID of the request that created it

    @property
    def finished_count(self) -> int:
        return self.completed_count + self.failed_count


@dataclass(frozen=True, slots=True)
class LeasedRequest:
    """A request a worker holds. ``attempts`` counts leases, this one included."""

    id: int
    batch_id: str
    line: int
    custom_id: str
    body: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class RequestResult:
    """The one final outcome of a request, as recorded in ``results``."""

    request_id: int
    batch_id: str
    line: int
    custom_id: str
    ok: bool
    status_code: int | None
    body: bytes | None
    provider_request_id: str | None
    error_code: str | None
    error_message: str | None
    deployment: str | None
    attempts: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    reasoning_tokens: int
    finished_at: float
    native: bool = False  # came through a provider's native batch API (batch prices)
    model: str | None = None  # the model the request asked for (an alias, say)
    cost: float = 0.0  # USD, at the deployment's prices


@dataclass(frozen=True, slots=True)
class NativeJobRecord:
    """One upstream batch of a native-mode batch (see `storage.native_jobs`)."""

    id: str
    batch_id: str
    deployment: str
    state: str
    upstream_id: str | None
    upstream_state: str | None
    request_count: int
    created_at: float
    submitted_at: float | None
    polled_at: float | None
    ended_at: float | None
    next_poll_at: float
    cancel_requested_at: float | None
    claimed_by: str | None
    claimed_at: float | None
    attempts: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class NativeRequestRow:
    """A request as a native job sends it: its id, where it is in the input, its body."""

    id: int
    batch_id: str
    line: int
    custom_id: str
    body: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class NativeMember:
    """A request a native job holds, without its body: what its results are matched to."""

    id: int
    line: int
    custom_id: str
    attempts: int


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    id: str
    kind: str
    host: str
    pid: int
    version: str
    status: str
    started_at: float
    heartbeat_at: float
    stopped_at: float | None
    current_batch_id: str | None
    in_flight: int
    completed: int
    failed: int
