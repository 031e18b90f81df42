"""The review queue's claims on samples: a reviewer's reservations (until they lapse) and
assignments (until they review), leasing-style; and the queue read as pages and progress.

**One claim per call.** `reserve_samples` runs in one write transaction holding the
dataset's insert lock (`samples._lock_dataset`: SQLite's single writer, PostgreSQL's
advisory lock, which review writes take too), so it sees every claim and review committed
before it. It never lets a sample's reviews plus the live claims of other reviewers reach
past the dataset's overlap: reviewers racing for the queue are served one after the other.
A claim row is one per sample and reviewer, and is gone once that reviewer reviews it
(`reviews.write_review`). Lapsed reservations are dropped by the next claim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, exists, func, or_, select, update
from sqlalchemy.engine import Row

from datamill.storage.database import Database, upsert_insert
from datamill.storage.reviews import OPEN_STATES, _settings, _state_counts
from datamill.storage.samples import (
    _COLUMNS,
    SampleFilter,
    SampleRecord,
    _conditions,
    _lock_dataset,
    _record,
)
from datamill.storage.schema import review_claims, reviews, samples


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


# -- claims ----------------------------------------------------------------------------------


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
