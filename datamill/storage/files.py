"""The files repository: metadata rows; contents live in the blob store under the file id."""

from __future__ import annotations

from dataclasses import fields
from typing import Literal

from sqlalchemy import and_, delete, func, or_, select

from datamill.protocol.batches import BatchStatus
from datamill.protocol.files import FilePurpose
from datamill.storage.database import Database
from datamill.storage.pagination import _fetch_page
from datamill.storage.records import FileRecord, from_row
from datamill.storage.schema import batches, files


def file_values(record: FileRecord) -> dict[str, object]:
    return {f.name: getattr(record, f.name) for f in fields(record)}


async def insert_file(database: Database, record: FileRecord) -> None:
    async with database.write() as conn:
        await conn.execute(files.insert().values(**file_values(record)))


async def get_file(database: Database, file_id: str, *, project_id: str) -> FileRecord | None:
    async with database.read() as conn:
        row = (
            await conn.execute(
                select(files).where(files.c.id == file_id, files.c.project_id == project_id)
            )
        ).first()
    return from_row(FileRecord, row) if row else None


async def list_files(
    database: Database,
    *,
    project_id: str,
    after: str | None,
    limit: int,
    order: Literal["asc", "desc"],
    purpose: str | None,
) -> tuple[list[FileRecord], bool]:
    where = [files.c.project_id == project_id]
    if purpose is not None:
        where.append(files.c.purpose == purpose)
    async with database.read() as conn:
        rows, has_more = await _fetch_page(
            conn, files, where=where, after=after, limit=limit, order=order
        )
    return [from_row(FileRecord, row) for row in rows], has_more


async def find_file_by_sha256(
    database: Database, sha256: str, *, project_id: str, purpose: str
) -> FileRecord | None:
    async with database.read() as conn:
        row = (
            await conn.execute(
                select(files)
                .where(
                    files.c.sha256 == sha256,
                    files.c.project_id == project_id,
                    files.c.purpose == purpose,
                )
                .order_by(files.c.seq.desc())
                .limit(1)
            )
        ).first()
    return from_row(FileRecord, row) if row else None


async def delete_file(database: Database, file_id: str, *, project_id: str) -> bool:
    async with database.write() as conn:
        result = await conn.execute(
            delete(files).where(files.c.id == file_id, files.c.project_id == project_id)
        )
    return bool(result.rowcount)


async def count_files(database: Database, *, project_id: str | None = None) -> int:
    """Files of one project or all, expired ones not yet deleted included."""
    query = select(func.count()).select_from(files)
    if project_id is not None:
        query = query.where(files.c.project_id == project_id)
    async with database.read() as conn:
        return int(await conn.scalar(query) or 0)


# A file an unfinished batch names: its input (validation reads it), or an output file it
# was given. Such a file is never deleted by retention, however old or expired.
_UNFINISHED = [status.value for status in BatchStatus if not status.terminal]
_NAMED_BY_UNFINISHED_BATCH = (
    select(batches.c.id)
    .where(
        batches.c.status.in_(_UNFINISHED),
        or_(
            batches.c.input_file_id == files.c.id,
            batches.c.output_file_id == files.c.id,
            batches.c.error_file_id == files.c.id,
        ),
    )
    .exists()
)


async def delete_unneeded_files(
    database: Database, *, now: float, created_before: float | None, limit: int
) -> list[str]:
    """Delete up to ``limit`` file rows, across all projects, oldest first: those past
    their ``expires_at``, and (with ``created_before``) uploads created before it. Returns
    their ids; their blobs are the caller's to delete. A file an unfinished batch names is
    kept: the check runs in the deleting statement, so a batch started meanwhile is seen."""
    due = and_(files.c.expires_at.is_not(None), files.c.expires_at <= now)
    if created_before is not None:
        # A batch's output and error files live as long as the batch asked for
        # (`output_expires_after`), as on OpenAI; retention by age is for uploads.
        uploaded = files.c.purpose != FilePurpose.batch_output.value
        due = or_(due, and_(uploaded, files.c.created_at < created_before))
    doomed = (
        select(files.c.id)
        .where(due, ~_NAMED_BY_UNFINISHED_BATCH)
        .order_by(files.c.seq)
        .limit(limit)
        .scalar_subquery()
    )
    async with database.write() as conn:
        rows = await conn.execute(
            delete(files)
            .where(files.c.id.in_(doomed), ~_NAMED_BY_UNFINISHED_BATCH)
            .returning(files.c.id)
        )
        return list(rows.scalars())
