"""The datasets repository: named collections of samples, soft-deleted.

Every public function takes the `Database` and runs in a transaction of its own (the
helpers taking a connection are composed by `storage.generation.create_job`). A name
belongs to at most one live dataset per project: creating, renaming or restoring onto a live
name raises `DatasetNameTaken` and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from datamill.protocol.datasets import Visibility
from datamill.storage.database import Database, upsert_insert
from datamill.storage.schema import datasets


class DatasetNameTaken(Exception):
    """A live dataset of the project already has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass(frozen=True, slots=True)
class DatasetRecord:
    id: str
    project_id: str
    name: str
    description: str | None
    created_at: float
    updated_at: float
    deleted_at: float | None
    task_schema: str | None = None  # the schema of samples whose sample_type names none


def _record(row: Row[Any]) -> DatasetRecord:
    return DatasetRecord(
        id=row.id,
        project_id=row.project_id,
        name=row.name,
        description=row.description,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
        task_schema=row.task_schema,
    )


def _visible(visibility: Visibility) -> list[ColumnElement[bool]]:
    if visibility is Visibility.exclude:
        return [datasets.c.deleted_at.is_(None)]
    if visibility is Visibility.only:
        return [datasets.c.deleted_at.is_not(None)]
    return []


def _the_dataset(
    dataset_id: str, project_id: str, visibility: Visibility
) -> list[ColumnElement[bool]]:
    return [datasets.c.id == dataset_id, datasets.c.project_id == project_id, *_visible(visibility)]


async def insert_dataset(
    database: Database,
    *,
    dataset_id: str,
    project_id: str,
    name: str,
    description: str | None,
    now: float,
    task_schema: str | None = None,
) -> DatasetRecord:
    new = _new(dataset_id, project_id, name, description, now, task_schema)
    async with database.write() as conn:
        return await _insert_dataset(conn, new)


def _new(
    dataset_id: str,
    project_id: str,
    name: str,
    description: str | None,
    now: float,
    task_schema: str | None = None,
) -> DatasetRecord:
    # Created and updated now, not deleted.
    return DatasetRecord(dataset_id, project_id, name, description, now, now, None, task_schema)


async def _insert_dataset(conn: AsyncConnection, new: DatasetRecord) -> DatasetRecord:
    """`insert_dataset` in the caller's transaction: ``new`` is the dataset to store
    (`_new`)."""
    insert = upsert_insert(conn.dialect.name)
    statement = (
        insert(datasets)
        .values(
            id=new.id,
            project_id=new.project_id,
            name=new.name,
            description=new.description,
            task_schema=new.task_schema,
            created_at=new.created_at,
            updated_at=new.updated_at,
        )
        # The live-name index decides between two racing creates; the loser inserts nothing.
        .on_conflict_do_nothing()
        .returning(*datasets.c)
    )
    row = (await conn.execute(statement)).first()
    if row is None:
        raise DatasetNameTaken(new.name)
    return _record(row)


async def get_dataset(
    database: Database,
    dataset_id: str,
    *,
    project_id: str,
    visibility: Visibility = Visibility.exclude,
) -> DatasetRecord | None:
    query = select(datasets).where(*_the_dataset(dataset_id, project_id, visibility))
    async with database.read() as conn:
        row = (await conn.execute(query)).first()
    return _record(row) if row else None


async def find_dataset_by_name(
    database: Database,
    name: str,
    *,
    project_id: str,
    visibility: Visibility = Visibility.exclude,
) -> DatasetRecord | None:
    """The live dataset with this name (or the newest deleted one, or either)."""
    async with database.read() as conn:
        return await _find_dataset_by_name(conn, name, project_id=project_id, visibility=visibility)


async def _find_dataset_by_name(
    conn: AsyncConnection,
    name: str,
    *,
    project_id: str,
    visibility: Visibility = Visibility.exclude,
) -> DatasetRecord | None:
    query = (
        select(datasets)
        .where(datasets.c.name == name, datasets.c.project_id == project_id, *_visible(visibility))
        .order_by(datasets.c.deleted_at.is_(None).desc(), datasets.c.seq.desc())
        .limit(1)
    )
    row = (await conn.execute(query)).first()
    return _record(row) if row else None


async def list_datasets(
    database: Database,
    *,
    project_id: str,
    after: str | None,
    limit: int,
    visibility: Visibility = Visibility.exclude,
) -> tuple[list[DatasetRecord], bool]:
    """A page of datasets, newest first, and whether more follow. ``after`` is the last id
    seen; it may have been deleted since."""
    query = select(datasets).where(datasets.c.project_id == project_id, *_visible(visibility))
    if after is not None:
        cursor = select(datasets.c.seq).where(
            datasets.c.id == after, datasets.c.project_id == project_id
        )
        query = query.where(datasets.c.seq < cursor.scalar_subquery())
    async with database.read() as conn:
        rows = (await conn.execute(query.order_by(datasets.c.seq.desc()).limit(limit + 1))).all()
    return [_record(row) for row in rows[:limit]], len(rows) > limit


async def update_dataset(
    database: Database,
    dataset_id: str,
    *,
    project_id: str,
    values: dict[str, Any],
    now: float,
) -> DatasetRecord | None:
    """Change a live dataset's ``name``, ``description`` and/or ``task_schema``; None when
    there is none."""
    statement = (
        update(datasets)
        .where(*_the_dataset(dataset_id, project_id, Visibility.exclude))
        .values(**values, updated_at=now)
        .returning(*datasets.c)
    )
    async with database.write() as conn:
        row = await _guard_name(conn, statement, values.get("name"))
    return _record(row) if row else None


async def delete_dataset(
    database: Database, dataset_id: str, *, project_id: str, now: float
) -> bool:
    """Hide a live dataset (its samples stay as they are); False when there is none."""
    async with database.write() as conn:
        result = await conn.execute(
            update(datasets)
            .where(*_the_dataset(dataset_id, project_id, Visibility.exclude))
            .values(deleted_at=now, updated_at=now)
        )
    return bool(result.rowcount)


async def restore_dataset(
    database: Database, dataset_id: str, *, project_id: str, now: float
) -> DatasetRecord | None:
    """Bring a deleted dataset back; None when it is not deleted (or unknown)."""
    statement = (
        update(datasets)
        .where(*_the_dataset(dataset_id, project_id, Visibility.only))
        .values(deleted_at=None, updated_at=now)
        .returning(*datasets.c)
    )
    async with database.write() as conn:
        name = await conn.scalar(select(datasets.c.name).where(datasets.c.id == dataset_id))
        row = await _guard_name(conn, statement, name)
    return _record(row) if row else None


async def _guard_name(conn: AsyncConnection, statement: Any, name: str | None) -> Row[Any] | None:
    """Run an UPDATE that may give a dataset a live name; `DatasetNameTaken` when the name
    is taken. In a savepoint: on PostgreSQL a failed statement would end the transaction."""
    try:
        async with conn.begin_nested():
            return (await conn.execute(statement)).first()
    except IntegrityError:
        if name is None:
            raise
        raise DatasetNameTaken(name) from None
