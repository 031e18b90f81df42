"""Datasets and samples (`/api/datasets`), for the API and the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from datamill.protocol.datasets import (
    CellCount,
    CountByValue,
    DatasetObject,
    DatasetStats,
    SampleObject,
    SampleVersionObject,
)
from datamill.render.timestamps import timestamp

if TYPE_CHECKING:  # annotations only: loading the datasets' storage costs start-up time
    from datamill.storage.datasets import DatasetRecord
    from datamill.storage.sample_edits import SampleVersion
    from datamill.storage.samples import SampleRecord, SampleStats


class DatasetView(Protocol):
    """A dataset as the dataset service reads it: its row, live samples, stats if asked."""

    @property
    def record(self) -> DatasetRecord: ...
    @property
    def sample_count(self) -> int: ...
    @property
    def stats(self) -> SampleStats | None: ...


def dataset_object(view: DatasetView) -> DatasetObject:
    record = view.record
    return DatasetObject(
        id=record.id,
        name=record.name,
        description=record.description,
        created_at=int(record.created_at),
        updated_at=int(record.updated_at),
        deleted_at=timestamp(record.deleted_at),
        task_schema=record.task_schema,
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


def sample_version_object(sample_id: str, version: SampleVersion) -> SampleVersionObject:
    return SampleVersionObject(
        sample_id=sample_id,
        version=version.version,
        action=version.action,
        restored_from=version.restored_from,
        changed_by=version.changed_by,
        changed_at=int(version.changed_at),
        changed=list(version.changed),
        content=version.content,
        topic=version.topic,
        sample_type=version.sample_type,
        metadata=version.metadata,
    )
