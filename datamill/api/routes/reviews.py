"""`/api/datasets/{id}/review...` and a sample's reviews: the review queue, reviews, gold
answers, settings and progress (`review.service.ReviewService`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel

from datamill.api.deps import ProjectDep, RuntimeDep
from datamill.callers import MEMBER, REVIEWER, CallerDep
from datamill.protocol.agreement import AgreementReportObject
from datamill.protocol.common import ListObject
from datamill.protocol.reviews import (
    AssignRequest,
    AssignResult,
    GoldObject,
    GoldUpdate,
    NextObject,
    NextRequest,
    QueueItem,
    Released,
    ReleaseRequest,
    ReviewCreate,
    ReviewEventObject,
    ReviewObject,
    ReviewProgressObject,
    ReviewSettingsObject,
    ReviewSettingsUpdate,
    ReviewState,
    ReviewWritten,
)
from datamill.render.agreement import agreement_report_object
from datamill.render.reviews import (
    gold_object,
    progress_object,
    queue_items,
    review_events,
    review_item,
    review_object,
    settings_object,
)
from datamill.review.agreement import DEFAULT_MIN_SHARED_ITEMS
from datamill.review.service import Reviewer

router = APIRouter(prefix="/api/datasets", tags=["review"])


class SampleReviewList(BaseModel):
    """A sample's current reviews, and its review state (None: hidden by blind mode)."""

    object: Literal["list"] = "list"
    data: list[ReviewObject]
    has_more: bool = False
    review_state: ReviewState | None


class GoldDeleted(BaseModel):
    object: Literal["dataset.review_gold.deleted"] = "dataset.review_gold.deleted"
    sample_id: str
    deleted: bool = True


@router.get("/{dataset_id}/review", dependencies=[REVIEWER], response_model=ReviewProgressObject)
async def review_progress(
    dataset_id: str, runtime: RuntimeDep, project_id: ProjectDep
) -> ReviewProgressObject:
    """The review settings, live samples per review state, and each reviewer's figures."""
    settings, progress = await runtime.reviews.progress(dataset_id, project_id=project_id)
    return progress_object(dataset_id, settings, progress)


@router.put("/{dataset_id}/review", dependencies=[MEMBER], response_model=ReviewSettingsObject)
async def update_review_settings(
    dataset_id: str, body: ReviewSettingsUpdate, runtime: RuntimeDep, project_id: ProjectDep
) -> ReviewSettingsObject:
    """Change the review settings sent; reviewed samples' states follow the new ones."""
    settings = await runtime.reviews.update_settings(dataset_id, body, project_id=project_id)
    return settings_object(settings)


@router.post("/{dataset_id}/review/next", dependencies=[REVIEWER], response_model=NextObject)
async def next_samples(
    dataset_id: str,
    body: NextRequest,
    runtime: RuntimeDep,
    project_id: ProjectDep,
    caller: CallerDep,
) -> NextObject:
    """Reserve up to ``limit`` samples for the caller to review (assigned ones first)."""
    reviewer = Reviewer.of(caller)
    items, expires_at = await runtime.reviews.next_samples(
        dataset_id, reviewer, limit=body.limit, project_id=project_id
    )
    return NextObject(
        reviewer=reviewer.id,
        expires_at=None if expires_at is None else int(expires_at),
        data=[review_item(item) for item in items],
    )


@router.post("/{dataset_id}/review/release", dependencies=[REVIEWER], response_model=Released)
async def release_samples(
    dataset_id: str,
    body: ReleaseRequest,
    runtime: RuntimeDep,
    project_id: ProjectDep,
    caller: CallerDep,
) -> Released:
    """Give back the caller's reservations (``sample_ids``, or all of them)."""
    released = await runtime.reviews.release(
        dataset_id, Reviewer.of(caller), body.sample_ids, project_id=project_id
    )
    return Released(released=released)


@router.post("/{dataset_id}/review/assign", dependencies=[MEMBER], response_model=AssignResult)
async def assign_samples(
    dataset_id: str, body: AssignRequest, runtime: RuntimeDep, project_id: ProjectDep
) -> AssignResult:
    """Assign the samples the body selects to ``reviewer``: offered to them first."""
    assigned = await runtime.reviews.assign(dataset_id, body, project_id=project_id)
    return AssignResult(reviewer=body.reviewer, assigned=assigned)


@router.get(
    "/{dataset_id}/review/agreement",
    dependencies=[MEMBER],
    response_model=AgreementReportObject,
)
async def review_agreement(
    dataset_id: str,
    runtime: RuntimeDep,
    project_id: ProjectDep,
    sample_type: str | None = None,
    min_shared_items: Annotated[int, Query(ge=1, le=1_000_000)] = DEFAULT_MIN_SHARED_ITEMS,
) -> AgreementReportObject:
    """How far reviewers agree, per question and per reviewer (the review's leads: members
    and admins; reviewers see no one else's answers)."""
    report = await runtime.reviews.agreement(
        dataset_id,
        sample_type=sample_type,
        min_shared_items=min_shared_items,
        project_id=project_id,
    )
    return agreement_report_object(report, dataset_id=dataset_id)


