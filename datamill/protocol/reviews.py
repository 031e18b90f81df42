"""Review on the wire: settings, queues, reviews, gold answers and progress
(`/api/datasets/{id}/review...`, `.../samples/{sample_id}/reviews`). datamill's own API."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from datamill.protocol.datasets import (
    PlainText,
    ReviewState,
    SampleFilterBody,
    SampleLine,
    SampleObject,
)

__all__ = ["ReviewState"]


FINAL_STATES = frozenset({ReviewState.approved, ReviewState.edited, ReviewState.rejected})


class Rule(StrEnum):
    """How a sample's reviews make its final state, once ``overlap`` of them are in."""

    majority = "majority"  # a strict majority of the decisions; a tie is disputed
    unanimous = "unanimous"  # all agree, else disputed
    adjudicator = "adjudicator"  # as unanimous; a member's adjudication decides a dispute


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReviewSettingsObject(BaseModel):
    object: Literal["dataset.review_settings"] = "dataset.review_settings"
    overlap: int
    blind: bool
    rule: Rule
    reservation_seconds: int


class ReviewSettingsUpdate(_Body):
    """`PUT /api/datasets/{id}/review`: the settings sent change, the others stay."""

    overlap: int | None = Field(default=None, ge=1, le=20)
    blind: bool | None = None
    rule: Rule | None = None
    reservation_seconds: int | None = Field(default=None, ge=10, le=7 * 86_400)


class NextRequest(_Body):
    """`POST .../review/next`: reserve up to ``limit`` samples to review."""

    limit: int = Field(default=1, ge=1, le=100)


class ReleaseRequest(_Body):
    """`POST .../review/release`: give back these reserved samples (none named: all)."""

    sample_ids: list[PlainText] | None = Field(default=None, min_length=1, max_length=1000)


class AssignRequest(SampleFilterBody):
    """`POST .../review/assign`: offer the samples ``sample_ids`` (or ``ids``) names, or the
    filter selects, or ``all``, to ``reviewer`` (a key id) first; each counts toward the
    overlap."""

    reviewer: PlainText = Field(min_length=1, max_length=64)
    sample_ids: list[PlainText] | None = Field(default=None, min_length=1, max_length=10_000)

    def selection(self) -> SampleFilterBody:
        """The samples, as the sample filters' body names them."""
        fields = self.model_dump(exclude_unset=True, exclude={"reviewer", "sample_ids"})
        if self.sample_ids is not None:
            if self.ids is not None:
                raise ValueError("give sample_ids or ids, not both")
            fields["ids"] = self.sample_ids
        return SampleFilterBody.model_validate(fields)


class AssignResult(BaseModel):
    object: Literal["dataset.review_assignment"] = "dataset.review_assignment"
    reviewer: str
    assigned: int


class Released(BaseModel):
    object: Literal["dataset.review_release"] = "dataset.review_release"
    released: int


class QuestionObject(BaseModel):
    name: str
    kind: str
    prompt: str | None
    required: bool
    options: list[str]
    multiple: bool
    reasons: list[str]


class ReviewSampleObject(BaseModel):
    """A sample as the reviewer gets it: the sample, its schema's questions, whether they
    may edit it, and (blind: only once they reviewed it) its review state."""

    object: Literal["dataset.review_item"] = "dataset.review_item"
    sample: SampleObject
    schema_name: str
    questions: list[QuestionObject]
    editable: bool
    review_state: ReviewState | None
    reserved_until: int | None = None


class NextObject(BaseModel):
    object: Literal["dataset.review_reservation"] = "dataset.review_reservation"
    reviewer: str
    expires_at: int | None
    data: list[ReviewSampleObject]


class ReviewCreate(_Body):
    """`POST .../samples/{sample_id}/reviews`: the caller's review of the sample."""

    answers: dict[str, Any]
    reason: PlainText | None = Field(default=None, max_length=10_000)
    content: dict[str, Any] | None = None
    adjudication: bool = False

    @field_validator("content")
    @classmethod
    def _content(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else SampleLine._content(value)


class ReviewObject(BaseModel):
    id: str
    object: Literal["dataset.review"] = "dataset.review"
    dataset_id: str
    sample_id: str
    reviewer: str
    answers: dict[str, Any]
    decision: str
    reason: str | None
    edited: bool
    adjudication: bool
    current: bool
    created_at: float
    replaced_at: float | None = None


class ReviewWritten(BaseModel):
    """What a review write answers: the review, and the sample's review state now."""

    object: Literal["dataset.review_written"] = "dataset.review_written"
    review: ReviewObject
    review_state: ReviewState
    created: bool  # False: the same review was written before (idempotent)


class ReviewEventObject(BaseModel):
    """One event of a sample's review history."""

    object: Literal["dataset.review_event"] = "dataset.review_event"
    action: Literal["submitted", "replaced", "adjudicated"]
    reviewer: str
    at: float
    review: ReviewObject


class GoldUpdate(_Body):
    """`PUT .../samples/{sample_id}/gold`: the expected answers."""

    answers: dict[str, Any]
    reason: PlainText | None = Field(default=None, max_length=10_000)


class GoldObject(BaseModel):
    object: Literal["dataset.review_gold"] = "dataset.review_gold"
    sample_id: str
    answers: dict[str, Any]
    set_by: str | None
    set_at: float


class ReviewerProgress(BaseModel):
    reviewer: str
    reviews: int
    approvals: int
    rejections: int
    adjudications: int
    open_reservations: int
    assigned: int


class ReviewProgressObject(BaseModel):
    object: Literal["dataset.review_progress"] = "dataset.review_progress"
    dataset_id: str
    settings: ReviewSettingsObject
    samples: int
    counts: dict[str, int]  # live samples per review state
    reviewers: list[ReviewerProgress]


class QueueClaim(BaseModel):
    reviewer: str
    assigned: bool
    reserved_until: float | None


class QueueItem(BaseModel):
    object: Literal["dataset.review_queue_item"] = "dataset.review_queue_item"
    sample_id: str
    topic: str | None
    sample_type: str | None
    created_at: int
    review_state: ReviewState | None  # None: hidden (blind, not reviewed by the caller)
    reviews: int
    overlap: int
    claims: list[QueueClaim]
