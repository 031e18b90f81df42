"""A review sink in memory, for tests of the Label Studio import's parsing and idempotency
without the review workflow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datamill.labelstudio.reviews import ImportedReview, Outcome
from datamill.storage.samples import SampleRecord


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
