"""Reviewer agreement on the wire: the report of `datamill.review.agreement`, per question
and per reviewer. datamill's own shape (OpenAI has none).

Every statistic is an object with ``value`` (a finite number, or null) and ``reason`` (null,
or why the value is null: see `NullReasonName`); docs/curation.md ("Agreement") defines each.
NaN and infinities are refused here, so a bug can never put them into JSON.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

NullReasonName = Literal[
    "too_few_ratings",  # no item has two ratings: nothing to compare
    "no_variation",  # one value only: chance agreement is 1, the statistic 0/0
    "no_reviewer_pair",  # no two reviewers share min_shared_items items
    "no_other_reviewers",  # none of the reviewer's items has another reviewer's rating
    "no_gold",  # no rating of an item with a gold answer
    "no_final_decision",  # no decision on an item with a final decision
]


class _Out(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False, from_attributes=True)


class EstimateObject(_Out):
    value: float | None
    reason: NullReasonName | None


class ObservedAgreementObject(EstimateObject):
    pairs: int = Field(description="pairs of ratings of the same item compared")


class PairKappaObject(EstimateObject):
    reviewers: tuple[str, str]
    items: int = Field(description="items both reviewers rated")


class CohenKappaObject(EstimateObject):
    pairs_used: int = Field(description="pairs whose kappa the value is the mean of")
    pairs_total: int = Field(description="pairs of reviewers sharing at least one item")
    pairs: list[PairKappaObject]


class FleissKappaObject(EstimateObject):
    raters_per_item: int | None
    items_used: int


class KrippendorffAlphaObject(EstimateObject):
    values: int = Field(description="pairable values: ratings of items with at least two")


class GoldAgreementObject(EstimateObject):
    items: int
    reviews: int
    correct: int


class QuestionAgreementObject(_Out):
    question: str = Field(description="the question, or name[option] for a multiple labels option")
    kind: Literal["decision", "rating", "labels"]
    option: str | None
    level: Literal["nominal", "ordinal"]
    ratings: int
    invalid_ratings: int
    items: int
    items_compared: int
    reviewers: int
    observed_agreement: ObservedAgreementObject
    cohen_kappa: CohenKappaObject
    fleiss_kappa: FleissKappaObject
    krippendorff_alpha: KrippendorffAlphaObject
    gold: GoldAgreementObject


class ReviewerQuestionObject(_Out):
    question: str
    ratings: int
    compared: int = Field(description="pairs of this reviewer's rating and another's")
    observed_agreement: EstimateObject
    cohen_kappa: EstimateObject
    gold: GoldAgreementObject


class FinalDecisionAgreementObject(EstimateObject):
    items: int
    matching: int


class ReviewerReportObject(_Out):
    reviewer_id: str
    reviews: int
    approved: int
    rejected: int
    questions: list[ReviewerQuestionObject]
    final_decision: FinalDecisionAgreementObject


class AgreementReportObject(_Out):
    """`GET /api/datasets/{dataset_id}/review/agreement`."""

    object: Literal["agreement_report"] = "agreement_report"
    dataset_id: str
    item_count: int
    reviewer_count: int
    rating_count: int
    ignored_ratings: int
    min_shared_items: int
    questions: list[QuestionAgreementObject]
    reviewers: list[ReviewerReportObject]