@router.get(
    "/{dataset_id}/review/queue", dependencies=[REVIEWER], response_model=ListObject[QueueItem]
)
async def review_queue(
    dataset_id: str,
    runtime: RuntimeDep,
    project_id: ProjectDep,
    caller: CallerDep,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    review_state: Annotated[list[ReviewState] | None, Query()] = None,
) -> ListObject[QueueItem]:
    """Live samples in creation order with their review progress and claims."""
    view = await runtime.reviews.queue(
        dataset_id,
        Reviewer.of(caller),
        states=review_state or [],
        after=after,
        limit=limit,
        project_id=project_id,
    )
    items = queue_items(view)
    return ListObject[QueueItem](
        data=items,
        first_id=items[0].sample_id if items else None,
        last_id=items[-1].sample_id if items else None,
        has_more=view.has_more,
    )


@router.post(
    "/{dataset_id}/samples/{sample_id}/reviews",
    dependencies=[REVIEWER],
    response_model=ReviewWritten,
)
async def submit_review(
    dataset_id: str,
    sample_id: str,
    body: ReviewCreate,
    runtime: RuntimeDep,
    project_id: ProjectDep,
    caller: CallerDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> ReviewWritten:
    """The caller's review of a sample (replacing theirs); the sample's state follows."""
    written = await runtime.reviews.submit(
        dataset_id,
        sample_id,
        body,
        Reviewer.of(caller),
        idempotency_key=idempotency_key,
        project_id=project_id,
    )
    assert written.record is not None
    return ReviewWritten(
        review=review_object(written.record),
        review_state=ReviewState(written.review_state),
        created=written.created,
    )


@router.get(
    "/{dataset_id}/samples/{sample_id}/reviews",
    dependencies=[REVIEWER],
    response_model=SampleReviewList,
)
async def sample_reviews(
    dataset_id: str,
    sample_id: str,
    runtime: RuntimeDep,
    project_id: ProjectDep,
    caller: CallerDep,
) -> SampleReviewList:
    """A sample's current reviews and state (blind mode: the caller's own until they
    reviewed it, and no state)."""
    found, state = await runtime.reviews.sample_reviews(
        dataset_id, sample_id, Reviewer.of(caller), project_id=project_id
    )
    return SampleReviewList(
        data=[review_object(r) for r in found],
        review_state=None if state is None else ReviewState(state),
    )


@router.get(
    "/{dataset_id}/samples/{sample_id}/review-history",
    dependencies=[REVIEWER],
    response_model=ListObject[ReviewEventObject],
)
async def review_history(
    dataset_id: str,
    sample_id: str,
    runtime: RuntimeDep,
    project_id: ProjectDep,
    caller: CallerDep,
) -> ListObject[ReviewEventObject]:
    """Every review of the sample, oldest first: submitted, replaced, adjudicated."""
    found, _ = await runtime.reviews.sample_reviews(
        dataset_id, sample_id, Reviewer.of(caller), history=True, project_id=project_id
    )
    return ListObject[ReviewEventObject](data=review_events(found))


@router.put(
    "/{dataset_id}/samples/{sample_id}/gold", dependencies=[MEMBER], response_model=GoldObject
)
async def set_gold(
    dataset_id: str,
    sample_id: str,
    body: GoldUpdate,
    runtime: RuntimeDep,
    project_id: ProjectDep,
    caller: CallerDep,
) -> GoldObject:
    """Make the sample a gold sample with these expected answers."""
    record = await runtime.reviews.set_gold(
        dataset_id, sample_id, body, set_by=caller.key_id, project_id=project_id
    )
    return gold_object(record)


@router.delete(
    "/{dataset_id}/samples/{sample_id}/gold", dependencies=[MEMBER], response_model=GoldDeleted
)
async def delete_gold(
    dataset_id: str, sample_id: str, runtime: RuntimeDep, project_id: ProjectDep
) -> GoldDeleted:
    await runtime.reviews.delete_gold(dataset_id, sample_id, project_id=project_id)
    return GoldDeleted(sample_id=sample_id)


@router.get(
    "/{dataset_id}/review/gold", dependencies=[MEMBER], response_model=ListObject[GoldObject]
)
async def list_gold(
    dataset_id: str, runtime: RuntimeDep, project_id: ProjectDep
) -> ListObject[GoldObject]:
    """The dataset's gold samples and their expected answers."""
    found = await runtime.reviews.gold(dataset_id, project_id=project_id)
    return ListObject[GoldObject](data=[gold_object(found[key]) for key in sorted(found)])
