"""`POST /api/datasets/{id}/dedup`: near-duplicate removal over a dataset, its request and
its report (`curation.dedup`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from datamill.protocol.datasets import SampleFilterFields


class DedupRequest(SampleFilterFields):
    """Which samples to deduplicate (every field given must match; none: the whole
    dataset), at which cosine, and whether to delete the duplicates (``dry_run``: only
    report them)."""

    dry_run: bool = False
    threshold: float | None = Field(default=None, ge=0.5, le=1.0, allow_inf_nan=False)


class DedupDuplicate(BaseModel):
    sample_id: str
    kind: Literal["exact", "lexical", "semantic"]
    score: float  # 1.0 for exact, the Jaccard estimate for lexical, the cosine for semantic


class DedupGroup(BaseModel):
    kept: str  # the sample kept: the earliest of its group
    duplicates: list[DedupDuplicate]


class DedupReport(BaseModel):
    object: Literal["dataset.dedup"] = "dataset.dedup"
    dataset_id: str
    dry_run: bool
    threshold: float
    scanned: int  # the selected live samples, each checked once
    compared_with: int  # live samples outside the selection, checked against, never deleted
    duplicates: int
    deleted: int  # 0 on a dry run
    embedded: int  # search vectors computed (then stored)
    reused: int  # search vectors read back from the store
    confirmed: int  # texts the transformer embedded for the pairs the search found (stored)
    groups: list[DedupGroup]
