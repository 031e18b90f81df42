"""The samples repository on both stores: dedup by content hash (also inside a quota
transaction), filters, cursor pages, random samples, soft delete and restore, stats."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from datamill.ids import new_dataset_id
from datamill.protocol.datasets import Visibility
from datamill.storage import samples as repo
from datamill.storage.database import Database
from datamill.storage.datasets import insert_dataset
from datamill.storage.samples import NewSample, SampleFilter
from datamill.storage.schema import DEFAULT_PROJECT_ID
from datamill.storage.search import parse_search

NOW = 1_700_000_000.0


async def new_dataset(database: Database, name: str = "set") -> str:
    record = await insert_dataset(
        database,
        dataset_id=new_dataset_id(),
        project_id=DEFAULT_PROJECT_ID,
        name=name,
        description=None,
        now=NOW,
    )
    return record.id


async def insert(
    database: Database, dataset_id: str, rows: list[NewSample], *, now: float = NOW
) -> list[str | None]:
    return await repo.insert_samples(database, dataset_id, rows, now=now)


def sample(text_: str, **fields: Any) -> NewSample:
    return NewSample(content={"question": text_, "answer": f"about {text_}"}, **fields)


async def listed(database: Database, dataset_id: str, **where: Any) -> list[str]:
    records, _ = await repo.list_samples(
        database, dataset_id, SampleFilter(**where), limit=1000, order="asc"
    )
    return [r.id for r in records]


async def test_duplicates_by_normalized_content_are_not_inserted(database: Database):
    dataset = await new_dataset(database)
    first = await insert(database, dataset, [sample("What is 2+2?"), sample("Why?")])

    again = await insert(
        database,
        dataset,
        [
            NewSample(content={"answer": "ABOUT  what is 2+2? ", "question": "what is 2+2?"}),
            sample("New one"),
            sample("new ONE"),  # a duplicate of the row before it, in the same call
        ],
    )

    assert all(first)
    assert again[0] is None
    assert again[1] is not None
    assert again[2] is None
    assert await listed(database, dataset) == [*first, again[1]]


async def test_the_same_content_in_two_datasets_is_not_a_duplicate(database: Database):
    one, two = await new_dataset(database, "one"), await new_dataset(database, "two")

    assert all(await insert(database, one, [sample("same")]))
    assert all(await insert(database, two, [sample("same")]))


async def test_insert_samples_works_inside_the_callers_transaction(database: Database):
    dataset = await new_dataset(database)
    await insert(database, dataset, [sample("a", topic="t", sample_type="qa")])

    async def over_quota() -> None:
        async with database.write() as conn:
            await repo._insert_samples(
                conn, dataset, [sample("b", topic="t", sample_type="qa")], now=NOW
            )
            # The caller counts its quota in the same transaction, and sees its own insert.
            assert await repo._count_cells(conn, dataset) == {("t", "qa"): 2}
            raise RuntimeError("over quota: roll back")

    with pytest.raises(RuntimeError, match="quota"):
        await over_quota()

    assert await repo.count_cells(database, dataset) == {("t", "qa"): 1}
    # Rolled back: the same content can go in now.
    assert all(await insert(database, dataset, [sample("b", topic="t", sample_type="qa")]))


async def test_racing_transactions_insert_the_same_content_once(open_database):
    first, second = await open_database(), await open_database()
    dataset = await new_dataset(first)
    rows = [sample(f"q{i}") for i in range(20)]

    results = await asyncio.gather(
        insert(first, dataset, rows), insert(second, dataset, list(reversed(rows)))
    )

    by_content = [results[0][i] or results[1][19 - i] for i in range(20)]
    assert all(by_content)
    assert sum(1 for ids in results for i in ids if i) == 20
    assert len(await listed(first, dataset)) == 20


async def test_a_quota_counted_under_the_dataset_lock_is_exact(open_database):
    first, second = await open_database(), await open_database()
    dataset = await new_dataset(first)

    async def fill_to_one(database: Database, content: str) -> str | None:
        async with database.write() as conn:
            await repo._lock_dataset(conn, dataset)
            if await repo._count_cells(conn, dataset):
                return None
            await asyncio.sleep(0.2)  # the other writer waits at its lock meanwhile
            [sample_id] = await repo._insert_samples(conn, dataset, [sample(content)], now=NOW)
            return sample_id

    outcomes = await asyncio.gather(fill_to_one(first, "one"), fill_to_one(second, "two"))

    assert sorted(outcomes, key=bool) == [None, outcomes[0] or outcomes[1]]
    assert len(await listed(first, dataset)) == 1


async def test_provenance_keeps_tokens_and_cost_and_stats_add_them_up(database: Database):
    dataset = await new_dataset(database)
    provenance = {
        "source": "generation",
        "spec": "faq",
        "spec_version": 3,
        "prompt": [{"role": "user", "content": "Write a question"}],
        "deployment": "groq-llama",
        "batch_id": "batch_1",
        "request_id": "gen-1",
        "input_tokens": 120,
        "output_tokens": 80,
        "cost": 0.25,
    }
    [sample_id] = await insert(
        database, dataset, [sample("x", model="llama", provenance=provenance)]
    )
    await insert(
        database,
        dataset,
        [sample("y", model="llama", provenance={"input_tokens": 1, "cost": 0.5})],
    )

    record = await repo.get_sample(database, dataset, sample_id)
    stats = await repo.sample_stats(database, dataset)

    assert record is not None
    assert record.provenance == provenance
    assert (stats.input_tokens, stats.output_tokens, stats.cost) == (121, 80, 0.75)
    assert stats.by_model == [("llama", 2)]


async def test_filters(database: Database):
    dataset = await new_dataset(database)
    ids = await insert(database, dataset, [sample("a", topic="math", sample_type="qa")], now=10)
    ids += await insert(
        database, dataset, [sample("b", topic="math", sample_type="chat", model="m1")], now=20
    )
    ids += await insert(database, dataset, [sample("c", topic="art", model="m1")], now=30)
    a, b, c = ids

    assert await listed(database, dataset, topic="math") == [a, b]
    assert await listed(database, dataset, topic="math", sample_type="chat") == [b]
    assert await listed(database, dataset, model="m1") == [b, c]
    assert await listed(database, dataset, status="accepted") == [a, b, c]
    assert await listed(database, dataset, status="rejected") == []
    assert await listed(database, dataset, created_after=20) == [b, c]
    assert await listed(database, dataset, created_before=20) == [a]
    assert await listed(database, dataset, created_after=15, created_before=30) == [b]
    assert await listed(database, dataset, ids=(a, c)) == [a, c]
    assert await listed(database, dataset, topic="nope") == []


async def test_cursor_pages_in_both_orders_survive_a_deleted_cursor(database: Database):
    dataset = await new_dataset(database)
    ids = await insert(database, dataset, [sample(f"s{i}") for i in range(7)])

    async def pages(order: str) -> list[list[str]]:
        out: list[list[str]] = []
        after = None
        while True:
            records, more = await repo.list_samples(
                database, dataset, SampleFilter(), after=after, limit=3, order=order
            )
            out.append([r.id for r in records])
            if not more:
                return out
            after = records[-1].id
            if len(out) == 1:  # the cursor sample is deleted before the next page
                await repo.delete_samples(database, dataset, SampleFilter(ids=(after,)), now=NOW)

    asc = await pages("asc")
    assert asc == [ids[0:3], ids[3:6], ids[6:7]]
    await repo.restore_samples(database, dataset, SampleFilter(ids=(ids[2],)))
    desc = await pages("desc")
    assert desc == [ids[6:3:-1], ids[3:0:-1], ids[0:1]]


async def test_an_unknown_cursor_gives_an_empty_page(database: Database):
    dataset = await new_dataset(database)
    await insert(database, dataset, [sample("a")])

    records, more = await repo.list_samples(database, dataset, SampleFilter(), after="smp_nope")

    assert (records, more) == ([], False)


async def test_soft_delete_and_restore_by_id_and_by_filter(database: Database):
    dataset = await new_dataset(database)
    a, b, c = await insert(
        database,
        dataset,
        [sample("a", topic="x"), sample("b", topic="x"), sample("c", topic="y")],
    )

    assert await repo.delete_samples(database, dataset, SampleFilter(ids=(a,)), now=5) == 1
    assert await repo.delete_samples(database, dataset, SampleFilter(ids=(a,)), now=6) == 0
    assert await repo.delete_samples(database, dataset, SampleFilter(topic="y"), now=7) == 1

    assert await listed(database, dataset) == [b]
    assert await listed(database, dataset, visibility=Visibility.only) == [a, c]
    assert await listed(database, dataset, visibility=Visibility.include) == [a, b, c]
    deleted = await repo.get_sample(database, dataset, a)
    assert deleted is not None
    assert deleted.deleted_at == 5
    assert (await repo.sample_stats(database, dataset)).deleted_samples == 2

    outcome = await repo.restore_samples(database, dataset, SampleFilter(topic="x"))
    assert (outcome.restored, outcome.skipped) == (1, 0)
    assert await listed(database, dataset) == [a, b]
    outcome = await repo.restore_samples(database, dataset, SampleFilter())
    assert (outcome.restored, outcome.skipped) == (1, 0)
    assert await listed(database, dataset) == [a, b, c]


async def test_restore_skips_content_that_is_live_again(database: Database):
    dataset = await new_dataset(database)
    [old] = await insert(database, dataset, [sample("same")])
    await repo.delete_samples(database, dataset, SampleFilter(ids=(old,)), now=NOW)
    # A deleted sample does not block its content: it comes in again...
    [new] = await insert(database, dataset, [sample("same")])
    assert new is not None
    await repo.delete_samples(database, dataset, SampleFilter(ids=(new,)), now=NOW)
    [newest] = await insert(database, dataset, [sample("same")])

    outcome = await repo.restore_samples(database, dataset, SampleFilter())

    # ...and the deleted copies stay deleted rather than becoming duplicates.
    assert (outcome.restored, outcome.skipped, outcome.skipped_ids) == (0, 2, [old, new])
    assert await listed(database, dataset) == [newest]

    await repo.delete_samples(database, dataset, SampleFilter(ids=(newest,)), now=NOW)
    outcome = await repo.restore_samples(database, dataset, SampleFilter())
    # Two deleted copies of one content: the oldest comes back.
    assert (outcome.restored, outcome.skipped) == (1, 2)
    assert await listed(database, dataset) == [old]


async def test_restore_sample_names_the_live_sample_holding_its_content(database: Database):
    dataset = await new_dataset(database)
    [old] = await insert(database, dataset, [sample("same")])
    await repo.delete_samples(database, dataset, SampleFilter(ids=(old,)), now=NOW)
    [new] = await insert(database, dataset, [sample("same")])

    refused = await repo.restore_sample(database, dataset, old)
    assert refused is not None
    assert (refused.record.id, refused.live_duplicate) == (old, new)
    assert refused.record.deleted_at == NOW

    await repo.delete_samples(database, dataset, SampleFilter(ids=(new,)), now=NOW)
    restored = await repo.restore_sample(database, dataset, old)
    assert restored is not None
    assert (restored.record.deleted_at, restored.live_duplicate) == (None, None)
    live = await repo.restore_sample(database, dataset, old)  # live already: left as it is
    assert live == restored
    assert await repo.restore_sample(database, dataset, "smp_nope") is None


async def test_an_import_is_one_transaction(database: Database):
    dataset = await new_dataset(database)
    [held] = await insert(database, dataset, [sample("held")])

    async def chunks(*groups: list[NewSample], fail: bool = False) -> Any:
        for group in groups:
            yield group
        if fail:
            raise RuntimeError("a bad line after the first chunk")

    with pytest.raises(RuntimeError, match="bad line"):
        await repo.import_samples(
            database,
            dataset,
            chunks([sample("a")], fail=True),
            project_id=DEFAULT_PROJECT_ID,
            now=NOW,
        )
    assert await listed(database, dataset) == [held]  # the first chunk was rolled back

    imported = await repo.import_samples(
        database,
        dataset,
        chunks([sample("a"), sample("held")], [sample("A ")]),
        project_id=DEFAULT_PROJECT_ID,
        now=NOW,
    )
    assert imported is not None
    assert imported.ids[0] is not None
    assert imported.ids[1:] == [None, None]
    assert sorted(imported.holders.values()) == sorted([held, imported.ids[0]])
    assert await listed(database, dataset) == [held, imported.ids[0]]


async def test_an_import_into_no_live_dataset_reads_nothing(database: Database):
    dataset = await new_dataset(database)
    read: list[bool] = []

    async def chunks() -> Any:
        read.append(True)
        yield [sample("a")]

    for dataset_id, project_id in ((dataset, "proj_other"), ("ds_nope", DEFAULT_PROJECT_ID)):
        assert (
            await repo.import_samples(
                database, dataset_id, chunks(), project_id=project_id, now=NOW
            )
            is None
        )
    assert read == []


async def test_random_samples_match_the_filter_and_reach_every_sample(database: Database):
    dataset = await new_dataset(database)
    ids = await insert(
        database,
        dataset,
        [sample(f"s{i}", topic="even" if i % 2 == 0 else "odd") for i in range(40)],
    )
    even = {ids[i] for i in range(0, 40, 2)}
    seen: set[str] = set()

    for _ in range(60):
        picked = await repo.random_samples(database, dataset, SampleFilter(topic="even"), 5)
        assert len(picked) == len({r.id for r in picked}) == 5
        assert {r.id for r in picked} <= even
        seen |= {r.id for r in picked}
    everything = await repo.random_samples(database, dataset, SampleFilter(topic="odd"), 100)

    # 5 of 20 at random: each call misses a given sample with probability 3/4, so 60 calls
    # miss one with probability 20 x 0.75^60 (about 6e-7).
    assert seen == even
    assert {r.id for r in everything} == {ids[i] for i in range(1, 40, 2)}


async def test_random_samples_past_the_window_still_match_and_differ(
    database: Database, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(repo, "random_window", lambda count: 2 * count)
    dataset = await new_dataset(database)
    ids = await insert(database, dataset, [sample(f"s{i}", topic="t") for i in range(30)])
    await insert(database, dataset, [sample(f"other{i}") for i in range(30)])

    draws = [
        frozenset(
            r.id for r in await repo.random_samples(database, dataset, SampleFilter(topic="t"), 4)
        )
        for _ in range(20)
    ]

    assert all(len(draw) == 4 and draw <= set(ids) for draw in draws)
    assert len(set(draws)) > 10  # 20 draws of 4 from windows of 8: rarely the same twice


async def test_random_samples_read_an_index_range_on_sqlite(database: Database):
    if database.dialect != "sqlite":
        pytest.skip("the plan is SQLite's; PostgreSQL's planner picks by table size")
    dataset = await new_dataset(database)
    async with database.read() as conn:
        rows = await conn.execute(
            text(
                "EXPLAIN QUERY PLAN SELECT seq FROM samples WHERE dataset_id = :d "
                "AND deleted_at IS NULL AND random_key >= 0.5 ORDER BY random_key LIMIT 5"
            ),
            {"d": dataset},
        )
        plan = " ".join(str(row[-1]) for row in rows)
    assert "ix_samples_dataset_id_random_key" in plan
    assert "TEMP B-TREE" not in plan  # no sort


async def test_stats_and_coverage(database: Database):
    dataset = await new_dataset(database)
    rows = [
        sample("a", topic="math", sample_type="qa", model="m1"),
        sample("b", topic="math", sample_type="qa", model="m2"),
        sample("c", topic="math", sample_type="chat", model="m1"),
        sample("d", topic="art", sample_type="qa", model="m1"),
        sample("e"),
    ]
    ids = await insert(database, dataset, rows)
    await repo.delete_samples(database, dataset, SampleFilter(ids=(ids[3],)), now=NOW)

    stats = await repo.sample_stats(database, dataset)
    cells = await repo.count_cells(database, dataset)
    counts = await repo.count_live_samples(database, [dataset, "ds_none"])

    assert stats.samples == 4
    assert stats.deleted_samples == 1
    assert stats.by_topic == [("math", 3), (None, 1)]
    assert stats.by_sample_type == [("qa", 2), ("chat", 1), (None, 1)]
    assert stats.by_status == [("accepted", 4)]
    assert stats.by_model == [("m1", 2), ("m2", 1), (None, 1)]
    assert stats.cells == [("math", "qa", 2), ("math", "chat", 1), (None, None, 1)]
    assert cells == {("math", "qa"): 2, ("math", "chat"): 1, (None, None): 1}
    assert counts == {dataset: 4}


async def test_a_search_filter_combines_with_the_others(database: Database):
    dataset = await new_dataset(database)
    a, b, c = await insert(
        database,
        dataset,
        [
            sample("prime numbers", topic="math"),
            sample("prime ministers", topic="history"),
            sample("even numbers", topic="math"),
        ],
    )

    found = await listed(database, dataset, search=parse_search("prime"), topic="math")
    assert found == [a]
    assert (
        await repo.delete_samples(
            database, dataset, SampleFilter(search=parse_search("numbers -even")), now=NOW
        )
        == 1
    )
    assert (
        await repo.count_samples(database, dataset, SampleFilter(search=parse_search("prime"))) == 1
    )
    assert await listed(database, dataset, visibility=Visibility.only) == [a]
    assert b in await listed(database, dataset)
    assert c in await listed(database, dataset)
