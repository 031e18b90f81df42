"""The review repository: settings, claims on samples (assignments and reservations),
reviews, gold answers, and each sample's review state.

Every write runs in one transaction holding the dataset's insert lock
(`samples._lock_dataset`: SQLite's single writer, PostgreSQL's advisory lock), so the
queue's claim and a review's write are atomic on both stores. Guarantees:

- `reserve_samples` never lets the reviews plus the live claims of a sample exceed the
  dataset's overlap: two reviewers racing for the queue are served one after the other,
  and each sees the other's claims.
- `write_review` writes the review, the sample's content edit (a new version in its
  history, `sample_edits`) and the sample's new review state in one transaction; a
  refused edit writes nothing. A reviewer's earlier review of the sample stays in the
  history, no longer current; the same review twice (equal, or the same idempotency key)
  writes nothing the second time.
- A sample's ``review_state`` and ``review_count`` are what the reviews' rule
  (``decide``, `review.rules.final_state`) says of its current reviews.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from datamill.ids import new_review_id
from datamill.storage.database import Database, upsert_insert
from datamill.storage.sample_edits import EditOutcome, edit_sample_in
from datamill.storage.samples import (
    _COLUMNS,
    SampleFilter,
    SampleRecord,
    _conditions,
    _get_sample,
    _lock_dataset,
    _record,
)
from datamill.storage.schema import (
    review_claims,
    review_gold,
    review_settings,
    reviews,
    samples,
)

# States a sample still needs reviews in (the queue offers these).
OPEN_STATES = ("unreviewed", "in_review")
# States a sample's review is done in.
FINAL_STATES = ("approved", "edited", "rejected")


@dataclass(frozen=True, slots=True)
class ReviewSettings:
    """A dataset's review settings (these defaults until someone changes them); ``rule``
    is a `protocol.reviews.Rule` value."""

    overlap: int = 1
    blind: bool = True
    rule: str = "majority"
    reservation_seconds: int = 900


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one current review says, for the rule that decides the state."""

    decision: str
    edited: bool = False
    adjudication: bool = False


Decide = Callable[[Sequence[Verdict], ReviewSettings], str]


@dataclass(frozen=True, slots=True)
class ReviewRecord:
    id: str
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
    replaced_at: float | None
    idempotency_key: str | None


@dataclass(frozen=True, slots=True)
class NewReview:
    dataset_id: str
    sample_id: str
    reviewer: str
    answers: dict[str, Any]
    decision: str
    reason: str | None
    adjudication: bool
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class ReviewWrite:
    """What `write_review` did. ``record`` None: nothing written, because the sample is not
    live (``sample`` says which) or its edit was refused (``edit``). ``created`` False: the
    same review was there already. ``completed``: this write ended the dataset's review
    (no live sample needs one any more): its live samples per state."""

    record: ReviewRecord | None
    sample: SampleRecord | None
    review_state: str = "unreviewed"
    created: bool = False
    edit: EditOutcome | None = None
    key_reused: bool = False
    completed: dict[str, int] | None = None


@dataclass(frozen=True, slots=True)
class Reserved:
    sample: SampleRecord
    expires_at: float


@dataclass(frozen=True, slots=True)
class Claim:
    sample_id: str
    reviewer: str
    assigned: bool
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class ReviewerCounts:
    reviewer: str
    reviews: int = 0
    approvals: int = 0
    rejections: int = 0
    adjudications: int = 0
    open_reservations: int = 0
    assigned: int = 0


@dataclass(frozen=True, slots=True)
class Progress:
    counts: dict[str, int]
    reviewers: list[ReviewerCounts]


@dataclass(frozen=True, slots=True)
class GoldRecord:
    sample_id: str
    answers: dict[str, Any]
    set_by: str | None
    set_at: float


# -- settings ----------------------------------------------------------------------------------


async def get_settings(database: Database, dataset_id: str) -> ReviewSettings:
    async with database.read() as conn:
        return await _settings(conn, dataset_id)


