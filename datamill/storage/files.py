"""The files repository: metadata rows; contents live in the blob store under the file id."""

from __future__ import annotations

from dataclasses import fields
from typing import Literal

from sqlalchemy import delete, func, select

from datamill.storage.database import Database
from datamill.storage.pagination import _fetch_page
from datamill.storage.records import FileRecord, from_row
from datamill.storage.schema import files


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


async def expired_file_ids(database: Database, *, now: float, limit: int) -> list[str]:
    """Files whose ``expires_at`` has passed, oldest first, across all projects."""
    async with database.read() as conn:
        rows = await conn.execute(
            select(files.c.id)
            .where(files.c.expires_at.is_not(None), files.c.expires_at <= now)
            .order_by(files.c.expires_at)
            .limit(limit)
        )
        return list(rows.scalars())


async def delete_files(database: Database, file_ids: list[str]) -> int:
    """Delete file rows by id, whatever their project (retention)."""
    if not file_ids:
        return 0
    async with database.write() as conn:
        result = await conn.execute(delete(files).where(files.c.id.in_(file_ids)))
    return int(result.rowcount or 0)
