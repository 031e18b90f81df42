"""Where imported annotations go: a `ReviewSink`. `ServiceReviews` writes them through the
review workflow's service (`review.service.ReviewService`: answers checked against the
schema, edits in the sample's history, the final state by rule); tests of the import's
parsing use one in memory (tests/labelstudio/sinks.py).

A sink guarantees what the import's idempotency rests on: a review submitted again with the
same ``key`` changes nothing (``unchanged``); another review by the same reviewer of the same
sample replaces theirs. So there is at most one current review per sample and reviewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from datamill.protocol.reviews import GoldUpdate, ReviewCreate
from datamill.review.service import Reviewer, ReviewService
from datamill.storage.samples import SampleRecord


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


class ServiceReviews:
    """Imported reviews written as reviews by the review service, each as its reviewer's
    (``labelstudio:<who>``; members' sight: blind mode is for people reviewing here)."""

    def __init__(self, reviews: ReviewService) -> None:
        self._reviews = reviews

    async def submit_review(
        self, dataset_id: str, sample: SampleRecord, review: ImportedReview, *, project_id: str
    ) -> Outcome:
        written = await self._reviews.submit(
            dataset_id,
            sample.id,
            ReviewCreate(answers=review.answers, reason=review.reason, content=review.content),
            Reviewer(review.reviewer, sees_all=True),
            idempotency_key=review.key,
            project_id=project_id,
        )
        if not written.created:
            return Outcome.unchanged
        return Outcome.replaced if written.replaced else Outcome.created

    async def set_gold(
        self,
        dataset_id: str,
        sample: SampleRecord,
        answers: dict[str, Any],
        *,
        set_by: str,
        project_id: str,
    ) -> bool:
        known = await self._reviews.gold(dataset_id, sample_ids=[sample.id], project_id=project_id)
        if sample.id in known and known[sample.id].answers == answers:
            return False
        await self._reviews.set_gold(
            dataset_id,
            sample.id,
            GoldUpdate(answers=answers),
            set_by=set_by,
            project_id=project_id,
        )
        return True
