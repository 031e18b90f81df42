"""Review settings, queues, reviews, gold answers and progress as wire objects, for the API
and the CLI."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Protocol

from datamill.protocol.reviews import (
    GoldObject,
    QuestionObject,
    QueueClaim,
    QueueItem,
    ReviewerProgress,
    ReviewEventObject,
    ReviewObject,
    ReviewProgressObject,
    ReviewSampleObject,
    ReviewSettingsObject,
    ReviewState,
    Rule,
)
from datamill.render.datasets import sample_object

if TYPE_CHECKING:  # annotations only: the review's storage loads on first use
    from datamill.protocol.task_schema_format import TaskSchema
    from datamill.storage.review_queue import Progress, QueueRow
    from datamill.storage.reviews import GoldRecord, ReviewRecord, ReviewSettings
    from datamill.storage.samples import SampleRecord


class ReviewItem(Protocol):
    """A sample as the review service hands it to a reviewer (`review.service`)."""

    @property
    def sample(self) -> SampleRecord: ...
    @property
    def schema(self) -> TaskSchema: ...
    @property
    def review_state(self) -> str | None: ...
    @property
    def reserved_until(self) -> float | None: ...


class QueueView(Protocol):
    """A page of the review queue as the review service reads it."""

    @property
    def rows(self) -> Sequence[QueueRow]: ...
    @property
    def visible(self) -> Collection[str]: ...
    @property
    def overlap(self) -> int: ...


def settings_object(settings: ReviewSettings) -> ReviewSettingsObject:
    return ReviewSettingsObject(
        overlap=settings.overlap,
        blind=settings.blind,
        rule=Rule(settings.rule),
        reservation_seconds=settings.reservation_seconds,
    )


def review_item(item: ReviewItem) -> ReviewSampleObject:
    review = item.schema.review
    return ReviewSampleObject(
        sample=sample_object(item.sample),
        schema_name=item.schema.name,
        questions=[
            QuestionObject(
                name=q.name,
                kind=q.kind.value,
                prompt=q.prompt,
                required=q.required,
                options=list(q.options),
                multiple=q.multiple,
                reasons=list(q.reasons),
            )
            for q in review.questions
        ],
        editable=review.editable,
        review_state=None if item.review_state is None else ReviewState(item.review_state),
        reserved_until=None if item.reserved_until is None else int(item.reserved_until),
    )


def review_object(record: ReviewRecord) -> ReviewObject:
    return ReviewObject(
        id=record.id,
        dataset_id=record.dataset_id,
        sample_id=record.sample_id,
        reviewer=record.reviewer,
        answers=record.answers,
        decision=record.decision,
        reason=record.reason,
        edited=record.edited,
        adjudication=record.adjudication,
        current=record.current,
        created_at=record.created_at,
        replaced_at=record.replaced_at,
    )


def review_events(records: list[ReviewRecord]) -> list[ReviewEventObject]:
    """A sample's review history: each review submitted (or adjudicated), and each
    replacement of a reviewer's earlier review, oldest first."""
    seen: set[str] = set()
    events = []
    for record in records:
        action = (
            "adjudicated"
            if record.adjudication
            else "replaced"
            if record.reviewer in seen
            else "submitted"
        )
        seen.add(record.reviewer)
        events.append(
            ReviewEventObject(
                action=action,
                reviewer=record.reviewer,
                at=record.created_at,
                review=review_object(record),
            )
        )
    return events


def gold_object(record: GoldRecord) -> GoldObject:
    return GoldObject(
        sample_id=record.sample_id,
        answers=record.answers,
        set_by=record.set_by,
        set_at=record.set_at,
    )


def progress_object(
    dataset_id: str, settings: ReviewSettings, progress: Progress
) -> ReviewProgressObject:
    counts = {state.value: progress.counts.get(state.value, 0) for state in ReviewState}
    return ReviewProgressObject(
        dataset_id=dataset_id,
        settings=settings_object(settings),
        samples=sum(counts.values()),
        counts=counts,
        reviewers=[
            ReviewerProgress(
                reviewer=r.reviewer,
                reviews=r.reviews,
                approvals=r.approvals,
                rejections=r.rejections,
                adjudications=r.adjudications,
                open_reservations=r.open_reservations,
                assigned=r.assigned,
            )
            for r in progress.reviewers
        ],
    )


def queue_items(view: QueueView) -> list[QueueItem]:
    return [
        QueueItem(
            sample_id=row.sample_id,
            topic=row.topic,
            sample_type=row.sample_type,
            created_at=int(row.created_at),
            review_state=ReviewState(row.review_state) if row.sample_id in view.visible else None,
            reviews=row.review_count,
            overlap=view.overlap,
            claims=[
                QueueClaim(reviewer=c.reviewer, assigned=c.assigned, reserved_until=c.expires_at)
                for c in row.claims
            ],
        )
        for row in view.rows
    ]
