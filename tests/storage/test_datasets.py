"""The datasets repository on both stores: a name per live dataset, soft delete, restore."""

from __future__ import annotations

import asyncio

import pytest

from datamill.ids import new_dataset_id
from datamill.protocol.datasets import Visibility
from datamill.storage import datasets as repo
from datamill.storage.database import Database
from datamill.storage.datasets import DatasetNameTaken
from datamill.storage.schema import DEFAULT_PROJECT_ID

P = DEFAULT_PROJECT_ID


async def create(database: Database, name: str, now: float = 1.0) -> repo.DatasetRecord:
    return await repo.insert_dataset(
        database, dataset_id=new_dataset_id(), project_id=P, name=name, description=None, now=now
    )


async def test_a_name_belongs_to_one_live_dataset(database: Database):
    first = await create(database, "faq")

    with pytest.raises(DatasetNameTaken):
        await create(database, "faq")
    assert await repo.delete_dataset(database, first.id, project_id=P, now=2)
    second = await create(database, "faq")  # a deleted dataset's name is free again

    with pytest.raises(DatasetNameTaken):
        await repo.restore_dataset(database, first.id, project_id=P, now=3)
    found = await repo.find_dataset_by_name(database, "faq", project_id=P)
    gone = await repo.get_dataset(database, first.id, project_id=P)
    kept = await repo.get_dataset(database, first.id, project_id=P, visibility=Visibility.include)
    assert found == second
    assert gone is None
    assert kept is not None
    assert kept.deleted_at == 2


async def test_racing_creates_of_one_name_make_one_dataset(open_database):
    first, second = await open_database(), await open_database()

    outcomes = await asyncio.gather(
        *(create(db, "same") for db in (first, second, first, second)), return_exceptions=True
    )

    assert sum(isinstance(o, repo.DatasetRecord) for o in outcomes) == 1
    assert sum(isinstance(o, DatasetNameTaken) for o in outcomes) == 3


async def test_rename_onto_a_live_name_changes_nothing(database: Database):
    one, two = await create(database, "one"), await create(database, "two")

    with pytest.raises(DatasetNameTaken):
        await repo.update_dataset(database, two.id, project_id=P, values={"name": "one"}, now=5)
    # The refusal changed nothing, and the next rename goes through.
    renamed = await repo.update_dataset(
        database, two.id, project_id=P, values={"name": "three", "description": "d"}, now=6
    )

    assert renamed is not None
    assert (renamed.name, renamed.description, renamed.updated_at) == ("three", "d", 6)
    assert (await repo.get_dataset(database, one.id, project_id=P)) == one


async def test_deleted_datasets_are_neither_changed_nor_deleted_again(database: Database):
    record = await create(database, "x")
    assert await repo.delete_dataset(database, record.id, project_id=P, now=2)
    assert not await repo.delete_dataset(database, record.id, project_id=P, now=3)
    assert await repo.update_dataset(database, record.id, project_id=P, values={}, now=3) is None
    restored = await repo.restore_dataset(database, record.id, project_id=P, now=4)
    assert await repo.restore_dataset(database, record.id, project_id=P, now=5) is None

    assert restored is not None
    assert (restored.deleted_at, restored.updated_at) == (None, 4)


async def test_lists_page_newest_first_and_filter_by_deletion(database: Database):
    records = [await create(database, f"d{i}") for i in range(5)]
    await repo.delete_dataset(database, records[1].id, project_id=P, now=2)

    page, more = await repo.list_datasets(database, project_id=P, after=None, limit=2)
    rest, done = await repo.list_datasets(database, project_id=P, after=page[-1].id, limit=10)
    deleted, _ = await repo.list_datasets(
        database, project_id=P, after=None, limit=10, visibility=Visibility.only
    )
    everything, _ = await repo.list_datasets(
        database, project_id=P, after=None, limit=10, visibility=Visibility.include
    )
    other, _ = await repo.list_datasets(database, project_id="proj_other", after=None, limit=10)

    assert [r.name for r in page] == ["d4", "d3"]
    assert more
    assert [r.name for r in rest] == ["d2", "d0"]
    assert not done
    assert [r.name for r in deleted] == ["d1"]
    assert [r.name for r in everything] == ["d4", "d3", "d2", "d1", "d0"]
    assert other == []
