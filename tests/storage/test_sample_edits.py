"""The sample edits repository on both stores: versions written lazily, racing edits to the
same content (one wins, the other is told who holds it), and restores of past versions."""

from __future__ import annotations

import asyncio

from datamill.storage import sample_edits as edits
from datamill.storage.database import Database
from datamill.storage.samples import NewSample, get_sample
from tests.storage.test_samples import NOW, insert, new_dataset, sample


async def test_two_racing_edits_to_one_content_leave_one_live_sample_with_it(open_database):
    first, second = await open_database(), await open_database()
    dataset = await new_dataset(first)
    one, two = await insert(first, dataset, [sample("one"), sample("two")])
    assert one is not None
    assert two is not None
    content = {"question": "the same", "answer": "now"}

    outcomes = await asyncio.gather(
        edits.edit_sample(first, dataset, one, {"content": content}, changed_by="a", now=NOW),
        edits.edit_sample(second, dataset, two, {"content": content}, changed_by="b", now=NOW),
    )

    [(winner, by)] = [
        (o.record, by) for o, by in zip(outcomes, "ab", strict=True) if o.duplicate_of is None
    ]
    [loser] = [o for o in outcomes if o.duplicate_of is not None]
    assert winner is not None
    assert winner.content == content
    assert loser.duplicate_of == winner.id
    # The loser changed nothing and wrote no version.
    assert loser.record is not None
    stored = await get_sample(first, dataset, loser.record.id)
    assert stored is not None
    assert stored.content == loser.record.content != content
    assert len(await edits.sample_versions(first, dataset, loser.record.id) or []) == 1
    versions = await edits.sample_versions(first, dataset, winner.id) or []
    assert [(v.version, v.changed_by) for v in versions] == [(1, None), (2, by)]


async def test_versions_restore_and_what_each_changed(database: Database):
    dataset = await new_dataset(database)
    added, holder = await edits.add_sample(
        database, dataset, NewSample(content={"q": "v1"}, topic="t"), changed_by="k", now=NOW
    )
    assert holder is None
    assert added is not None
    await edits.edit_sample(
        database, dataset, added, {"content": {"q": "v2"}}, changed_by=None, now=NOW + 1
    )
    await edits.edit_sample(database, dataset, added, {"topic": None}, changed_by=None, now=NOW + 2)
    back = await edits.restore_version(database, dataset, added, 1, changed_by="k", now=NOW + 3)
    missing = await edits.restore_version(database, dataset, added, 9, changed_by="k", now=NOW)

    assert back.record is not None
    assert (back.record.content, back.record.topic) == ({"q": "v1"}, "t")
    assert missing.no_version
    versions = await edits.sample_versions(database, dataset, added) or []
    assert [(v.version, v.action, v.changed, v.restored_from) for v in versions] == [
        (1, "created", (), None),
        (2, "edited", ("content",), None),
        (3, "edited", ("topic",), None),
        (4, "restored", ("content", "topic"), 1),
    ]
    assert [v.changed_by for v in versions] == ["k", None, None, "k"]
    assert [v.changed_at for v in versions] == [NOW, NOW + 1, NOW + 2, NOW + 3]
    # Adding the same content again is refused, naming the holder.
    again = await edits.add_sample(
        database, dataset, NewSample(content={"q": "V1 "}), changed_by=None, now=NOW
    )
    assert again == (None, added)
