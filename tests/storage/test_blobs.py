"""The database blob store: chunked round trips, replacement, deletion, incomplete blobs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from datamill.errors import StorageError
from datamill.storage.blobs import DatabaseBlobStore
from datamill.storage.schema import DEFAULT_PROJECT_ID, blob_chunks, blobs


@pytest.fixture
def store(database) -> DatabaseBlobStore:
    return DatabaseBlobStore(database, chunk_size=4)


async def pieces(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        await asyncio.sleep(0)
        yield part


async def read(store: DatabaseBlobStore, blob_id: str) -> list[bytes]:
    return [chunk async for chunk in store.read(blob_id)]


async def stored_rows(database) -> tuple[int, int]:
    async with database.read() as conn:
        return (
            await conn.scalar(select(func.count()).select_from(blobs)),
            await conn.scalar(select(func.count()).select_from(blob_chunks)),
        )


async def test_round_trip_across_chunk_boundaries(store, database):
    parts = (b"a", b"bcdefghij", b"", b"kl", b"mnop", b"q")
    size = await store.write("b1", pieces(*parts), project_id=DEFAULT_PROJECT_ID)

    assert size == 17
    chunks = await read(store, "b1")
    assert b"".join(chunks) == b"abcdefghijklmnopq"
    # Stored in chunk_size pieces, whatever sizes the source yielded.
    assert chunks == [b"abcd", b"efgh", b"ijkl", b"mnop", b"q"]
    async with database.read() as conn:
        row = (await conn.execute(select(blobs).where(blobs.c.id == "b1"))).one()
    assert (row.size, row.chunks, row.complete) == (17, 5, True)

    assert await store.write("b2", pieces(b"12345678"), project_id=DEFAULT_PROJECT_ID) == 8
    assert await read(store, "b2") == [b"1234", b"5678"]  # no empty last chunk


async def test_empty_blob(store):
    assert await store.write("empty", pieces(), project_id=DEFAULT_PROJECT_ID) == 0
    assert await read(store, "empty") == []


async def test_write_replaces_an_earlier_blob(store, database):
    await store.write("b1", pieces(b"old content that is long"), project_id=DEFAULT_PROJECT_ID)
    await store.write("b1", pieces(b"new"), project_id=DEFAULT_PROJECT_ID)

    assert await read(store, "b1") == [b"new"]
    assert await stored_rows(database) == (1, 1)


async def test_delete(store, database):
    await store.write("b1", pieces(b"123456"), project_id=DEFAULT_PROJECT_ID)
    await store.write("b2", pieces(b"keep"), project_id=DEFAULT_PROJECT_ID)

    await store.delete("b1")
    await store.delete("never-written")

    with pytest.raises(StorageError, match="blob b1 is missing or incomplete"):
        await read(store, "b1")
    assert await read(store, "b2") == [b"keep"]
    assert await stored_rows(database) == (1, 1)


async def test_a_large_blob_is_deleted_a_few_chunks_per_transaction(store, database, monkeypatch):
    await store.write("big", pieces(b"x" * 4 * 40), project_id=DEFAULT_PROJECT_ID)
    await store.write("small", pieces(b"keep"), project_id=DEFAULT_PROJECT_ID)
    writes = 0
    real_write = database.write

    def counted(**options):
        nonlocal writes
        writes += 1
        return real_write(**options)

    monkeypatch.setattr(database, "write", counted)
    await store.delete("big")
    monkeypatch.undo()

    assert writes >= 40 // 4 + 1  # not one transaction for all 40 chunks
    assert await stored_rows(database) == (1, 1)
    assert await read(store, "small") == [b"keep"]
    with pytest.raises(StorageError):
        await read(store, "big")


async def test_a_blob_being_written_is_not_served(store, database):
    more = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"first chunk "
        await more.wait()
        yield b"and the rest"

    writer = asyncio.create_task(store.write("b1", slow(), project_id=DEFAULT_PROJECT_ID))
    for _ in range(200):  # until the first chunk is stored
        await asyncio.sleep(0.01)
        if await _chunk_count(database, "b1"):
            break
    assert await _chunk_count(database, "b1")

    with pytest.raises(StorageError, match="incomplete"):
        await read(store, "b1")

    more.set()
    assert await writer == 24
    assert b"".join(await read(store, "b1")) == b"first chunk and the rest"


async def _chunk_count(database, blob_id: str) -> int:
    async with database.read() as conn:
        return await conn.scalar(
            select(func.count()).select_from(blob_chunks).where(blob_chunks.c.blob_id == blob_id)
        )


async def test_a_lost_chunk_raises(store, database):
    await store.write("b1", pieces(b"123456789"), project_id=DEFAULT_PROJECT_ID)
    async with database.write() as conn:
        await conn.execute(blob_chunks.delete().where(blob_chunks.c.seq == 1))

    chunks = store.read("b1")
    assert await anext(chunks) == b"1234"
    with pytest.raises(StorageError, match="lost chunk 1"):
        await anext(chunks)


async def test_a_writer_whose_source_fails_leaves_no_blob(store, database):
    await store.write("b1", pieces(b"the previous version"), project_id=DEFAULT_PROJECT_ID)

    async def failing() -> AsyncIterator[bytes]:
        yield b"0123456789"
        raise ValueError("upload interrupted")

    with pytest.raises(ValueError, match="upload interrupted"):
        await store.write("b1", failing(), project_id=DEFAULT_PROJECT_ID)

    assert await stored_rows(database) == (0, 0)
    with pytest.raises(StorageError):
        await read(store, "b1")


async def test_a_cancelled_writer_leaves_no_blob(store, database):
    started = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"12345"
            started.set()
            await asyncio.sleep(0.01)

    writer = asyncio.create_task(store.write("b1", endless(), project_id=DEFAULT_PROJECT_ID))
    await started.wait()
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer

    assert await stored_rows(database) == (0, 0)