async def _settings(conn: AsyncConnection, dataset_id: str) -> ReviewSettings:
    query = select(review_settings).where(review_settings.c.dataset_id == dataset_id)
    row = (await conn.execute(query)).first()
    if row is None:
        return ReviewSettings()
    return ReviewSettings(row.overlap, row.blind, row.rule, row.reservation_seconds)


async def put_settings(
    database: Database,
    dataset_id: str,
    values: dict[str, Any],
    *,
    decide: Decide,
    now: float,
) -> ReviewSettings:
    """Change the settings ``values`` names; every reviewed sample's state is decided
    again under them, in the same transaction."""
    async with database.write() as conn:
        await _lock_dataset(conn, dataset_id)
        old = await _settings(conn, dataset_id)
        new = ReviewSettings(
            overlap=values.get("overlap", old.overlap),
            blind=values.get("blind", old.blind),
            rule=values.get("rule", old.rule),
            reservation_seconds=values.get("reservation_seconds", old.reservation_seconds),
        )
        row = {
            "overlap": new.overlap,
            "blind": new.blind,
            "rule": new.rule,
            "reservation_seconds": new.reservation_seconds,
            "updated_at": now,
        }
        statement = upsert_insert(conn.dialect.name)(review_settings).values(
            dataset_id=dataset_id, **row
        )
        await conn.execute(statement.on_conflict_do_update(index_elements=["dataset_id"], set_=row))
        if (new.overlap, new.rule) != (old.overlap, old.rule):
            await _decide_all(conn, dataset_id, new, decide)
    return new


async def _decide_all(
    conn: AsyncConnection, dataset_id: str, settings: ReviewSettings, decide: Decide
) -> None:
    query = (
        select(reviews.c.sample_id, reviews.c.decision, reviews.c.edited, reviews.c.adjudication)
        .where(reviews.c.dataset_id == dataset_id, reviews.c.current.is_(True))
        .order_by(reviews.c.seq)
    )
    by_sample: dict[str, list[Verdict]] = {}
    for row in await conn.execute(query):
        by_sample.setdefault(row.sample_id, []).append(
            Verdict(row.decision, row.edited, row.adjudication)
        )
    for sample_id, verdicts in by_sample.items():
        await conn.execute(
            update(samples)
            .where(samples.c.id == sample_id)
            .values(review_state=decide(verdicts, settings), review_count=_counted(verdicts))
        )


def _counted(verdicts: Sequence[Verdict]) -> int:
    return sum(1 for v in verdicts if not v.adjudication)


# -- the queue ---------------------------------------------------------------------------------


def _live_claim(now: float) -> ColumnElement[bool]:
    return or_(review_claims.c.assigned.is_(True), review_claims.c.expires_at > now)


def _open_to(reviewer: str, overlap: int, now: float) -> list[ColumnElement[bool]]:
    """A sample ``reviewer`` may take: not reviewed by them, and its reviews plus others'
    live claims below the overlap."""
    # An alias: the reservation's own query joins the claims table too.
    claims = review_claims.alias("others")
    others = (
        select(func.count())
        .select_from(claims)
        .where(
            claims.c.sample_id == samples.c.id,
            claims.c.reviewer != reviewer,
            or_(claims.c.assigned.is_(True), claims.c.expires_at > now),
        )
        .scalar_subquery()
    )
    reviewed = exists().where(
        reviews.c.sample_id == samples.c.id,
        reviews.c.reviewer == reviewer,
        reviews.c.current.is_(True),
    )
    return [~reviewed, samples.c.review_count + others < overlap]


