"""Recording results: first answer wins, counters match the results table, pages in order."""

from __future__ import annotations

import asyncio
import random

from sqlalchemy import func, select

from datamill.storage.batches import get_batch
from datamill.storage.leasing import lease_requests
from datamill.storage.results import iter_results, record_results
from datamill.storage.schema import results
from tests.storage.conftest import NOW, make_result, request_rows


async def table_totals(database, batch_id: str) -> dict[str, int]:
    """What the results table holds for one batch, in the batch counters' terms."""
    query = select(
        func.count().filter(results.c.ok.is_(True)),
        func.count().filter(results.c.ok.is_(False)),
        func.coalesce(func.sum(results.c.input_tokens), 0),
        func.coalesce(func.sum(results.c.cached_tokens), 0),
        func.coalesce(func.sum(results.c.output_tokens), 0),
        func.coalesce(func.sum(results.c.reasoning_tokens), 0),
    ).where(results.c.batch_id == batch_id)
    async with database.read() as conn:
        row = (await conn.execute(query)).one()
    names = ("completed", "failed", "input", "cached", "output", "reasoning")
    return dict(zip(names, (int(v) for v in row), strict=True))


async def batch_totals(database, batch_id: str) -> dict[str, int]:
    batch = await get_batch(database, batch_id)
    return {
        "completed": batch.completed_count,
        "failed": batch.failed_count,
        "input": batch.input_tokens,
        "cached": batch.cached_tokens,
        "output": batch.output_tokens,
        "reasoning": batch.reasoning_tokens,
    }


async def test_records_results_and_moves_the_counters(database, make_batch):
    batch = await make_batch(4)
    await lease_requests(database, batch_id=batch.id, worker_id="w", limit=4, now=NOW)
    empty = await record_results(database, [], now=NOW + 1)
    assert (empty.accepted, empty.duplicates, empty.by_batch) == (0, 0, {})

    outcome = await record_results(
        database,
        [
            make_result(batch, 0, tokens=3),
            make_result(batch, 1, tokens=5),
            make_result(batch, 2, ok=False),
        ],
        now=NOW + 7,
    )

    assert (outcome.accepted, outcome.duplicates) == (3, 0)
    tally = outcome.by_batch[batch.id]
    assert (tally.completed, tally.failed, tally.input_tokens) == (2, 1, 8)
    assert await batch_totals(database, batch.id) == {
        "completed": 2,
        "failed": 1,
        "input": 8,
        "cached": 8,
        "output": 8,
        "reasoning": 8,
    }
    assert await table_totals(database, batch.id) == await batch_totals(database, batch.id)
    assert (await get_batch(database, batch.id)).progress_at == NOW + 7
    rows = await request_rows(database, batch.id)
    assert [(rows[i].state, rows[i].lease_owner) for i in range(4)] == [("done", None)] * 3 + [
        ("leased", "w")
    ]


async def test_recording_the_same_request_twice_keeps_the_first(database, make_batch):
    batch = await make_batch(2)
    await record_results(database, [make_result(batch, 0, tokens=3, body=b"first")], now=NOW)

    again = await record_results(
        database,
        [make_result(batch, 0, tokens=100, body=b"second"), make_result(batch, 1)],
        now=NOW,
    )

    assert (again.accepted, again.duplicates) == (1, 1)
    assert again.by_batch[batch.id].input_tokens == 0
    async with database.read() as conn:
        bodies = (
            await conn.execute(
                select(results.c.body).where(results.c.request_id == batch.request_ids[0])
            )
        ).all()
    assert [bytes(row.body) for row in bodies] == [b"first"]
    assert await batch_totals(database, batch.id) == {
        "completed": 2,
        "failed": 0,
        "input": 3,
        "cached": 3,
        "output": 3,
        "reasoning": 3,
    }


