"""Wire objects for the routes. Files, batches and workers are rendered in
`datamill.engine.render` (the engine renders the same objects for the event stream);
datasets and samples here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from datamill.engine.render import (
    batch_datamill,
    batch_object,
    file_object,
    timestamp,
    worker_object,
)
from datamill.protocol.datasets import (
    CellCount,
    CountByValue,
    DatasetObject,
    DatasetStats,
    SampleObject,
)

if TYPE_CHECKING:  # annotations only: `batch run` loads this module, never the datasets'
    from datamill.curation.service import DatasetView
    from datamill.storage.samples import SampleRecord, SampleStats

__all__ = [
    "batch_datamill",
    "batch_object",
    "dataset_object",
    "dataset_stats",
    "file_object",
    "sample_object",
    "worker_object",
]


def dataset_object(view: DatasetView) -> DatasetObject:
    record = view.record
    return DatasetObject(
        id=record.id,
        name=record.name,
        description=record.description,
        created_at=int(record.created_at),
        updated_at=int(record.updated_at),
        deleted_at=timestamp(record.deleted_at),
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
        deleted_at=timestamp(record.deleted_at),
    )
