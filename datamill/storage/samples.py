"""The samples repository: a dataset's samples, deduplicated by content, soft-deleted.

Every public function takes the `Database` and runs in a transaction of its own; the
helpers taking a connection (``_insert_samples``, ``_count_cells``, ``_lock_dataset``) are
composed by the functions that need several statements at once (`import_samples` here, a
generation job's quota transaction in `storage.generation`). Guarantees:

- A dataset holds at most one live sample per `normalized_hash` of content (a partial
  unique index). `insert_samples` inserts the others and answers None for duplicates,
  also between two transactions racing with the same content: writers into one dataset
  take turns (`_lock_dataset`), so a transaction that counts its quota and then inserts
  sees every sample committed before it.
- Deleting only sets ``deleted_at``; restoring clears it, except where a live sample has
  the same content meanwhile (that one is kept, the deleted one stays deleted).
- Filters, full-text search (`storage.search`) and random sampling give the same answers
  on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import AsyncIterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, bindparam, exists, func, select, text, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from datamill.ids import new_sample_id
from datamill.nlp.canonical import normalized_hash, search_text
from datamill.protocol.datasets import SampleStatus, Visibility
from datamill.storage.database import Database, Dialect, upsert_insert
from datamill.storage.schema import datasets, samples
from datamill.storage.search import SearchQuery, search_condition

# The first key of the two-key advisory locks on datasets (any constant; the two-key space
# is apart from the one-key locks of migrations).
_LOCK_NAMESPACE = 7_263_512
# Rows per INSERT: 20 columns each stays far below both stores' bound-parameter limits.
INSERT_CHUNK = 500
# Provenance fields kept as columns (stats add them up); the rest stays in the JSON.
_USAGE_FIELDS = ("input_tokens", "output_tokens", "cost")
# The longest ``provenance.batch_id`` or ``job_id`` its indexed column holds
# (`protocol.datasets.SampleProvenance` refuses longer ones).
MAX_PROVENANCE_ID = 256


@dataclass(frozen=True, slots=True)
class NewSample:
    """A sample to insert. ``provenance`` is JSON (see `protocol.datasets.SampleProvenance`);
    its ``input_tokens``, ``output_tokens`` and ``cost`` are summed by `sample_stats`.
    ``content_hash`` is computed when not given (a caller that deduplicated already passes
    its own `normalized_hash`). Text fields must be storable text (no NUL character:
    `protocol.datasets.check_plain_text`); the JSON ones may hold anything JSON can."""

    content: dict[str, Any]
    topic: str | None = None
    sample_type: str | None = None
    status: str = SampleStatus.accepted.value
    model: str | None = None
    provenance: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    content_hash: str | None = None


@dataclass(frozen=True, slots=True)
class SampleRecord:
    seq: int  # creation order within the store
    id: str
    dataset_id: str
    topic: str | None
    sample_type: str | None
    status: str
    content: dict[str, Any]
    content_hash: str
    model: str | None
    provenance: dict[str, Any]  # with input_tokens, output_tokens and cost
    metadata: dict[str, Any] | None
    created_at: float
    deleted_at: float | None
    review_state: str = "unreviewed"  # `protocol.reviews.ReviewState`
    review_count: int = 0  # current reviews, adjudications aside


@dataclass(frozen=True, slots=True)
class SampleFilter:
    """Which samples of a dataset: every field given must match."""

    topic: str | None = None
    sample_type: str | None = None
    status: str | None = None
    model: str | None = None
    created_after: float | None = None  # inclusive
    created_before: float | None = None  # exclusive
    visibility: Visibility = Visibility.exclude
    search: SearchQuery | None = None
    ids: tuple[str, ...] = ()
    batch_id: str | None = None  # ``provenance.batch_id``
    job_id: str | None = None  # ``provenance.job_id``
    review_states: tuple[str, ...] = ()  # any of these review states


@dataclass(frozen=True, slots=True)
class SampleStats:
    samples: int
    deleted_samples: int
    by_topic: list[tuple[str | None, int]]
    by_sample_type: list[tuple[str | None, int]]
    by_status: list[tuple[str | None, int]]
    by_model: list[tuple[str | None, int]]
    cells: list[tuple[str | None, str | None, int]]
    input_tokens: int
    output_tokens: int
    cost: float


@dataclass(frozen=True, slots=True)
class RestoreOutcome:
    restored: int
    skipped: int  # left deleted: a live sample has the same content
    skipped_ids: list[str] = field(default_factory=list)  # the first 100 of them


@dataclass(frozen=True, slots=True)
class ImportedSamples:
    """What `import_samples` stored: per sample offered, its new id or None (a duplicate),
    and the live sample holding each duplicate's content hash."""

    ids: list[str | None]
    holders: dict[str, str]


