"""Sample records for the Label Studio tests, without a store."""

from __future__ import annotations

from typing import Any

from datamill.storage.samples import SampleRecord


def record(
    content: dict[str, Any],
    *,
    sample_id: str = "smp_1",
    metadata: dict[str, Any] | None = None,
    model: str | None = None,
) -> SampleRecord:
    return SampleRecord(
        seq=1,
        id=sample_id,
        dataset_id="ds_1",
        topic=None,
        sample_type=None,
        status="accepted",
        content=content,
        content_hash="h",
        model=model,
        provenance={},
        metadata=metadata,
        created_at=0.0,
        deleted_at=None,
    )
