"""Blob storage for file contents, streamed in and out in chunks.

Blobs live in the database (``blob_chunks``), so a worker on another machine reads inputs and
writes outputs with no shared disk. An object store can stand behind the same `BlobStore`
protocol later. A blob becomes visible only when complete.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import Protocol

from sqlalchemy import delete, select, update

from datamill.errors import StorageError
from datamill.storage.database import Database
from datamill.storage.schema import blob_chunks, blobs

CHUNK_SIZE = 1024 * 1024
_DELETE_CHUNKS = 4  # chunks a large blob's deletion frees per transaction


class BlobStore(Protocol):
    chunk_size: int  # bytes per stored chunk; output drafts write whole chunks

    async def write(self, blob_id: str, data: AsyncIterable[bytes], *, project_id: str) -> int:
        """Store ``data`` under ``blob_id`` (replacing an earlier one); return its size."""
        ...

    async def append(
        self, blob_id: str, data: AsyncIterable[bytes], *, first_seq: int, offset: int
    ) -> int:
        """Complete a blob whose first chunks are written already; return its size."""
        ...

    def read(self, blob_id: str) -> AsyncIterator[bytes]:
        """Yield the blob's bytes in order."""
        ...

    async def delete(self, blob_id: str) -> None: ...


class DatabaseBlobStore:
    """Blobs as 1 MiB rows; each chunk is its own short transaction.

    A blob is usable once marked complete. That last commit is an ordinary (durable) one and
    flushes the relaxed commits of its chunks with it."""

    def __init__(self, database: Database, *, chunk_size: int = CHUNK_SIZE) -> None:
        self._db = database
        self.chunk_size = chunk_size

    async def write(self, blob_id: str, data: AsyncIterable[bytes], *, project_id: str) -> int:
        await self.delete(blob_id)
        async with self._db.write(relaxed=True) as conn:
            await conn.execute(
                blobs.insert().values(
                    id=blob_id, project_id=project_id, created_at=time.time(), complete=False
                )
            )
        try:
            return await self._fill(blob_id, data, first_seq=0, offset=0)
        except BaseException:
            await self.delete(blob_id)
            raise

    async def append(
        self, blob_id: str, data: AsyncIterable[bytes], *, first_seq: int, offset: int
    ) -> int:
        """Complete a blob whose first ``first_seq`` chunks (``offset`` bytes) are written
        already (an output draft): ``data`` follows them. Chunks past those are replaced.
        On failure the written chunks stay, so the completion can be tried again."""
        async with self._db.write(relaxed=True) as conn:
            await conn.execute(
                delete(blob_chunks).where(
                    blob_chunks.c.blob_id == blob_id, blob_chunks.c.seq >= first_seq
                )
            )
        return await self._fill(blob_id, data, first_seq=first_seq, offset=offset)

    async def _fill(
        self, blob_id: str, data: AsyncIterable[bytes], *, first_seq: int, offset: int
    ) -> int:
        """Write ``data`` as chunks from ``first_seq`` on, then mark the blob complete."""
        size = offset
        seq = first_seq
        pending = bytearray()
        async for piece in data:
            pending += piece
            while len(pending) >= self.chunk_size:
                await self._put(blob_id, seq, bytes(pending[: self.chunk_size]))
                del pending[: self.chunk_size]
                seq += 1
            size += len(piece)
        if pending:
            await self._put(blob_id, seq, bytes(pending))
            seq += 1
        async with self._db.write() as conn:
            await conn.execute(
                update(blobs)
                .where(blobs.c.id == blob_id)
                .values(size=size, chunks=seq, complete=True)
            )
        return size

    async def _put(self, blob_id: str, seq: int, chunk: bytes) -> None:
        async with self._db.write(relaxed=True) as conn:
            await conn.execute(blob_chunks.insert().values(blob_id=blob_id, seq=seq, data=chunk))

    async def read(self, blob_id: str) -> AsyncIterator[bytes]:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(blobs.c.chunks, blobs.c.complete).where(blobs.c.id == blob_id)
                )
            ).first()
        if row is None or not row.complete:
            raise StorageError(f"blob {blob_id} is missing or incomplete")
        for seq in range(row.chunks):
            async with self._db.read() as conn:
                data = await conn.scalar(
                    select(blob_chunks.c.data).where(
                        blob_chunks.c.blob_id == blob_id, blob_chunks.c.seq == seq
                    )
                )
            if data is None:
                raise StorageError(f"blob {blob_id} lost chunk {seq}")
            yield bytes(data)

    async def delete(self, blob_id: str) -> None:
        """Delete the blob, a few chunks per transaction when it is large: one transaction
        freeing 200 MiB would hold SQLite's write lock for long. The blob is marked
        incomplete first, so a blob half deleted (a crash) is never served."""
        async with self._db.write() as conn:
            chunks = await conn.scalar(
                update(blobs)
                .where(blobs.c.id == blob_id)
                .values(complete=False)
                .returning(blobs.c.chunks)
            )
            if chunks is None or chunks <= _DELETE_CHUNKS:
                await conn.execute(delete(blob_chunks).where(blob_chunks.c.blob_id == blob_id))
                await conn.execute(delete(blobs).where(blobs.c.id == blob_id))
                return
        doomed = (
            select(blob_chunks.c.seq)
            .where(blob_chunks.c.blob_id == blob_id)
            .order_by(blob_chunks.c.seq)
            .limit(_DELETE_CHUNKS)
            .scalar_subquery()
        )
        gone = _DELETE_CHUNKS
        while gone == _DELETE_CHUNKS:
            async with self._db.write() as conn:
                result = await conn.execute(
                    delete(blob_chunks).where(
                        blob_chunks.c.blob_id == blob_id, blob_chunks.c.seq.in_(doomed)
                    )
                )
            gone = int(result.rowcount or 0)
        async with self._db.write() as conn:
            await conn.execute(delete(blob_chunks).where(blob_chunks.c.blob_id == blob_id))
            await conn.execute(delete(blobs).where(blobs.c.id == blob_id))