@dataclass(frozen=True, slots=True)
class SampleRestore:
    """What `restore_sample` did: the sample as it is now, and when its content was live
    elsewhere (so it stayed deleted), the live sample holding it."""

    record: SampleRecord
    live_duplicate: str | None = None


def _record(row: Row[Any]) -> SampleRecord:
    provenance = dict(row.provenance or {})
    provenance.update(input_tokens=row.input_tokens, output_tokens=row.output_tokens, cost=row.cost)
    return SampleRecord(
        seq=row.seq,
        id=row.id,
        dataset_id=row.dataset_id,
        topic=row.topic,
        sample_type=row.sample_type,
        status=row.status,
        content=row.content,
        content_hash=row.content_hash,
        model=row.model,
        provenance=provenance,
        metadata=row.metadata,
        created_at=row.created_at,
        deleted_at=row.deleted_at,
        review_state=row.review_state,
        review_count=row.review_count,
    )


# Every column but the search text, which only the index reads.
_COLUMNS = [column for column in samples.c if column.name not in {"text", "random_key"}]


def _row_values(dataset_id: str, sample: NewSample, now: float) -> dict[str, Any]:
    provenance = dict(sample.provenance or {})
    usage = {name: provenance.pop(name, None) or 0 for name in _USAGE_FIELDS}
    return {
        "id": new_sample_id(),
        "dataset_id": dataset_id,
        "topic": sample.topic,
        "sample_type": sample.sample_type,
        "status": sample.status,
        "content": sample.content,
        "text": search_text(sample.content),
        "content_hash": sample.content_hash or normalized_hash(sample.content),
        "model": sample.model,
        "provenance": provenance or None,
        "metadata": sample.metadata,
        "input_tokens": int(usage["input_tokens"]),
        "output_tokens": int(usage["output_tokens"]),
        "cost": float(usage["cost"]),
        "random_key": random.random(),
        "created_at": now,
        "batch_id": _indexed(provenance.get("batch_id")),
        "job_id": _indexed(provenance.get("job_id")),
    }


def _indexed(value: Any) -> str | None:
    """A provenance id as its column holds it: a string that fits, else nothing."""
    return value if isinstance(value, str) and len(value) <= MAX_PROVENANCE_ID else None


async def _lock_dataset(conn: AsyncConnection, dataset_id: str) -> None:
    """Hold the dataset's insert lock until the caller's transaction ends.

    Writers into one dataset take turns: counting a quota then inserting up to it is exact,
    and two transactions inserting the same contents never deadlock on each other's rows.
    SQLite's write transactions already take turns (``BEGIN IMMEDIATE``); PostgreSQL takes a
    transaction-scoped advisory lock. Taking it again in the same transaction is a no-op."""
    if conn.dialect.name != "postgresql":
        return
    digest = hashlib.sha256(dataset_id.encode()).digest()
    key = int.from_bytes(digest[:4], "big", signed=True)
    await conn.execute(select(func.pg_advisory_xact_lock(_LOCK_NAMESPACE, key)))


async def insert_samples(
    database: Database, dataset_id: str, rows: Sequence[NewSample], *, now: float
) -> list[str | None]:
    """Insert samples into a dataset, in the order given. Returns, per row, the new
    sample's id, or None when the dataset already has a live sample with the same content
    (an earlier row of ``rows`` included)."""
    async with database.write() as conn:
        return await _insert_samples(conn, dataset_id, rows, now=now)


