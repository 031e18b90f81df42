"""Where imported annotations go: a `ReviewSink`. The review workflow's service is wired in
as one when it lands; until then `MetadataReviews` keeps each reviewer's imported review in
the sample's metadata (``metadata.label_studio``), through the dataset service (every change
in the sample's history), and `InMemoryReviews` serves tests.

A sink guarantees what the import's idempotency rests on: a review submitted again with the
same ``key`` changes nothing (``unchanged``); another review by the same reviewer of the same
sample replaces theirs. So there is at most one current review per sample and reviewer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from datamill.curation.service import DatasetService
from datamill.protocol.datasets import SampleUpdate
from datamill.storage.samples import SampleRecord

# The metadata key `MetadataReviews` keeps imported reviews under.
METADATA_KEY = "label_studio"


class Outcome(StrEnum):
    """What submitting a review did."""

    created = "created"  # the reviewer's first review of the sample
    replaced = "replaced"  # it replaced the reviewer's earlier, different review
    unchanged = "unchanged"  # the same review (by key) was there already


@dataclass(frozen=True, slots=True)
class ImportedReview:
    """One reviewer's review of one sample, as a review service takes it."""

    reviewer: str
    answers: dict[str, Any]
    reason: str | None
    content: dict[str, Any] | None  # the edited content; None: no edit
    key: str  # idempotency: the same key is the same review
    annotation_id: str | None = None


class ReviewSink(Protocol):
    """Takes imported reviews and gold answers (the review workflow's service, wired in)."""

    async def submit_review(
        self, dataset_id: str, sample: SampleRecord, review: ImportedReview, *, project_id: str
    ) -> Outcome: ...

    async def set_gold(
        self,
        dataset_id: str,
        sample: SampleRecord,
        answers: dict[str, Any],
        *,
        set_by: str,
        project_id: str,
    ) -> bool:
        """Store the sample's gold answers; False when they were those already."""
        ...


@dataclass(slots=True)
class InMemoryReviews:
    """A sink in memory: every current review and gold answer, and every write (tests)."""

    reviews: dict[tuple[str, str], ImportedReview] = field(default_factory=dict)
    gold: dict[str, dict[str, Any]] = field(default_factory=dict)
    writes: int = 0

    async def submit_review(
        self, dataset_id: str, sample: SampleRecord, review: ImportedReview, *, project_id: str
    ) -> Outcome:
        before = self.reviews.get((sample.id, review.reviewer))
        if before is not None and before.key == review.key:
            return Outcome.unchanged
        self.reviews[(sample.id, review.reviewer)] = review
        self.writes += 1
        return Outcome.created if before is None else Outcome.replaced

    async def set_gold(
        self,
        dataset_id: str,
        sample: SampleRecord,
        answers: dict[str, Any],
        *,
        set_by: str,
        project_id: str,
    ) -> bool:
        if self.gold.get(sample.id) == answers:
            return False
        self.gold[sample.id] = answers
        return True


class MetadataReviews:
    """The sink until the review workflow lands: ``metadata.label_studio.reviews`` holds
    each reviewer's review ``{key, answers, reason, annotation_id}``, ``.gold`` the gold
    answers; an edit changes the content in the same write."""

    def __init__(self, datasets: DatasetService) -> None:
        self._datasets = datasets

    async def submit_review(
        self, dataset_id: str, sample: SampleRecord, review: ImportedReview, *, project_id: str
    ) -> Outcome:
        metadata = dict(sample.metadata or {})
        kept = dict(metadata.get(METADATA_KEY) or {})
        reviews = dict(kept.get("reviews") or {})
        before = reviews.get(review.reviewer)
        if isinstance(before, dict) and before.get("key") == review.key:
            return Outcome.unchanged
        reviews[review.reviewer] = {
            "key": review.key,
            "answers": review.answers,
            "reason": review.reason,
            "annotation_id": review.annotation_id,
        }
        metadata[METADATA_KEY] = {**kept, "reviews": reviews}
        update = SampleUpdate(metadata=metadata)
        if review.content is not None:
            update = SampleUpdate(metadata=metadata, content=review.content)
        await self._datasets.update_sample(
            dataset_id, sample.id, update, project_id=project_id, changed_by=review.reviewer
        )
        return Outcome.created if before is None else Outcome.replaced

    async def set_gold(
        self,
        dataset_id: str,
        sample: SampleRecord,
        answers: dict[str, Any],
        *,
        set_by: str,
        project_id: str,
    ) -> bool:
        metadata = dict(sample.metadata or {})
        kept = dict(metadata.get(METADATA_KEY) or {})
        if kept.get("gold") == answers:
            return False
        metadata[METADATA_KEY] = {**kept, "gold": answers}
        await self._datasets.update_sample(
            dataset_id,
            sample.id,
            SampleUpdate(metadata=metadata),
            project_id=project_id,
            changed_by=set_by,
        )
        return True
