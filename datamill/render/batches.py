"""Batch objects (`GET /v1/batches/{batch_id}`), for the API, the CLI and the ``batch``
events alike: a batch in an event is exactly the Batch object the API answers."""

from __future__ import annotations

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
from datamill.render.timestamps import timestamp
from datamill.storage.records import BatchRecord


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
        in_progress_at=timestamp(record.in_progress_at),
        expires_at=timestamp(record.expires_at),
        finalizing_at=timestamp(record.finalizing_at),
        completed_at=timestamp(record.completed_at),
        failed_at=timestamp(record.failed_at),
        expired_at=timestamp(record.expired_at),
        cancelling_at=timestamp(record.cancelling_at),
        cancelled_at=timestamp(record.cancelled_at),
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


def batch_event(record: BatchRecord) -> str:
    """A ``batch`` event's payload: the Batch object, as JSON."""
    return batch_object(record).model_dump_json()