async def _insert_samples(
    conn: AsyncConnection, dataset_id: str, rows: Sequence[NewSample], *, now: float
) -> list[str | None]:
    """`insert_samples` in the caller's transaction; takes the dataset's `_lock_dataset`
    first."""
    await _lock_dataset(conn, dataset_id)
    if not rows:
        return []
    insert = upsert_insert(conn.dialect.name)
    # DO NOTHING without a target: the live-hash index is partial, and a row that meets it
    # is the duplicate we skip. One statement for every row (SQLAlchemy's "insertmanyvalues"
    # sends them as multi-row VALUES, in order, compiled once).
    statement = insert(samples).on_conflict_do_nothing().returning(samples.c.id)
    values = [_row_values(dataset_id, row, now) for row in rows]
    inserted = set((await conn.execute(statement, values)).scalars())
    return [value["id"] if value["id"] in inserted else None for value in values]


async def import_samples(
    database: Database,
    dataset_id: str,
    chunks: AsyncIterable[Sequence[NewSample]],
    *,
    project_id: str,
    now: float,
) -> ImportedSamples | None:
    """Insert the samples of ``chunks`` into a live dataset of the project, all in one
    transaction: an exception raised by ``chunks`` rolls every chunk back. None (and
    nothing read from ``chunks``) when there is no such live dataset."""
    async with database.write() as conn:
        live = select(datasets.c.id).where(
            datasets.c.id == dataset_id,
            datasets.c.project_id == project_id,
            datasets.c.deleted_at.is_(None),
        )
        if await conn.scalar(live) is None:
            return None
        ids: list[str | None] = []
        duplicates: set[str] = set()
        async for rows in chunks:
            inserted = await _insert_samples(conn, dataset_id, rows, now=now)
            for row, sample_id in zip(rows, inserted, strict=True):
                if sample_id is None:
                    duplicates.add(row.content_hash or normalized_hash(row.content))
            ids += inserted
        # Writers into the dataset take turns (the insert took its lock): each duplicate's
        # holder is still live.
        holders = await _live_ids_by_hash(conn, dataset_id, sorted(duplicates))
    return ImportedSamples(ids, holders)


async def analyze_samples(database: Database) -> None:
    """Refresh PostgreSQL's statistics of ``samples`` after a bulk insert. Until autovacuum
    gets to it (a minute or more), the planner does not know the rows are there and reads
    the live-cells index for every filter: 400 ms instead of 1 ms a page on 100,000
    samples. SQLite's planner does without."""
    if database.dialect == "postgresql":
        async with database.write() as conn:
            await conn.execute(text("ANALYZE samples"))


async def _live_ids_by_hash(
    conn: AsyncConnection, dataset_id: str, hashes: Sequence[str]
) -> dict[str, str]:
    """The live sample holding each content hash, for hashes that have one."""
    found: dict[str, str] = {}
    for start in range(0, len(hashes), INSERT_CHUNK):
        chunk = list(hashes[start : start + INSERT_CHUNK])
        query = select(samples.c.content_hash, samples.c.id).where(
            samples.c.dataset_id == dataset_id,
            samples.c.deleted_at.is_(None),
            samples.c.content_hash.in_(chunk),
        )
        found.update({row.content_hash: row.id for row in await conn.execute(query)})
    return found


def _conditions(
    dialect: Dialect, dataset_id: str, where: SampleFilter
) -> list[ColumnElement[bool]]:
    conditions = [samples.c.dataset_id == dataset_id]
    if where.visibility == Visibility.exclude:
        conditions.append(samples.c.deleted_at.is_(None))
    elif where.visibility == Visibility.only:
        conditions.append(samples.c.deleted_at.is_not(None))
    for name in ("topic", "sample_type", "status", "model"):
        value = getattr(where, name)
        if value is not None:
            conditions.append(samples.c[name] == value)
    if where.created_after is not None:
        conditions.append(samples.c.created_at >= where.created_after)
    if where.created_before is not None:
        conditions.append(samples.c.created_at < where.created_before)
    if where.ids:
        conditions.append(samples.c.id.in_(where.ids))
    for name in ("batch_id", "job_id"):  # provenance's, copied to indexed columns
        value = getattr(where, name)
        if value is not None:
            conditions.append(samples.c[name] == value)
    if where.review_states:
        conditions.append(samples.c.review_state.in_(where.review_states))
    if where.search is not None:
        conditions.append(search_condition(dialect, where.search))
    return conditions


def _dialect(conn: AsyncConnection) -> Dialect:
    return "postgresql" if conn.dialect.name == "postgresql" else "sqlite"


async def get_sample(database: Database, dataset_id: str, sample_id: str) -> SampleRecord | None:
    """A sample of the dataset, deleted or not."""
    async with database.read() as conn:
        return await _get_sample(conn, dataset_id, sample_id)