async def reserve_samples(
    database: Database, dataset_id: str, reviewer: str, *, limit: int, now: float
) -> list[Reserved]:
    """Reserve up to ``limit`` samples for ``reviewer`` until now + the reservation time:
    the ones they hold already (assigned first), then others in creation order."""
    async with database.write() as conn:
        await _lock_dataset(conn, dataset_id)
        settings = await _settings(conn, dataset_id)
        # Lapsed reservations decide nothing any more; assignments stay.
        await conn.execute(
            delete(review_claims).where(
                review_claims.c.dataset_id == dataset_id,
                review_claims.c.assigned.is_(False),
                review_claims.c.expires_at <= now,
            )
        )
        open_ = [
            samples.c.dataset_id == dataset_id,
            samples.c.deleted_at.is_(None),
            *_open_to(reviewer, settings.overlap, now),
        ]
        mine = and_(
            review_claims.c.sample_id == samples.c.id,
            review_claims.c.reviewer == reviewer,
            _live_claim(now),
        )
        held = (
            select(*_COLUMNS)
            .join(review_claims, mine)
            .where(*open_, samples.c.review_state.in_(OPEN_STATES))
            .order_by(review_claims.c.assigned.desc(), samples.c.seq)
            .limit(limit)
        )
        rows = list((await conn.execute(held)).all())
        wanted = limit - len(rows)
        if wanted > 0:
            # One query per open state, each an index range in queue order that stops at
            # ``wanted`` matches (one query over both would sort every open sample first).
            fresh: list[Row[Any]] = []
            for state in OPEN_STATES:
                query = (
                    select(*_COLUMNS)
                    .where(*open_, samples.c.review_state == state, ~exists().where(mine))
                    .order_by(samples.c.seq)
                    .limit(wanted)
                )
                fresh += (await conn.execute(query)).all()
            rows += sorted(fresh, key=lambda row: row.seq)[:wanted]
        expires_at = now + settings.reservation_seconds
        if rows:
            statement = upsert_insert(conn.dialect.name)(review_claims)
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["sample_id", "reviewer"],
                    set_={"expires_at": statement.excluded.expires_at},
                ),
                [
                    {
                        "sample_id": row.id,
                        "reviewer": reviewer,
                        "dataset_id": dataset_id,
                        "assigned": False,
                        "expires_at": expires_at,
                    }
                    for row in rows
                ],
            )
    return [Reserved(_record(row), expires_at) for row in rows]


async def release_samples(
    database: Database, dataset_id: str, reviewer: str, sample_ids: Sequence[str] | None
) -> int:
    """End ``reviewer``'s reservations (of ``sample_ids``; None: all in the dataset). An
    assigned sample stays assigned."""
    where = [review_claims.c.dataset_id == dataset_id, review_claims.c.reviewer == reviewer]
    if sample_ids is not None:
        where.append(review_claims.c.sample_id.in_(list(sample_ids)))
    reserved = review_claims.c.expires_at.is_not(None)
    async with database.write() as conn:
        dropped = await conn.execute(
            delete(review_claims).where(*where, reserved, review_claims.c.assigned.is_(False))
        )
        kept = await conn.execute(
            update(review_claims)
            .where(*where, reserved, review_claims.c.assigned.is_(True))
            .values(expires_at=None)
        )
    return int(dropped.rowcount or 0) + int(kept.rowcount or 0)


async def assign_samples(
    database: Database, dataset_id: str, reviewer: str, where: SampleFilter
) -> int:
    """Assign the live matching samples ``reviewer`` has not reviewed to them."""
    async with database.write() as conn:
        await _lock_dataset(conn, dataset_id)
        reviewed = exists().where(
            reviews.c.sample_id == samples.c.id,
            reviews.c.reviewer == reviewer,
            reviews.c.current.is_(True),
        )
        ids = list(
            (
                await conn.execute(
                    select(samples.c.id).where(
                        *_conditions(database.dialect, dataset_id, where),
                        samples.c.deleted_at.is_(None),
                        ~reviewed,
                    )
                )
            ).scalars()
        )
        if not ids:
            return 0
        statement = upsert_insert(conn.dialect.name)(review_claims)
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=["sample_id", "reviewer"], set_={"assigned": True}
            ),
            [
                {
                    "sample_id": sample_id,
                    "reviewer": reviewer,
                    "dataset_id": dataset_id,
                    "assigned": True,
                    "expires_at": None,
                }
                for sample_id in ids
            ],
        )
    return len(ids)


