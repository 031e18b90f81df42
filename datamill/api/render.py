"""Records to wire objects: the only place that turns stored rows into API shapes."""

from __future__ import annotations

from datamill.curation.service import DatasetView
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
from datamill.protocol.datasets import (
    CellCount,
    CountByValue,
    DatasetObject,
    DatasetStats,
    SampleObject,
)
from datamill.protocol.files import FileObject
from datamill.storage.records import BatchRecord, FileRecord
from datamill.storage.samples import SampleRecord, SampleStats


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


def dataset_object(view: DatasetView) -> DatasetObject:
    record = view.record
    return DatasetObject(
        id=record.id,
        name=record.name,
        description=record.description,
        created_at=int(record.created_at),
        updated_at=int(record.updated_at),
        deleted_at=_ts(record.deleted_at),
        sample_count=view.sample_count,
        stats=dataset_stats(view.stats) if view.stats is not None else None,
    )


def dataset_stats(stats: SampleStats) -> DatasetStats:
    def counts(entries: list[tuple[str | None, int]]) -> list[CountByValue]:
        return [CountByValue(value=value, count=count) for value, count in entries]

    return DatasetStats(
        samples=stats.samples,
        deleted_samples=stats.deleted_samples,
        by_topic=counts(stats.by_topic),
        by_sample_type=counts(stats.by_sample_type),
        by_status=counts(stats.by_status),
        by_model=counts(stats.by_model),
        cells=[CellCount(topic=t, sample_type=k, count=n) for t, k, n in stats.cells],
        input_tokens=stats.input_tokens,
        output_tokens=stats.output_tokens,
        cost_usd=round(stats.cost, 8),
    )


def sample_object(record: SampleRecord) -> SampleObject:
    return SampleObject(
        id=record.id,
        dataset_id=record.dataset_id,
        topic=record.topic,
        sample_type=record.sample_type,
        status=record.status,
        content=record.content,
        content_hash=record.content_hash,
        model=record.model,
        provenance=record.provenance,
        metadata=record.metadata,
        created_at=int(record.created_at),
        deleted_at=_ts(record.deleted_at),
    )