async def _get_sample(
    conn: AsyncConnection, dataset_id: str, sample_id: str
) -> SampleRecord | None:
    query = select(*_COLUMNS).where(samples.c.dataset_id == dataset_id, samples.c.id == sample_id)
    row = (await conn.execute(query)).first()
    return _record(row) if row else None


async def batch_request_ids(database: Database, dataset_id: str, batch_id: str) -> set[str]:
    """The ``provenance.request_id`` of the dataset's samples (deleted ones too) whose
    provenance names the batch: the requests a batch import brought in already."""
    request_id = samples.c.provenance["request_id"].as_string()
    query = select(request_id).where(
        samples.c.dataset_id == dataset_id, samples.c.batch_id == batch_id
    )
    async with database.read() as conn:
        return {value for value in (await conn.execute(query)).scalars() if value is not None}


async def list_samples(
    database: Database,
    dataset_id: str,
    where: SampleFilter,
    *,
    after: str | None = None,
    after_seq: int | None = None,
    limit: int = 100,
    order: Literal["asc", "desc"] = "desc",
) -> tuple[list[SampleRecord], bool]:
    """A page of matching samples in creation order (``desc``: newest first) and whether
    more follow. The cursor is ``after`` (the last id seen, which may have been deleted or
    changed since) or ``after_seq`` (its ``seq``). An unknown ``after`` gives an empty page."""
    query: Select[Any] = select(*_COLUMNS).where(*_conditions(database.dialect, dataset_id, where))
    async with database.read() as conn:
        if after is not None:
            cursor = select(samples.c.seq).where(
                samples.c.dataset_id == dataset_id, samples.c.id == after
            )
            after_seq = await conn.scalar(cursor)
            if after_seq is None:
                return [], False
        if after_seq is not None:
            query = query.where(
                samples.c.seq < after_seq if order == "desc" else samples.c.seq > after_seq
            )
        query = query.order_by(samples.c.seq.desc() if order == "desc" else samples.c.seq.asc())
        rows = (await conn.execute(query.limit(limit + 1))).all()
    return [_record(row) for row in rows[:limit]], len(rows) > limit


async def random_samples(
    database: Database, dataset_id: str, where: SampleFilter, count: int
) -> list[SampleRecord]:
    """Up to ``count`` matching samples picked at random, in random order.

    Each sample carries a random key drawn at insert. This reads the ids of a window of
    `random_window(count)` matching samples in key order from a random point (wrapping
    around: an index range, not a sort of the dataset), then picks ``count`` of them
    uniformly. When no more samples match than the window holds, every subset is equally
    likely; past that a sample's chance depends on the gaps between keys, which makes it
    vary by about 1/sqrt(window) (2% for 2,000) and never by what the sample contains."""
    conditions = _conditions(database.dialect, dataset_id, where)
    window = random_window(count)
    start = random.random()
    ids = select(samples.c.seq).where(*conditions).order_by(samples.c.random_key)
    async with database.read() as conn:
        seqs = list(
            (await conn.execute(ids.where(samples.c.random_key >= start).limit(window))).scalars()
        )
        if len(seqs) < window:
            wrapped = ids.where(samples.c.random_key < start).limit(window - len(seqs))
            seqs += (await conn.execute(wrapped)).scalars()
        chosen = random.sample(seqs, min(count, len(seqs)))
        rows = (await conn.execute(select(*_COLUMNS).where(samples.c.seq.in_(chosen)))).all()
    by_seq = {row.seq: row for row in rows}
    return [_record(by_seq[seq]) for seq in chosen]


def random_window(count: int) -> int:
    """How many ids `random_samples` reads to pick ``count``."""
    return max(2000, 10 * count)


async def count_samples(database: Database, dataset_id: str, where: SampleFilter) -> int:
    async with database.read() as conn:
        return await _count_samples(conn, dataset_id, where)


async def _count_samples(conn: AsyncConnection, dataset_id: str, where: SampleFilter) -> int:
    query = select(func.count()).select_from(samples)
    return int(await conn.scalar(query.where(*_conditions(_dialect(conn), dataset_id, where))) or 0)