# -- reviews -----------------------------------------------------------------------------------


def _review(row: Row[Any]) -> ReviewRecord:
    return ReviewRecord(
        id=row.id,
        dataset_id=row.dataset_id,
        sample_id=row.sample_id,
        reviewer=row.reviewer,
        answers=row.answers,
        decision=row.decision,
        reason=row.reason,
        edited=row.edited,
        adjudication=row.adjudication,
        current=row.current,
        created_at=row.created_at,
        replaced_at=row.replaced_at,
        idempotency_key=row.idempotency_key,
    )


async def write_review(
    database: Database,
    review: NewReview,
    *,
    content: dict[str, Any] | None,
    decide: Decide,
    now: float,
) -> ReviewWrite:
    """Write ``review`` (replacing the reviewer's current one of the sample), apply its
    content edit, and decide the sample's state, in one transaction."""
    async with database.write() as conn:
        await _lock_dataset(conn, review.dataset_id)
        sample = await _get_sample(conn, review.dataset_id, review.sample_id)
        if sample is None or sample.deleted_at is not None:
            return ReviewWrite(None, sample)
        mine = [reviews.c.sample_id == review.sample_id, reviews.c.reviewer == review.reviewer]
        if review.idempotency_key is not None:
            query = select(reviews).where(
                *mine, reviews.c.idempotency_key == review.idempotency_key
            )
            found = (await conn.execute(query)).first()
            if found is not None:
                same = _review(found)
                edits = content is not None and content != sample.content
                if not _same(same, review) or (edits and not same.edited):
                    return ReviewWrite(None, sample, sample.review_state, key_reused=True)
                return ReviewWrite(same, sample, sample.review_state)
        query = select(reviews).where(*mine, reviews.c.current.is_(True))
        current_row = (await conn.execute(query)).first()
        current = _review(current_row) if current_row is not None else None
        unchanged = content is None or content == sample.content
        if current is not None and unchanged and _same(current, review):
            return ReviewWrite(current, sample, sample.review_state)
        edited = False
        if not unchanged:
            assert content is not None
            outcome = await edit_sample_in(
                conn,
                review.dataset_id,
                review.sample_id,
                {"content": content},
                changed_by=review.reviewer,
                now=now,
            )
            if outcome.duplicate_of is not None or outcome.deleted or outcome.record is None:
                return ReviewWrite(None, sample, sample.review_state, edit=outcome)
            edited = True
        if current is not None:
            await conn.execute(
                update(reviews)
                .where(reviews.c.id == current.id)
                .values(current=False, replaced_at=now)
            )
        row: dict[str, Any] = {
            "id": new_review_id(),
            "dataset_id": review.dataset_id,
            "sample_id": review.sample_id,
            "reviewer": review.reviewer,
            "answers": review.answers,
            "decision": review.decision,
            "reason": review.reason,
            "edited": edited,
            "adjudication": review.adjudication,
            "current": True,
            "idempotency_key": review.idempotency_key,
            "created_at": now,
            "replaced_at": None,
        }
        await conn.execute(insert(reviews).values(**row))
        await conn.execute(
            delete(review_claims).where(
                review_claims.c.sample_id == review.sample_id,
                review_claims.c.reviewer == review.reviewer,
            )
        )
        settings = await _settings(conn, review.dataset_id)
        state = await _decide_sample(conn, review.sample_id, settings, decide)
        completed = None
        if state in FINAL_STATES and sample.review_state not in FINAL_STATES:
            completed = await _completed(conn, review.dataset_id)
        record = await _get_sample(conn, review.dataset_id, review.sample_id)
    return ReviewWrite(
        ReviewRecord(**row),
        record,
        state,
        created=True,
        completed=completed,
    )


def _same(stored: ReviewRecord, review: NewReview) -> bool:
    return (stored.answers, stored.reason, stored.adjudication) == (
        review.answers,
        review.reason,
        review.adjudication,
    )


