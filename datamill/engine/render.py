"""Records to wire objects: the only place that turns stored rows into API shapes.

The API answers with them and the engine publishes them on the event stream, so a batch in
an event is exactly the Batch object `GET /v1/batches/{batch_id}` answers."""

from __future__ import annotations

from typing import Any

from datamill.protocol.batches import (
    BatchDatamill,
    BatchError,
    BatchErrors,
    BatchMode,
    BatchObject,
    BatchRequestCounts,
    BatchStatus,
    BatchUsage,
    InputTokensDetails,
    OutputTokensDetails,
)
from datamill.protocol.files import FileObject
from datamill.storage.records import BatchRecord, FileRecord, WorkerRecord


def _ts(value: float | None) -> int | None:
    return int(value) if value is not None else None


def file_object(record: FileRecord) -> FileObject:
    return FileObject(
        id=record.id,
        bytes=record.bytes,
        created_at=int(record.created_at),
        filename=record.filename,
        purpose=record.purpose,
        status="processed",
        expires_at=_ts(record.expires_at),
    )


def batch_object(record: BatchRecord) -> BatchObject:
    errors = None
    if record.errors:
        errors = BatchErrors(data=[BatchError(**error) for error in record.errors])
    return BatchObject(
        id=record.id,
        endpoint=record.endpoint,
        model=record.model,
        errors=errors,
        input_file_id=record.input_file_id,
        completion_window=record.completion_window,
        status=BatchStatus(record.status),
        output_file_id=record.output_file_id,
        error_file_id=record.error_file_id,
        created_at=int(record.created_at),
        in_progress_at=_ts(record.in_progress_at),
        expires_at=_ts(record.expires_at),
        finalizing_at=_ts(record.finalizing_at),
        completed_at=_ts(record.completed_at),
        failed_at=_ts(record.failed_at),
        expired_at=_ts(record.expired_at),
        cancelling_at=_ts(record.cancelling_at),
        cancelled_at=_ts(record.cancelled_at),
        request_counts=BatchRequestCounts(
            total=record.total_count,
            completed=record.completed_count,
            failed=record.failed_count,
        ),
        usage=BatchUsage(
            input_tokens=record.input_tokens,
            input_tokens_details=InputTokensDetails(cached_tokens=record.cached_tokens),
            output_tokens=record.output_tokens,
            output_tokens_details=OutputTokensDetails(reasoning_tokens=record.reasoning_tokens),
            total_tokens=record.input_tokens + record.output_tokens,
        ),
        metadata=record.metadata,
        datamill=batch_datamill(record),
    )


def batch_datamill(record: BatchRecord) -> BatchDatamill:
    """The ``datamill`` field of a Batch object: the mode it runs in and the one asked, what
    it cost so far, its budget and why it stopped early."""
    requested = BatchMode((record.options or {}).get("mode", BatchMode.online))
    # The resolved mode is recorded when validation ends; until then (and when validation
    # failed: the batch never ran) show what was asked for.
    unresolved = record.status in {BatchStatus.validating, BatchStatus.failed}
    resolved = requested if unresolved else record.mode
    return BatchDatamill(
        mode=BatchMode(resolved),
        requested_mode=requested,
        cost_usd=round(record.cost, 8),
        budget_usd=(record.options or {}).get("budget_usd"),
        stop_reason=record.stop_reason,
    )


def worker_object(record: WorkerRecord, *, alive: bool) -> dict[str, Any]:
    """A worker as `GET /api/workers` lists it; ``alive``: running with a fresh heartbeat."""
    return {
        "id": record.id,
        "kind": record.kind,
        "host": record.host,
        "pid": record.pid,
        "version": record.version,
        "status": record.status,
        "alive": alive,
        "current_batch_id": record.current_batch_id,
        "in_flight": record.in_flight,
        "completed": record.completed,
        "failed": record.failed,
        "started_at": int(record.started_at),
        "last_heartbeat_at": record.heartbeat_at,
        "stopped_at": int(record.stopped_at) if record.stopped_at else None,
    }