async def delete_samples(
    database: Database, dataset_id: str, where: SampleFilter, *, now: float
) -> int:
    """Soft-delete the matching live samples; returns how many. Takes `_lock_dataset`."""
    live = replace(where, visibility=Visibility.exclude)
    async with database.write() as conn:
        await _lock_dataset(conn, dataset_id)
        result = await conn.execute(
            update(samples)
            .where(*_conditions(database.dialect, dataset_id, live))
            .values(deleted_at=now)
            .execution_options(synchronize_session=False)
        )
    return int(result.rowcount or 0)


async def delete_duplicates(
    database: Database, dataset_id: str, reasons: Mapping[str, dict[str, Any]], *, now: float
) -> int:
    """Soft-delete the live samples ``reasons`` names, each with its reason recorded in its
    metadata under ``"dedup"`` (restoring it keeps the record); samples deleted meanwhile
    are left as they are. Returns how many were deleted. Takes `_lock_dataset`."""
    ids = list(reasons)
    deleted = 0
    statement = (
        update(samples)
        .where(samples.c.id == bindparam("sample_id"), samples.c.deleted_at.is_(None))
        .values(deleted_at=now, metadata=bindparam("new_metadata", type_=samples.c.metadata.type))
        .execution_options(synchronize_session=False)
    )
    async with database.write() as conn:
        await _lock_dataset(conn, dataset_id)
        for start in range(0, len(ids), INSERT_CHUNK):
            query = select(samples.c.id, samples.c.metadata).where(
                samples.c.dataset_id == dataset_id,
                samples.c.deleted_at.is_(None),
                samples.c.id.in_(ids[start : start + INSERT_CHUNK]),
            )
            rows = [
                {
                    "sample_id": row.id,
                    "new_metadata": {**(row.metadata or {}), "dedup": reasons[row.id]},
                }
                for row in await conn.execute(query)
            ]
            if rows:
                await conn.execute(statement, rows)
                deleted += len(rows)
    return deleted


async def restore_samples(
    database: Database, dataset_id: str, where: SampleFilter
) -> RestoreOutcome:
    """Restore the matching deleted samples, except those whose content a live sample of
    the dataset has (or another restored one: the oldest of them is restored). Takes
    `_lock_dataset`: an insert of the same content cannot slip in between."""
    async with database.write() as conn:
        return await _restore_samples(conn, dataset_id, where)


async def restore_sample(
    database: Database, dataset_id: str, sample_id: str
) -> SampleRestore | None:
    """Restore one sample of the dataset (a live one is left as it is); None when the
    dataset has no such sample. When a live sample has its content, it stays deleted and
    `SampleRestore.live_duplicate` names that sample."""
    async with database.write() as conn:
        record = await _get_sample(conn, dataset_id, sample_id)
        if record is None or record.deleted_at is None:
            return None if record is None else SampleRestore(record)
        outcome = await _restore_samples(conn, dataset_id, SampleFilter(ids=(sample_id,)))
        if outcome.skipped:
            live = await _live_ids_by_hash(conn, dataset_id, [record.content_hash])
            return SampleRestore(record, live.get(record.content_hash))
        restored = await _get_sample(conn, dataset_id, sample_id)
    return SampleRestore(restored or record)


async def _restore_samples(
    conn: AsyncConnection, dataset_id: str, where: SampleFilter
) -> RestoreOutcome:
    await _lock_dataset(conn, dataset_id)
    deleted = replace(where, visibility=Visibility.only)
    conditions = _conditions(_dialect(conn), dataset_id, deleted)
    live = samples.alias("live")
    content_is_live = exists().where(
        live.c.dataset_id == samples.c.dataset_id,
        live.c.content_hash == samples.c.content_hash,
        live.c.deleted_at.is_(None),
    )
    chosen = (
        select(func.min(samples.c.seq))
        .where(*conditions, ~content_is_live)
        .group_by(samples.c.content_hash)
        # Not correlated with the UPDATE's own `samples`: this reads the table as it is.
        .correlate(None)
    )
    candidates = await _count_samples(conn, dataset_id, deleted)
    result = await conn.execute(
        update(samples)
        .where(samples.c.seq.in_(chosen.scalar_subquery()))
        .values(deleted_at=None)
        .execution_options(synchronize_session=False)
    )
    restored = int(result.rowcount or 0)
    skipped_ids: list[str] = []
    if candidates > restored:
        query = select(samples.c.id).where(*conditions).order_by(samples.c.seq).limit(100)
        skipped_ids = list((await conn.execute(query)).scalars())
    return RestoreOutcome(restored, candidates - restored, skipped_ids)


