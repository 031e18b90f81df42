"""The review repository: settings, reviews, gold answers, and each sample's review state
(the queue's claims on samples are `review_queue`'s).

Every write runs in one transaction holding the dataset's insert lock
(`samples._lock_dataset`: SQLite's single writer, PostgreSQL's advisory lock), so a review's
write is atomic on both stores, and in turn with the queue's claims. Guarantees:

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

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from datamill.ids import new_review_id
from datamill.storage.database import Database, upsert_insert
from datamill.storage.sample_edits import EditOutcome, edit_sample_in
from datamill.storage.samples import SampleRecord, _get_sample, _lock_dataset
from datamill.storage.schema import review_claims, review_gold, review_settings, reviews, samples

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
    replaced: bool = False  # created, replacing the reviewer's earlier review of the sample
    edit: EditOutcome | None = None
    key_reused: bool = False
    completed: dict[str, int] | None = None


@dataclass(frozen=True, slots=True)
class ReviewedSample:
    sample_type: str | None
    review_state: str


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
            # The edit of the review replaced still stands in the content: it stays counted.
            edited = edited or current.edited
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
        replaced=current is not None,
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


async def reviewed_samples(database: Database, dataset_id: str) -> dict[str, ReviewedSample]:
    """The live samples of the dataset with a current review: their type and review state
    (for agreement: which schema's questions, and the final decision)."""
    query = (
        select(samples.c.id, samples.c.sample_type, samples.c.review_state)
        .where(
            samples.c.dataset_id == dataset_id,
            samples.c.deleted_at.is_(None),
            samples.c.id.in_(
                select(reviews.c.sample_id).where(
                    reviews.c.dataset_id == dataset_id, reviews.c.current.is_(True)
                )
            ),
        )
        .order_by(samples.c.seq)
    )
    async with database.read() as conn:
        return {
            row.id: ReviewedSample(row.sample_type, row.review_state)
            for row in await conn.execute(query)
        }


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


async def gold_answers(
    database: Database, dataset_id: str, sample_ids: Sequence[str] | None = None
) -> dict[str, GoldRecord]:
    """The dataset's gold samples' expected answers (of ``sample_ids``; None: all), by
    sample id."""
    query = select(review_gold).where(review_gold.c.dataset_id == dataset_id)
    if sample_ids is not None:
        query = query.where(review_gold.c.sample_id.in_(list(sample_ids)))
    async with database.read() as conn:
        return {
            row.sample_id: GoldRecord(row.sample_id, row.answers, row.set_by, row.set_at)
            for row in await conn.execute(query)
        }
