"""Samples changed one at a time: added, edited, a past version restored, with every version
kept in ``sample_history``.

Each public function runs in a write transaction of its own, holding the dataset's insert
lock (`storage.samples._lock_dataset`): a content checked unique stays so until the change
commits. Guarantees:

- A sample's history is lazy: a sample nobody changed has none (generation and imports
  write no second row per sample), and it reads as one version, the sample as it is. The
  first change writes version 1 (the sample as created, ``changed_by`` None unless it was
  added by `add_sample`) and then version 2, the change; each later change adds one.
- An edit or a restore never makes two live samples of a dataset share a content: it is
  refused (`EditOutcome.duplicate_of`) and nothing is written.
- A change that changes nothing writes no version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from datamill.nlp.canonical import normalized_hash, search_text
from datamill.storage.database import Database
from datamill.storage.samples import (
    NewSample,
    SampleRecord,
    _get_sample,
    _insert_samples,
    _live_ids_by_hash,
    _lock_dataset,
)
from datamill.storage.schema import sample_history, samples

# The fields a change may set, in the order a version lists them.
EDITABLE = ("content", "topic", "sample_type", "metadata")

Action = Literal["created", "edited", "restored"]


@dataclass(frozen=True, slots=True)
class SampleVersion:
    """One version of a sample: what it held, who made it (a key id; None: local mode or
    the sample's creation by generation or import), when, and which fields it changed."""

    version: int
    action: str
    restored_from: int | None
    topic: str | None
    sample_type: str | None
    content: dict[str, Any]
    metadata: dict[str, Any] | None
    changed_by: str | None
    changed_at: float
    changed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EditOutcome:
    """What a change did: the sample as it is now (None: the dataset has no such sample),
    or why nothing was written: the sample is deleted, or a live sample holds the content
    (``duplicate_of``), or the version to restore does not exist."""

    record: SampleRecord | None
    deleted: bool = False
    duplicate_of: str | None = None
    no_version: bool = False


async def add_sample(
    database: Database, dataset_id: str, sample: NewSample, *, changed_by: str | None, now: float
) -> tuple[str | None, str | None]:
    """Insert one sample and its version 1. Returns (the new id, None), or (None, the live
    sample holding its content) for a duplicate."""
    async with database.write() as conn:
        [sample_id] = await _insert_samples(conn, dataset_id, [sample], now=now)
        if sample_id is None:
            content_hash = sample.content_hash or normalized_hash(sample.content)
            holders = await _live_ids_by_hash(conn, dataset_id, [content_hash])
            return None, holders.get(content_hash)
        values = {name: getattr(sample, name) for name in EDITABLE}
        await _write_version(conn, sample_id, 1, "created", values, changed_by, now)
    return sample_id, None


async def edit_sample(
    database: Database,
    dataset_id: str,
    sample_id: str,
    values: dict[str, Any],
    *,
    changed_by: str | None,
    now: float,
) -> EditOutcome:
    """Set the `EDITABLE` fields ``values`` holds on a live sample, keeping the previous
    version."""
    async with database.write() as conn:
        return await _change(conn, dataset_id, sample_id, values, "edited", None, changed_by, now)


async def edit_sample_in(
    conn: AsyncConnection,
    dataset_id: str,
    sample_id: str,
    values: dict[str, Any],
    *,
    changed_by: str | None,
    now: float,
) -> EditOutcome:
    """`edit_sample` in the caller's write transaction (a review's edit, written with the
    review); takes the dataset's insert lock."""
    return await _change(conn, dataset_id, sample_id, values, "edited", None, changed_by, now)


async def restore_version(
    database: Database,
    dataset_id: str,
    sample_id: str,
    version: int,
    *,
    changed_by: str | None,
    now: float,
) -> EditOutcome:
    """Bring back a past version of a live sample, itself recorded as a new version."""
    async with database.write() as conn:
        await _lock_dataset(conn, dataset_id)
        record = await _get_sample(conn, dataset_id, sample_id)
        if record is None:
            return EditOutcome(None)
        versions = await _versions(conn, record)
        wanted = next((v for v in versions if v.version == version), None)
        if wanted is None:
            return EditOutcome(record, no_version=True)
        values = {name: getattr(wanted, name) for name in EDITABLE}
        return await _change(
            conn, dataset_id, sample_id, values, "restored", version, changed_by, now
        )


async def sample_versions(
    database: Database, dataset_id: str, sample_id: str
) -> list[SampleVersion] | None:
    """A sample's versions, oldest first (None: the dataset has no such sample)."""
    async with database.read() as conn:
        record = await _get_sample(conn, dataset_id, sample_id)
        if record is None:
            return None
        return await _versions(conn, record)


async def _change(
    conn: AsyncConnection,
    dataset_id: str,
    sample_id: str,
    values: dict[str, Any],
    action: Action,
    restored_from: int | None,
    changed_by: str | None,
    now: float,
) -> EditOutcome:
    await _lock_dataset(conn, dataset_id)
    record = await _get_sample(conn, dataset_id, sample_id)
    if record is None:
        return EditOutcome(None)
    if record.deleted_at is not None:
        return EditOutcome(record, deleted=True)
    current = _fields(record)
    if all(current[name] == value for name, value in values.items()):
        return EditOutcome(record)
    row: dict[str, Any] = dict(values)
    if "content" in values and values["content"] != record.content:
        content_hash = normalized_hash(values["content"])
        holders = await _live_ids_by_hash(conn, dataset_id, [content_hash])
        holder = holders.get(content_hash)
        if holder is not None and holder != sample_id:
            return EditOutcome(record, duplicate_of=holder)
        row.update(content_hash=content_hash, text=search_text(values["content"]))
    latest = await conn.scalar(
        select(func.max(sample_history.c.version)).where(sample_history.c.sample_id == sample_id)
    )
    if latest is None:
        await _write_version(conn, sample_id, 1, "created", current, None, record.created_at)
        latest = 1
    await conn.execute(update(samples).where(samples.c.id == sample_id).values(**row))
    changed = {**current, **values}
    await _write_version(
        conn, sample_id, latest + 1, action, changed, changed_by, now, restored_from
    )
    return EditOutcome(await _get_sample(conn, dataset_id, sample_id))


def _fields(record: SampleRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in EDITABLE}


async def _write_version(
    conn: AsyncConnection,
    sample_id: str,
    version: int,
    action: Action,
    values: dict[str, Any],
    changed_by: str | None,
    now: float,
    restored_from: int | None = None,
) -> None:
    await conn.execute(
        insert(sample_history).values(
            sample_id=sample_id,
            version=version,
            action=action,
            restored_from=restored_from,
            changed_by=changed_by,
            changed_at=now,
            **{name: values[name] for name in EDITABLE},
        )
    )


async def _versions(conn: AsyncConnection, record: SampleRecord) -> list[SampleVersion]:
    query = (
        select(sample_history)
        .where(sample_history.c.sample_id == record.id)
        .order_by(sample_history.c.version)
    )
    rows = (await conn.execute(query)).all()
    if not rows:
        return [
            SampleVersion(
                version=1,
                action="created",
                restored_from=None,
                changed_by=None,
                changed_at=record.created_at,
                changed=(),
                **_fields(record),
            )
        ]
    versions: list[SampleVersion] = []
    previous: Row[Any] | None = None
    for row in rows:
        changed = (
            ()
            if previous is None
            else tuple(name for name in EDITABLE if getattr(row, name) != getattr(previous, name))
        )
        versions.append(
            SampleVersion(
                version=row.version,
                action=row.action,
                restored_from=row.restored_from,
                topic=row.topic,
                sample_type=row.sample_type,
                content=row.content,
                metadata=row.metadata,
                changed_by=row.changed_by,
                changed_at=row.changed_at,
                changed=changed,
            )
        )
        previous = row
    return versions