async def test_a_success_after_a_failure_is_dropped(database, make_batch):
    batch = await make_batch(1)
    await record_results(database, [make_result(batch, 0, ok=False)], now=NOW)
    late = await record_results(database, [make_result(batch, 0, ok=True, tokens=9)], now=NOW)

    assert (late.accepted, late.duplicates) == (0, 1)
    assert await batch_totals(database, batch.id) == {
        "completed": 0,
        "failed": 1,
        "input": 0,
        "cached": 0,
        "output": 0,
        "reasoning": 0,
    }
    assert await table_totals(database, batch.id) == await batch_totals(database, batch.id)


async def test_a_duplicate_inside_one_flush_counts_once(database, make_batch):
    batch = await make_batch(1)
    outcome = await record_results(
        database,
        [make_result(batch, 0, tokens=2, body=b"first"), make_result(batch, 0, tokens=5)],
        now=NOW,
    )
    assert (outcome.accepted, outcome.duplicates) == (1, 1)
    assert outcome.by_batch[batch.id].input_tokens == 2
    totals = await batch_totals(database, batch.id)
    assert totals == await table_totals(database, batch.id)
    assert (totals["completed"], totals["input"]) == (1, 2)


async def test_one_flush_may_span_several_batches(database, make_batch):
    first, second = await make_batch(2), await make_batch(2)
    outcome = await record_results(
        database,
        [make_result(first, 0, tokens=1), make_result(second, 1, ok=False, tokens=4)],
        now=NOW,
    )
    assert set(outcome.by_batch) == {first.id, second.id}
    for batch in (first, second):
        assert await table_totals(database, batch.id) == await batch_totals(database, batch.id)
    assert (await get_batch(database, second.id)).failed_count == 1


async def test_racing_recorders_of_overlapping_sets_never_double_count(
    open_database, database, make_batch
):
    batch = await make_batch(120)
    other = await open_database()
    shuffle = random.Random(7)

    def flush(lines: list[int]) -> list:
        lines = list(lines)
        shuffle.shuffle(lines)  # workers flush in completion order, not id order
        return [make_result(batch, line, ok=line % 3 != 0, tokens=line) for line in lines]

    # Every line is recorded by 2 or 3 of the 6 flushes, from two connection pools.
    flushes = [flush([i % 120 for i in range(start, start + 40)]) for start in range(0, 120, 20)]
    flushes += [flush(range(0, 120, 7))]
    outcomes = await asyncio.gather(
        *(
            record_results(database if i % 2 else other, rows, now=NOW)
            for i, rows in enumerate(flushes)
        )
    )

    assert sum(o.accepted for o in outcomes) == 120
    assert sum(o.accepted + o.duplicates for o in outcomes) == sum(len(f) for f in flushes)
    totals = await batch_totals(database, batch.id)
    assert totals == await table_totals(database, batch.id)
    assert totals["completed"] + totals["failed"] == 120
    assert totals["input"] == sum(range(120))


async def test_iter_results_pages_in_line_order(database, make_batch):
    batch = await make_batch(25)
    lines = list(range(25))
    random.Random(3).shuffle(lines)
    for start in range(0, 25, 6):
        await record_results(
            database,
            [make_result(batch, line, ok=line % 5 != 0) for line in lines[start : start + 6]],
            now=NOW,
        )

    pages = [page async for page in iter_results(database, batch.id, ok=True, page_size=4)]
    assert [len(page) for page in pages] == [4, 4, 4, 4, 4]
    ok_lines = [row.line for page in pages for row in page]
    assert ok_lines == [line for line in range(25) if line % 5 != 0]
    assert pages[0][0].custom_id == "c1"
    assert bytes(pages[0][0].body) == b'{"ok": true}'

    failed = [page async for page in iter_results(database, batch.id, ok=False, page_size=4)]
    assert [[row.line for row in page] for page in failed] == [[0, 5, 10, 15], [20]]
    assert failed[0][0].error_code == "server_error"

    assert [page async for page in iter_results(database, "batch_none", ok=True)] == []