async def _decide_sample(
    conn: AsyncConnection, sample_id: str, settings: ReviewSettings, decide: Decide
) -> str:
    query = (
        select(reviews.c.decision, reviews.c.edited, reviews.c.adjudication)
        .where(reviews.c.sample_id == sample_id, reviews.c.current.is_(True))
        .order_by(reviews.c.seq)
    )
    verdicts = [Verdict(*row) for row in await conn.execute(query)]
    state = decide(verdicts, settings)
    await conn.execute(
        update(samples)
        .where(samples.c.id == sample_id)
        .values(review_state=state, review_count=_counted(verdicts))
    )
    return state


async def _completed(conn: AsyncConnection, dataset_id: str) -> dict[str, int] | None:
    """The live samples per state when none needs a review any more; else None."""
    counts = await _state_counts(conn, dataset_id)
    if any(counts.get(state, 0) for state in counts if state not in FINAL_STATES):
        return None
    return counts


async def _state_counts(conn: AsyncConnection, dataset_id: str) -> dict[str, int]:
    query = (
        select(samples.c.review_state, func.count())
        .where(samples.c.dataset_id == dataset_id, samples.c.deleted_at.is_(None))
        .group_by(samples.c.review_state)
    )
    return {row[0]: int(row[1]) for row in await conn.execute(query)}


async def sample_reviews(
    database: Database, sample_id: str, *, current_only: bool = True
) -> list[ReviewRecord]:
    """A sample's reviews, oldest first: the current ones, or every one ever written."""
    query = select(reviews).where(reviews.c.sample_id == sample_id).order_by(reviews.c.seq)
    if current_only:
        query = query.where(reviews.c.current.is_(True))
    async with database.read() as conn:
        return [_review(row) for row in await conn.execute(query)]


async def dataset_reviews(database: Database, dataset_id: str) -> list[ReviewRecord]:
    """Every current review of the dataset's live samples, oldest first (for agreement)."""
    query = (
        select(reviews)
        .join(samples, samples.c.id == reviews.c.sample_id)
        .where(
            reviews.c.dataset_id == dataset_id,
            reviews.c.current.is_(True),
            samples.c.deleted_at.is_(None),
        )
        .order_by(reviews.c.seq)
    )
    async with database.read() as conn:
        return [_review(row) for row in await conn.execute(query)]


async def reviewed_by(database: Database, sample_ids: Sequence[str], reviewer: str) -> set[str]:
    """Which of ``sample_ids`` ``reviewer`` has a current review of."""
    if not sample_ids:
        return set()
    query = select(reviews.c.sample_id).where(
        reviews.c.sample_id.in_(list(sample_ids)),
        reviews.c.reviewer == reviewer,
        reviews.c.current.is_(True),
    )
    async with database.read() as conn:
        return set((await conn.execute(query)).scalars())


# -- gold --------------------------------------------------------------------------------------


async def put_gold(
    database: Database,
    dataset_id: str,
    sample_id: str,
    answers: dict[str, Any],
    *,
    set_by: str | None,
    now: float,
) -> GoldRecord:
    row = {"answers": answers, "set_by": set_by, "set_at": now}
    statement = upsert_insert(database.dialect)(review_gold).values(
        sample_id=sample_id, dataset_id=dataset_id, **row
    )
    async with database.write() as conn:
        await conn.execute(statement.on_conflict_do_update(index_elements=["sample_id"], set_=row))
    return GoldRecord(sample_id, answers, set_by, now)


async def delete_gold(database: Database, sample_id: str) -> bool:
    async with database.write() as conn:
        result = await conn.execute(delete(review_gold).where(review_gold.c.sample_id == sample_id))
    return bool(result.rowcount)


async def gold_answers(database: Database, dataset_id: str) -> dict[str, GoldRecord]:
    """The dataset's gold samples' expected answers, by sample id."""
    query = select(review_gold).where(review_gold.c.dataset_id == dataset_id)
    async with database.read() as conn:
        return {
            row.sample_id: GoldRecord(row.sample_id, row.answers, row.set_by, row.set_at)
            for row in await conn.execute(query)
        }


