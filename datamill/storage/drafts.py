"""Output drafts: a running batch's output and error files, written while it runs.

A draft is the first part of a file: the complete 1 MiB chunks of its blob, plus the bytes
rendered after the last of them (``carry``), holding every line up to ``through_line``. The
lines of a batch's file are final up to its first line without a result, so a worker can
write that part while later requests are still out, and finalization only renders the rest.

One worker extends a draft (its ``owner``); each extension is one transaction that first
updates the draft row, on condition that the owner and chunk count are still what it read,
then adds the chunks. Finalization takes the draft over by setting itself as owner, which
waits for an extension in progress (the row lock) and fences out later ones. A draft never
holds anything that finalization would write differently: a file's bytes depend only on its
results, and results never change once recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import and_, delete, exists, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from datamill.storage.database import Database
from datamill.storage.schema import batches, blob_chunks, blobs, output_drafts, requests


@dataclass(frozen=True, slots=True)
class OutputDraft:
    batch_id: str
    kind: str  # output | errors
    blob_id: str
    owner: str
    chunks: int  # complete chunks in the blob
    through_line: int  # every line up to this one is in the chunks or the carry
    carry: bytes  # rendered bytes after the last complete chunk
    lines: int  # lines in the chunks and the carry
    size: int  # bytes in the chunks and the carry

    def extended(
        self, chunks: Sequence[bytes], *, carry: bytes, through_line: int, lines: int
    ) -> OutputDraft:
        """The draft after ``chunks`` were completed and ``lines`` more lines rendered."""
        added = sum(len(chunk) for chunk in chunks) + len(carry) - len(self.carry)
        return replace(
            self,
            chunks=self.chunks + len(chunks),
            carry=carry,
            through_line=through_line,
            lines=self.lines + lines,
            size=self.size + added,
        )


async def first_unfinished_line(database: Database, batch_id: str) -> int | None:
    """The first line of the batch with no result yet (pending or leased); None when every
    request has one. Both lookups use partial indexes: pending rows by line, and the few
    leased rows of every batch."""
    async with database.read() as conn:
        pending = await conn.scalar(
            select(requests.c.line)
            .where(requests.c.batch_id == batch_id, requests.c.state == literal("pending"))
            .order_by(requests.c.line)
            .limit(1)
        )
        leased = await conn.scalar(
            select(requests.c.line)
            .where(requests.c.state == literal("leased"), requests.c.batch_id == batch_id)
            .order_by(requests.c.line)
            .limit(1)
        )
    found = [line for line in (pending, leased) if line is not None]
    return min(found) if found else None


async def get_draft(database: Database, batch_id: str, kind: str) -> OutputDraft | None:
    async with database.read() as conn:
        return await _read_draft(conn, batch_id, kind)


async def _read_draft(conn: AsyncConnection, batch_id: str, kind: str) -> OutputDraft | None:
    query = select(output_drafts).where(
        output_drafts.c.batch_id == batch_id, output_drafts.c.kind == kind
    )
    row = (await conn.execute(query)).first()
    return _draft(row) if row is not None else None


async def start_draft(
    database: Database, draft: OutputDraft, *, project_id: str, now: float
) -> bool:
    """Create an empty draft and its (incomplete) blob, only while the batch is in progress;
    False when the batch has moved on or another worker started one first."""
    running = exists().where(batches.c.id == draft.batch_id, batches.c.status == "in_progress")
    taken = exists().where(
        output_drafts.c.batch_id == draft.batch_id, output_drafts.c.kind == draft.kind
    )
    async with database.write() as conn:
        created = await conn.execute(
            insert(output_drafts).from_select(
                [column.name for column in output_drafts.c],
                select(
                    *(
                        literal(value, column.type)
                        for column, value in zip(output_drafts.c, _values(draft), strict=True)
                    )
                ).where(running, ~taken),
            )
        )
        if not created.rowcount:
            return False
        # Leftovers of an earlier attempt under the same id (file ids derive from batch ids).
        await conn.execute(delete(blob_chunks).where(blob_chunks.c.blob_id == draft.blob_id))
        await conn.execute(delete(blobs).where(blobs.c.id == draft.blob_id))
        await conn.execute(
            blobs.insert().values(
                id=draft.blob_id, project_id=project_id, created_at=now, complete=False
            )
        )
    return True


async def save_extension(
    database: Database, before: OutputDraft, after: OutputDraft, chunks: Sequence[bytes]
) -> bool:
    """Store ``chunks`` (the blob's next ones) and the draft's new state ``after`` in one
    transaction; False, storing nothing, when the draft was taken over or extended since
    ``before`` was read, or its batch is no longer in progress."""
    running = exists().where(batches.c.id == before.batch_id, batches.c.status == "in_progress")
    async with database.write(relaxed=True) as conn:
        # The draft row first: its lock orders this against a take-over.
        moved = await conn.execute(
            update(output_drafts)
            .where(
                and_(
                    output_drafts.c.batch_id == before.batch_id,
                    output_drafts.c.kind == before.kind,
                    output_drafts.c.owner == before.owner,
                    output_drafts.c.chunks == before.chunks,
                    running,
                )
            )
            .values(
                chunks=after.chunks,
                through_line=after.through_line,
                carry=after.carry,
                lines=after.lines,
                size=after.size,
            )
        )
        if not moved.rowcount:
            return False
        if chunks:
            await conn.execute(
                blob_chunks.insert(),
                [
                    {"blob_id": before.blob_id, "seq": before.chunks + n, "data": data}
                    for n, data in enumerate(chunks)
                ],
            )
    return True


async def take_over_draft(
    database: Database, batch_id: str, kind: str, *, owner: str
) -> OutputDraft | None:
    """Make ``owner`` (the finalizer) the draft's owner and return it as it stands; None
    when the batch has no draft of this kind."""
    async with database.write() as conn:
        await conn.execute(
            update(output_drafts)
            .where(output_drafts.c.batch_id == batch_id, output_drafts.c.kind == kind)
            .values(owner=owner)
        )
        return await _read_draft(conn, batch_id, kind)


async def delete_drafts(database: Database, batch_id: str) -> None:
    """Forget a batch's drafts (its files are complete)."""
    async with database.write() as conn:
        await conn.execute(delete(output_drafts).where(output_drafts.c.batch_id == batch_id))


def _values(draft: OutputDraft) -> tuple[object, ...]:
    return (
        draft.batch_id,
        draft.kind,
        draft.blob_id,
        draft.owner,
        draft.chunks,
        draft.through_line,
        draft.carry,
        draft.lines,
        draft.size,
    )


def _draft(row: Any) -> OutputDraft:
    return OutputDraft(
        batch_id=row.batch_id,
        kind=row.kind,
        blob_id=row.blob_id,
        owner=row.owner,
        chunks=row.chunks,
        through_line=row.through_line,
        carry=bytes(row.carry),
        lines=row.lines,
        size=row.size,
    )
