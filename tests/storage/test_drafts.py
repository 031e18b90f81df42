"""Output drafts: the final part of a running batch's files, stored chunk by chunk, with
one owner at a time and a take-over that fences out late extensions."""

from __future__ import annotations

from sqlalchemy import select

from datamill.protocol.batches import BatchStatus
from datamill.storage import drafts
from datamill.storage.batches import claim_finalization
from datamill.storage.drafts import OutputDraft
from datamill.storage.leasing import lease_requests
from datamill.storage.results import record_results
from datamill.storage.schema import blob_chunks
from tests.storage.conftest import NOW, make_result


def empty_draft(batch_id: str, owner: str = "w1", kind: str = "output") -> OutputDraft:
    return OutputDraft(
        batch_id=batch_id,
        kind=kind,
        blob_id=f"file-{batch_id[-8:]}-{kind}",
        owner=owner,
        chunks=0,
        through_line=-1,
        carry=b"",
        lines=0,
        size=0,
    )


async def stored_chunks(database, blob_id: str) -> list[bytes]:
    async with database.read() as conn:
        rows = await conn.execute(
            select(blob_chunks.c.data)
            .where(blob_chunks.c.blob_id == blob_id)
            .order_by(blob_chunks.c.seq)
        )
        return [bytes(data) for data in rows.scalars()]


async def test_the_first_unfinished_line_follows_pending_leased_and_done(database, make_batch):
    batch = await make_batch(10)
    first = drafts.first_unfinished_line
    assert await first(database, batch.id) == 0

    await lease_requests(database, batch_id=batch.id, worker_id="w", limit=4, now=NOW)
    assert await first(database, batch.id) == 0  # leased, not finished
    await record_results(database, [make_result(batch, 0), make_result(batch, 1)], now=NOW)
    assert await first(database, batch.id) == 2
    await record_results(database, [make_result(batch, 2), make_result(batch, 3)], now=NOW)
    assert await first(database, batch.id) == 4  # the first pending one

    await lease_requests(database, batch_id=batch.id, worker_id="w", limit=6, now=NOW)
    done = [make_result(batch, line, ok=line != 5) for line in (4, 5, 6, 8, 9)]
    await record_results(database, done, now=NOW)
    assert await first(database, batch.id) == 7  # one straggler holds the prefix back
    await record_results(database, [make_result(batch, 7)], now=NOW)
    assert await first(database, batch.id) is None


async def test_a_draft_starts_once_and_only_while_the_batch_runs(database, make_batch):
    batch = await make_batch(3)
    draft = empty_draft(batch.id)

    assert await drafts.start_draft(database, draft, project_id="proj_default", now=NOW)
    assert not await drafts.start_draft(
        database, empty_draft(batch.id, owner="w2"), project_id="proj_default", now=NOW
    )
    assert (await drafts.get_draft(database, batch.id, "output")) == draft

    validating = await make_batch(3, status=BatchStatus.validating)
    assert not await drafts.start_draft(
        database, empty_draft(validating.id), project_id="proj_default", now=NOW
    )
    assert await drafts.get_draft(database, validating.id, "output") is None


async def test_extensions_store_chunks_and_state_together(database, make_batch):
    batch = await make_batch(3)
    draft = empty_draft(batch.id)
    await drafts.start_draft(database, draft, project_id="proj_default", now=NOW)

    first = draft.extended([b"aaaa", b"bbbb"], carry=b"cc", through_line=4, lines=5)
    assert await drafts.save_extension(database, draft, first, [b"aaaa", b"bbbb"])
    second = first.extended([b"ccdd"], carry=b"e", through_line=6, lines=2)
    assert await drafts.save_extension(database, first, second, [b"ccdd"])

    stored = await drafts.get_draft(database, batch.id, "output")
    assert stored == second
    assert (stored.chunks, stored.carry, stored.lines, stored.size) == (3, b"e", 7, 13)
    assert await stored_chunks(database, draft.blob_id) == [b"aaaa", b"bbbb", b"ccdd"]

    # A writer that read the draft before the last extension stores nothing.
    stale = first.extended([b"zzzz"], carry=b"", through_line=9, lines=1)
    assert not await drafts.save_extension(database, first, stale, [b"zzzz"])
    assert await stored_chunks(database, draft.blob_id) == [b"aaaa", b"bbbb", b"ccdd"]


async def test_a_take_over_fences_out_the_old_owner(database, make_batch):
    batch = await make_batch(3)
    draft = empty_draft(batch.id)
    await drafts.start_draft(database, draft, project_id="proj_default", now=NOW)

    taken = await drafts.take_over_draft(database, batch.id, "output", owner="finalizer")

    assert taken is not None
    assert taken.owner == "finalizer"
    late = draft.extended([b"late"], carry=b"", through_line=2, lines=3)
    assert not await drafts.save_extension(database, draft, late, [b"late"])
    assert await stored_chunks(database, draft.blob_id) == []
    assert await drafts.take_over_draft(database, batch.id, "errors", owner="f") is None


async def test_a_batch_that_stopped_running_takes_no_more_chunks(database, make_batch):
    batch = await make_batch(2)
    draft = empty_draft(batch.id)
    await drafts.start_draft(database, draft, project_id="proj_default", now=NOW)
    await lease_requests(database, batch_id=batch.id, worker_id="w", limit=2, now=NOW)
    await record_results(database, [make_result(batch, 0), make_result(batch, 1)], now=NOW)
    assert await claim_finalization(database, batch.id, worker_id="f", now=NOW)

    after = draft.extended([b"xxxx"], carry=b"", through_line=1, lines=2)
    assert not await drafts.save_extension(database, draft, after, [b"xxxx"])


async def test_deleting_a_batchs_drafts(database, make_batch):
    batch = await make_batch(2)
    for kind in ("output", "errors"):
        draft = empty_draft(batch.id, kind=kind)
        await drafts.start_draft(database, draft, project_id="proj_default", now=NOW)

    await drafts.delete_drafts(database, batch.id)

    assert await drafts.get_draft(database, batch.id, "output") is None
    assert await drafts.get_draft(database, batch.id, "errors") is None