# -- progress and the queue page ---------------------------------------------------------------


async def review_progress(database: Database, dataset_id: str, *, now: float) -> Progress:
    """Live samples per review state, and per reviewer their current reviews (approvals,
    rejections, adjudications), live reservations and assignments."""
    approve = func.sum(case((reviews.c.decision == "approve", 1), else_=0))
    adjudicated = func.sum(case((reviews.c.adjudication.is_(True), 1), else_=0))
    by_reviewer = (
        select(reviews.c.reviewer, func.count(), approve, adjudicated)
        .where(reviews.c.dataset_id == dataset_id, reviews.c.current.is_(True))
        .group_by(reviews.c.reviewer)
    )
    reserved = func.sum(case((review_claims.c.expires_at > now, 1), else_=0))
    assigned = func.sum(case((review_claims.c.assigned.is_(True), 1), else_=0))
    claims = (
        select(review_claims.c.reviewer, reserved, assigned)
        .where(review_claims.c.dataset_id == dataset_id)
        .group_by(review_claims.c.reviewer)
    )
    found: dict[str, dict[str, int]] = {}
    async with database.read() as conn:
        counts = await _state_counts(conn, dataset_id)
        for reviewer, total, approvals, adjudications in await conn.execute(by_reviewer):
            found.setdefault(reviewer, {}).update(
                reviews=int(total),
                approvals=int(approvals or 0),
                rejections=int(total) - int(approvals or 0),
                adjudications=int(adjudications or 0),
            )
        for reviewer, open_, held in await conn.execute(claims):
            found.setdefault(reviewer, {}).update(
                open_reservations=int(open_ or 0), assigned=int(held or 0)
            )
    people = [ReviewerCounts(reviewer, **values) for reviewer, values in sorted(found.items())]
    return Progress(counts, people)


@dataclass(frozen=True, slots=True)
class QueueRow:
    sample_id: str
    topic: str | None
    sample_type: str | None
    created_at: float
    review_state: str
    review_count: int
    claims: list[Claim]


async def queue_page(
    database: Database,
    dataset_id: str,
    *,
    states: Sequence[str],
    after: str | None,
    limit: int,
    now: float,
) -> tuple[list[QueueRow], bool] | None:
    """A page of live samples in creation order (``states``: in those review states) with
    their live claims, and whether more follow; None: ``after`` is no sample of it."""
    where: list[ColumnElement[bool]] = [
        samples.c.dataset_id == dataset_id,
        samples.c.deleted_at.is_(None),
    ]
    if states:
        where.append(samples.c.review_state.in_(list(states)))
    columns = (
        samples.c.seq,
        samples.c.id,
        samples.c.topic,
        samples.c.sample_type,
        samples.c.created_at,
        samples.c.review_state,
        samples.c.review_count,
    )
    async with database.read() as conn:
        if after is not None:
            cursor = await conn.scalar(
                select(samples.c.seq).where(
                    samples.c.dataset_id == dataset_id, samples.c.id == after
                )
            )
            if cursor is None:
                return None
            where.append(samples.c.seq > cursor)
        query = select(*columns).where(*where).order_by(samples.c.seq).limit(limit + 1)
        rows = list((await conn.execute(query)).all())[: limit + 1]
        page = rows[:limit]
        held: dict[str, list[Claim]] = {}
        if page:
            claims = select(review_claims).where(
                review_claims.c.sample_id.in_([row.id for row in page]), _live_claim(now)
            )
            for claim in await conn.execute(claims.order_by(review_claims.c.reviewer)):
                held.setdefault(claim.sample_id, []).append(
                    Claim(claim.sample_id, claim.reviewer, claim.assigned, claim.expires_at)
                )
    items = [
        QueueRow(
            sample_id=row.id,
            topic=row.topic,
            sample_type=row.sample_type,
            created_at=row.created_at,
            review_state=row.review_state,
            review_count=row.review_count,
            claims=held.get(row.id, []),
        )
        for row in page
    ]
    return items, len(rows) > limit