def _value_order(value: str | None) -> tuple[bool, str]:
    return value is None, value or ""


def _largest_first(entry: tuple[str | None, int]) -> tuple[int, tuple[bool, str]]:
    return -entry[1], _value_order(entry[0])


async def count_cells(
    database: Database, dataset_id: str, *, status: str = SampleStatus.accepted.value
) -> dict[tuple[str | None, str | None], int]:
    """Live samples with ``status`` per (topic, sample_type): a generation job's coverage."""
    async with database.read() as conn:
        return await _count_cells(conn, dataset_id, status=status)


async def _count_cells(
    conn: AsyncConnection, dataset_id: str, *, status: str = SampleStatus.accepted.value
) -> dict[tuple[str | None, str | None], int]:
    query = (
        select(samples.c.topic, samples.c.sample_type, func.count())
        .where(
            samples.c.dataset_id == dataset_id,
            samples.c.deleted_at.is_(None),
            samples.c.status == status,
        )
        .group_by(samples.c.topic, samples.c.sample_type)
    )
    return {(row[0], row[1]): int(row[2]) for row in await conn.execute(query)}


async def sample_types(database: Database, dataset_id: str) -> list[str | None]:
    """The sample types a dataset's samples have (deleted ones' too), None among them when
    some have none: what an export resolves task schemas for (the type index answers)."""
    query = select(samples.c.sample_type).where(samples.c.dataset_id == dataset_id).distinct()
    async with database.read() as conn:
        return [row[0] for row in await conn.execute(query)]


async def count_live_samples(database: Database, dataset_ids: Sequence[str]) -> dict[str, int]:
    """Live samples per dataset, for the datasets given (absent: none)."""
    if not dataset_ids:
        return {}
    query = (
        select(samples.c.dataset_id, func.count())
        .where(samples.c.dataset_id.in_(list(dataset_ids)), samples.c.deleted_at.is_(None))
        .group_by(samples.c.dataset_id)
    )
    async with database.read() as conn:
        return {row[0]: int(row[1]) for row in await conn.execute(query)}


async def sample_stats(database: Database, dataset_id: str) -> SampleStats:
    """Counts of a dataset's live samples by topic, type, status and model (largest
    first), its accepted samples per cell, and their tokens and cost: one pass over the
    live samples, grouped by all four at once, then added up here."""
    columns = (samples.c.topic, samples.c.sample_type, samples.c.status, samples.c.model)
    query = (
        select(
            *columns,
            func.count(),
            func.sum(samples.c.input_tokens),
            func.sum(samples.c.output_tokens),
            func.sum(samples.c.cost),
        )
        .where(samples.c.dataset_id == dataset_id, samples.c.deleted_at.is_(None))
        .group_by(*columns)
    )
    by: list[Counter[str | None]] = [Counter() for _ in columns]
    cells: Counter[tuple[str | None, str | None]] = Counter()
    total = input_tokens = output_tokens = 0
    cost = 0.0
    deleted_query = select(func.count()).where(
        samples.c.dataset_id == dataset_id, samples.c.deleted_at.is_not(None)
    )
    async with database.read() as conn:
        grouped = (await conn.execute(query)).all()
        deleted = await conn.scalar(deleted_query)
    for topic, kind, status, model, count, tokens_in, tokens_out, spent in grouped:
        for counter, value in zip(by, (topic, kind, status, model), strict=True):
            counter[value] += count
        if status == SampleStatus.accepted:
            cells[topic, kind] += count
        total += count
        input_tokens += int(tokens_in or 0)
        output_tokens += int(tokens_out or 0)
        cost += float(spent or 0)
    ordered_cells = sorted(
        ((topic, kind, n) for (topic, kind), n in cells.items()),
        key=lambda cell: (-cell[2], _value_order(cell[0]), _value_order(cell[1])),
    )
    topics, kinds, statuses, models = (sorted(c.items(), key=_largest_first) for c in by)
    return SampleStats(
        samples=total,
        deleted_samples=int(deleted or 0),
        by_topic=topics,
        by_sample_type=kinds,
        by_status=statuses,
        by_model=models,
        cells=ordered_cells,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost=cost,
    )
