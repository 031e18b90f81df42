"""The events repository on both stores: ids in order and never reused, batch events
rendered inside the write, pruning that keeps the newest, and readers following the table
by id alone while several writers race."""

from __future__ import annotations

import asyncio

import orjson
from sqlalchemy import delete

from datamill.storage import events as event_repo
from datamill.storage.events import NewEvent
from datamill.storage.schema import events
from tests.storage.conftest import NOW


def new(n: int, topic: str = "worker", batch_id: str | None = None) -> list[NewEvent]:
    return [NewEvent(topic, orjson.dumps({"n": i}).decode(), batch_id) for i in range(n)]


async def test_events_come_back_in_id_order_with_their_payloads(database):
    assert await event_repo.event_bounds(database) is None
    assert await event_repo.last_event_id(database) == 0

    assert await event_repo.write_events(database, new(3), now=NOW) == 3
    await event_repo.write_events(database, new(2, "batch", "batch_a"), now=NOW + 1)

    rows = await event_repo.read_events(database, after=0)
    assert [orjson.loads(r.payload)["n"] for r in rows] == [0, 1, 2, 0, 1]
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert [r.topic for r in rows] == ["worker"] * 3 + ["batch"] * 2
    assert rows[3].batch_id == "batch_a"
    assert rows[4].created_at == NOW + 1
    assert await event_repo.event_bounds(database) == (rows[0].id, rows[-1].id)
    assert await event_repo.last_event_id(database) == rows[-1].id


async def test_reading_between_ids_and_by_topic_and_batch(database):
    await event_repo.write_events(database, new(2, "worker"), now=NOW)
    await event_repo.write_events(database, new(2, "batch", "batch_a"), now=NOW)
    await event_repo.write_events(database, new(2, "batch", "batch_b"), now=NOW)
    rows = await event_repo.read_events(database, after=0)
    ids = [r.id for r in rows]

    window = await event_repo.read_events(database, after=ids[1], upto=ids[4])
    assert [r.id for r in window] == ids[2:5]
    only_a = await event_repo.read_events(database, after=0, batch_ids=["batch_a"])
    assert [r.id for r in only_a] == ids[2:4]
    workers_and_b = await event_repo.read_events(
        database, after=0, topics=["worker"], batch_ids=None
    )
    assert [r.id for r in workers_and_b] == ids[:2]
    assert len(await event_repo.read_events(database, after=0, limit=4)) == 4


async def test_batch_events_are_rendered_from_the_row_inside_the_write(database, make_batch):
    batch = await make_batch(3)
    seen = []

    def render(record) -> str:
        seen.append(record.id)
        return orjson.dumps({"id": record.id, "total": record.total_count}).decode()

    written = await event_repo.write_events(
        database,
        new(1),
        batch_ids=[batch.id, "batch_gone"],  # a batch that does not exist is skipped
        render_batch=render,
        now=NOW,
    )

    assert written == 2
    assert seen == [batch.id]
    rows = await event_repo.read_events(database, after=0)
    assert [(r.topic, r.batch_id) for r in rows] == [("worker", None), ("batch", batch.id)]
    assert orjson.loads(rows[1].payload) == {"id": batch.id, "total": 3}


async def test_pruning_keeps_the_newest_event_and_ids_are_never_reused(database):
    await event_repo.write_events(database, new(3), now=NOW)
    await event_repo.write_events(database, new(2), now=NOW + 10)
    first, last = await event_repo.event_bounds(database)

    assert await event_repo.prune_events(database, before=NOW + 5) == 3
    assert await event_repo.event_bounds(database) == (first + 3, last)
    # Everything is old now, but the newest stays: it tells resuming clients what was pruned.
    assert await event_repo.prune_events(database, before=NOW + 100) == 1
    assert await event_repo.event_bounds(database) == (last, last)

    async with database.write() as conn:
        await conn.execute(delete(events))
    await event_repo.write_events(database, new(1), now=NOW + 20)
    [row] = await event_repo.read_events(database, after=0)
    assert row.id > last  # SQLite's AUTOINCREMENT, PostgreSQL's sequence


async def test_events_older_than_the_cutoff_go_in_chunks(database, monkeypatch):
    monkeypatch.setattr(event_repo, "_PRUNE_CHUNK", 4)
    await event_repo.write_events(database, new(10), now=NOW)
    await event_repo.write_events(database, new(1), now=NOW + 10)

    assert await event_repo.prune_events(database, before=NOW + 5) == 10
    assert len(await event_repo.read_events(database, after=0)) == 1


async def test_recent_events_of_a_topic(database):
    await event_repo.write_events(database, new(2, "deployment"), now=NOW)
    await event_repo.write_events(database, new(1, "worker"), now=NOW + 5)
    await event_repo.write_events(database, new(1, "deployment"), now=NOW + 5)

    recent = await event_repo.recent_events(database, topic="deployment", since=NOW + 1)
    assert [(r.topic, r.created_at) for r in recent] == [("deployment", NOW + 5)]


async def test_a_reader_following_by_id_misses_nothing_while_writers_race(open_database):
    # Writers on separate pools commit concurrently; a reader that only ever asks for
    # "id > the last one I saw" must still end with every event. On PostgreSQL this holds
    # only because each write takes the events lock before its ids are drawn.
    writers = [await open_database() for _ in range(4)]
    reader = await open_database()
    per_writer, rounds = 4, 30
    done = asyncio.Event()
    seen: list[int] = []

    async def write(database) -> None:
        for _ in range(rounds):
            await event_repo.write_events(database, new(per_writer), now=NOW)
            await asyncio.sleep(0)

    async def follow() -> None:
        last = 0
        while True:
            finished = done.is_set()
            rows = await event_repo.read_events(reader, after=last, limit=1000)
            seen.extend(r.id for r in rows)
            if rows:
                last = rows[-1].id
            elif finished:
                return
            await asyncio.sleep(0)

    follower = asyncio.create_task(follow())
    await asyncio.gather(*(write(database) for database in writers))
    done.set()
    await follower

    stored = [r.id for r in await event_repo.read_events(reader, after=0, limit=10_000)]
    assert len(stored) == len(writers) * per_writer * rounds
    assert seen == stored
