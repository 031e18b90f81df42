"""ReviewService: a dataset's review queue, its reviews and their final state, gold answers
and progress. The HTTP API and the CLI call it; the storage guarantees (atomic claims, one
transaction per review with its edit and the sample's new state) are `storage.reviews`'s.

Blind mode: a caller below member sees no other reviewer's review of a sample, nor its
review state, until they have reviewed it themselves; members and admins see everything.
Answers are checked against the sample's task schema (the registry's `schema_for`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from datamill.auth.service import Caller
from datamill.clock import Clock
from datamill.curation.lookups import DatasetLookups, duplicate, no_sample, plain_text
from datamill.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from datamill.events import EventPublisher
from datamill.events.topics import Topic
from datamill.protocol.access import Role
from datamill.protocol.reviews import (
    AssignRequest,
    GoldUpdate,
    ReviewCreate,
    ReviewSettingsUpdate,
    ReviewState,
)
from datamill.protocol.task_schema_format import TaskSchema
from datamill.review.agreement import DEFAULT_MIN_SHARED_ITEMS, AgreementReport
from datamill.review.dataset_agreement import dataset_agreement
from datamill.review.rules import check_answers, final_state
from datamill.storage import keys as key_store
from datamill.storage import review_queue as queue_repo
from datamill.storage import reviews as repo
from datamill.storage import samples as sample_repo
from datamill.storage.database import Database
from datamill.storage.review_queue import Progress, QueueRow
from datamill.storage.reviews import (
    GoldRecord,
    NewReview,
    ReviewRecord,
    ReviewSettings,
    ReviewWrite,
)
from datamill.storage.samples import SampleRecord
from datamill.storage.schema import DEFAULT_PROJECT_ID
from datamill.task_schemas.service import TaskSchemaService

LOCAL_REVIEWER = "local"  # who reviews in local mode, where no key names anyone


@dataclass(frozen=True, slots=True)
class Reviewer:
    """Who reviews: a key's id (``local`` in local mode), and whether they see every
    review whatever blind mode says (members and admins)."""

    id: str
    sees_all: bool = False

    @classmethod
    def of(cls, caller: Caller) -> Reviewer:
        return cls(caller.key_id or LOCAL_REVIEWER, caller.role.allows(Role.member))


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """A sample to review, with its schema, and its state if the reviewer may see it."""

    sample: SampleRecord
    schema: TaskSchema
    review_state: str | None
    reserved_until: float | None = None


@dataclass(frozen=True, slots=True)
class QueueView:
    rows: list[QueueRow]
    visible: set[str]  # samples whose review state the caller may see
    overlap: int
    has_more: bool


class ReviewService(DatasetLookups):
    """The review of a project's datasets. Unknown datasets and samples (another
    project's among them) are 404s."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        events: EventPublisher,
        *,
        max_line_bytes: int,
        schemas: TaskSchemaService | None = None,
    ) -> None:
        super().__init__(database, clock, max_line_bytes=max_line_bytes, schemas=schemas)
        self._review_events = events

    # -- settings and progress -----------------------------------------------------------------

    async def settings(
        self, dataset_id: str, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> ReviewSettings:
        await self._dataset(dataset_id, project_id)
        return await repo.get_settings(self._db, dataset_id)

    async def update_settings(
        self,
        dataset_id: str,
        body: ReviewSettingsUpdate,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
    ) -> ReviewSettings:
        """Change the settings ``body`` sets; the states of reviewed samples follow."""
        await self._dataset(dataset_id, project_id)
        values: dict[str, Any] = {}
        for name in body.model_fields_set:
            value = getattr(body, name)
            if value is None:
                raise InvalidRequest(f"{name} cannot be null", param=name, code="invalid_value")
            values[name] = value.value if name == "rule" else value
        return await repo.put_settings(
            self._db, dataset_id, values, decide=final_state, now=self._clock.now()
        )

    async def progress(
        self, dataset_id: str, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> tuple[ReviewSettings, Progress]:
        await self._dataset(dataset_id, project_id)
        settings = await repo.get_settings(self._db, dataset_id)
        return settings, await queue_repo.review_progress(
            self._db, dataset_id, now=self._clock.now()
        )

    # -- the queue -----------------------------------------------------------------------------

    async def next_samples(
        self,
        dataset_id: str,
        reviewer: Reviewer,
        *,
        limit: int,
        project_id: str = DEFAULT_PROJECT_ID,
    ) -> tuple[list[ReviewItem], float | None]:
        """Reserve up to ``limit`` samples for ``reviewer`` (those assigned to them first);
        returns them and when the reservation ends (None: nothing left to review)."""
        dataset = await self._dataset(dataset_id, project_id)
        reserved = await queue_repo.reserve_samples(
            self._db, dataset_id, reviewer.id, limit=limit, now=self._clock.now()
        )
        # Each is one the reviewer has not reviewed: blind hides its state from them.
        settings = await repo.get_settings(self._db, dataset_id)
        shown = reviewer.sees_all or not settings.blind
        found = await self.schemas.schemas_for(
            project_id, dataset, {entry.sample.sample_type for entry in reserved}
        )
        items = [
            ReviewItem(
                entry.sample,
                found.for_type(entry.sample.sample_type),
                entry.sample.review_state if shown else None,
                entry.expires_at,
            )
            for entry in reserved
        ]
        return items, reserved[0].expires_at if reserved else None

    async def release(
        self,
        dataset_id: str,
        reviewer: Reviewer,
        sample_ids: Sequence[str] | None,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
    ) -> int:
        """Give back ``reviewer``'s reservations (of ``sample_ids``; None: all of them)."""
        await self._dataset(dataset_id, project_id)
        return await queue_repo.release_samples(self._db, dataset_id, reviewer.id, sample_ids)

    async def assign(
        self, dataset_id: str, body: AssignRequest, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> int:
        """Assign the live samples the body selects to ``body.reviewer`` (a key of the
        project, or ``local``)."""
        try:
            selection = body.selection()
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="sample_ids") from None
        where = self._body_filter(selection)
        await self._dataset(dataset_id, project_id)
        if body.reviewer != LOCAL_REVIEWER:
            key = await key_store.get_key(self._db, body.reviewer)
            if key is None or key.project_id != project_id:
                raise NotFound(f"No key {body.reviewer} in this project", param="reviewer")
        return await queue_repo.assign_samples(self._db, dataset_id, body.reviewer, where)

    async def queue(
        self,
        dataset_id: str,
        reviewer: Reviewer,
        *,
        states: Sequence[ReviewState],
        after: str | None,
        limit: int,
        project_id: str = DEFAULT_PROJECT_ID,
    ) -> QueueView:
        """A page of the dataset's live samples with their review progress, in creation
        order. Blind mode, for a reviewer: no filter by state, and states hidden but for the
        samples they reviewed."""
        plain_text(after, "after")
        await self._dataset(dataset_id, project_id)
        settings = await repo.get_settings(self._db, dataset_id)
        blind = settings.blind and not reviewer.sees_all
        if blind and states:
            raise PermissionDenied(
                "this dataset's review is blind: only members filter its queue by review state",
                code="review_blind",
            )
        page = await queue_repo.queue_page(
            self._db,
            dataset_id,
            states=[state.value for state in states],
            after=after,
            limit=limit,
            now=self._clock.now(),
        )
        if page is None:
            raise InvalidRequest(f"No sample {after!r} to page after", param="after")
        rows, has_more = page
        ids = [row.sample_id for row in rows]
        visible = await repo.reviewed_by(self._db, ids, reviewer.id) if blind else set(ids)
        return QueueView(rows, visible, settings.overlap, has_more)

    async def check_state_filter(
        self,
        dataset_id: str,
        states: Sequence[ReviewState],
        reviewer: Reviewer,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
    ) -> None:
        """Refuse a filter by review state to a caller below member on a blind dataset
        (blind mode hides review states from them)."""
        if not states or reviewer.sees_all:
            return
        await self._dataset(dataset_id, project_id)
        if (await repo.get_settings(self._db, dataset_id)).blind:
            raise PermissionDenied(
                "this dataset's review is blind: only members filter its samples by review state",
                code="review_blind",
            )

    # -- reviews -------------------------------------------------------------------------------

    async def submit(
        self,
        dataset_id: str,
        sample_id: str,
        body: ReviewCreate,
        reviewer: Reviewer,
        *,
        idempotency_key: str | None = None,
        project_id: str = DEFAULT_PROJECT_ID,
    ) -> ReviewWrite:
        """Write ``reviewer``'s review of a live sample (replacing theirs), with its edit;
        the sample's state follows. A review already written (the same answers, or the same
        ``idempotency_key``) is answered again, not written twice."""
        plain_text(idempotency_key, "Idempotency-Key")
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
            raise InvalidRequest("Idempotency-Key is 1 to 200 characters", param="Idempotency-Key")
        if body.adjudication and not reviewer.sees_all:
            raise PermissionDenied("an adjudication needs the member role or above")
        dataset, sample = await self._dataset_and_sample(dataset_id, sample_id, project_id)
        schema = await self.schemas.schema_for(project_id, dataset, sample.sample_type)
        decision = check_answers(schema, body.answers, reason=body.reason)
        if body.content is not None and body.content != sample.content:
            if not schema.review.editable:
                raise InvalidRequest(
                    f"schema {schema.name!r} does not let reviewers edit content",
                    param="content",
                    code="not_editable",
                )
            await self._check_content(project_id, dataset, sample.sample_type, body.content)
        review = NewReview(
            dataset_id=dataset_id,
            sample_id=sample_id,
            reviewer=reviewer.id,
            answers=body.answers,
            decision=decision,
            reason=body.reason,
            adjudication=body.adjudication,
            idempotency_key=idempotency_key,
        )
        written = await repo.write_review(
            self._db, review, content=body.content, decide=final_state, now=self._clock.now()
        )
        self._refused(dataset_id, sample_id, written)
        if written.created:
            self._publish(project_id, written)
        return written

    def _refused(self, dataset_id: str, sample_id: str, written: ReviewWrite) -> None:
        if written.key_reused:
            raise Conflict(
                "this Idempotency-Key was used for another review of this sample",
                param="Idempotency-Key",
                code="idempotency_key_reused",
            )
        edit = written.edit
        if edit is not None and edit.duplicate_of is not None:
            raise duplicate(f"sample {sample_id}'s edited content", edit.duplicate_of)
        if written.record is None:
            if written.sample is None:
                raise no_sample(dataset_id, sample_id)
            raise Conflict(
                f"sample {sample_id} is deleted: restore it before reviewing it",
                param="sample_id",
                code="sample_deleted",
            )

    def _publish(self, project_id: str, written: ReviewWrite) -> None:
        record = written.record
        assert record is not None
        assert written.sample is not None
        # Blind mode holds for the stream too: the event says a review came, not what it said.
        self._review_events.publish(
            Topic.review,
            {
                "type": "review",
                "dataset_id": record.dataset_id,
                "sample_id": record.sample_id,
                "review_id": record.id,
                "reviews": written.sample.review_count,
            },
            project_id=project_id,
        )
        if written.completed is not None:
            self._review_events.publish(
                Topic.review,
                {
                    "type": "completed",
                    "dataset_id": record.dataset_id,
                    "counts": written.completed,
                    "completed_at": record.created_at,
                },
                project_id=project_id,
            )

    async def sample_reviews(
        self,
        dataset_id: str,
        sample_id: str,
        reviewer: Reviewer,
        *,
        history: bool = False,
        project_id: str = DEFAULT_PROJECT_ID,
    ) -> tuple[list[ReviewRecord], str | None]:
        """A sample's current reviews (``history``: every review ever written, oldest
        first) and its review state; blind mode shows a reviewer only their own until they
        reviewed it, and no state."""
        sample = await self._sample(dataset_id, sample_id, project_id)
        found = await repo.sample_reviews(self._db, sample_id, current_only=not history)
        if reviewer.sees_all:
            return found, sample.review_state
        settings = await repo.get_settings(self._db, dataset_id)
        if not settings.blind:
            return found, sample.review_state
        if any(r.reviewer == reviewer.id and r.current for r in found):
            return found, sample.review_state
        return [r for r in found if r.reviewer == reviewer.id], None

    async def dataset_reviews(
        self, dataset_id: str, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> list[ReviewRecord]:
        """Every current review of the dataset's live samples, oldest first: what the
        agreement statistics read (with `gold`)."""
        await self._dataset(dataset_id, project_id)
        return await repo.dataset_reviews(self._db, dataset_id)

    async def agreement(
        self,
        dataset_id: str,
        *,
        sample_type: str | None = None,
        min_shared_items: int = DEFAULT_MIN_SHARED_ITEMS,
        project_id: str = DEFAULT_PROJECT_ID,
    ) -> AgreementReport:
        """How far the dataset's reviewers agree (`review.dataset_agreement`), over the
        samples of ``sample_type`` (None: all)."""
        plain_text(sample_type, "sample_type")
        dataset = await self._dataset(dataset_id, project_id)
        states = await repo.reviewed_samples(self._db, dataset_id)
        if sample_type is not None:
            states = {k: v for k, v in states.items() if v.sample_type == sample_type}
        types = {state.sample_type for state in states.values()}
        if not types:  # no review yet: the questions of the schemas its samples follow
            known = await sample_repo.sample_types(self._db, dataset_id)
            types = {sample_type} if sample_type is not None else set(known) or {None}
        found = await self.schemas.schemas_for(project_id, dataset, types)
        reviews = [
            (r.sample_id, r.reviewer, r.answers, r.adjudication)
            for r in await repo.dataset_reviews(self._db, dataset_id)
        ]
        gold = {k: g.answers for k, g in (await repo.gold_answers(self._db, dataset_id)).items()}
        return await asyncio.to_thread(
            dataset_agreement,
            reviews,
            sample_states={k: (v.sample_type, v.review_state) for k, v in states.items()},
            questions_by_type={t: found.for_type(t).review.questions for t in types},
            gold=gold,
            min_shared_items=min_shared_items,
        )

    # -- gold ----------------------------------------------------------------------------------

    async def set_gold(
        self,
        dataset_id: str,
        sample_id: str,
        body: GoldUpdate,
        *,
        set_by: str | None,
        project_id: str = DEFAULT_PROJECT_ID,
    ) -> GoldRecord:
        """Store a sample's expected answers (checked as a review's are, but a reject
        needs no reason)."""
        dataset, sample = await self._dataset_and_sample(dataset_id, sample_id, project_id)
        schema = await self.schemas.schema_for(project_id, dataset, sample.sample_type)
        check_answers(schema, body.answers, reason=body.reason, need_reason=False)
        return await repo.put_gold(
            self._db, dataset_id, sample_id, body.answers, set_by=set_by, now=self._clock.now()
        )

    async def delete_gold(
        self, dataset_id: str, sample_id: str, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> None:
        await self._sample(dataset_id, sample_id, project_id)
        if not await repo.delete_gold(self._db, sample_id):
            raise NotFound(f"sample {sample_id} is no gold sample", param="sample_id")

    async def gold(
        self,
        dataset_id: str,
        *,
        sample_ids: Sequence[str] | None = None,
        project_id: str = DEFAULT_PROJECT_ID,
    ) -> dict[str, GoldRecord]:
        """The dataset's gold answers (of ``sample_ids``; None: all) by sample id (for
        agreement with gold)."""
        await self._dataset(dataset_id, project_id)
        return await repo.gold_answers(self._db, dataset_id, sample_ids)
