"""An agreement report (`datamill.review.agreement`) as the API and the CLI show it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from datamill.protocol.agreement import (
    AgreementReportObject,
    QuestionAgreementObject,
    ReviewerReportObject,
)


class AgreementReportView(Protocol):
    """What the renderer reads of an `AgreementReport` (review sits above render, so it is
    described here rather than imported); its parts are read by attribute, field by field."""

    @property
    def item_count(self) -> int: ...
    @property
    def reviewer_count(self) -> int: ...
    @property
    def rating_count(self) -> int: ...
    @property
    def ignored_ratings(self) -> int: ...
    @property
    def min_shared_items(self) -> int: ...
    @property
    def questions(self) -> Sequence[object]: ...
    @property
    def reviewers(self) -> Sequence[object]: ...


def agreement_report_object(
    report: AgreementReportView, *, dataset_id: str
) -> AgreementReportObject:
    return AgreementReportObject(
        dataset_id=dataset_id,
        item_count=report.item_count,
        reviewer_count=report.reviewer_count,
        rating_count=report.rating_count,
        ignored_ratings=report.ignored_ratings,
        min_shared_items=report.min_shared_items,
        questions=[QuestionAgreementObject.model_validate(q) for q in report.questions],
        reviewers=[ReviewerReportObject.model_validate(r) for r in report.reviewers],
    )
