"""Migrations: an empty store reaches head, its schema is `schema.metadata`, and upgrading
is idempotent and safe to race."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select, text

from datamill.storage import migrate
from datamill.storage.database import Database
from datamill.storage.projects import ensure_default_project
from datamill.storage.schema import DEFAULT_PROJECT_ID, metadata, projects
from datamill.storage.search import is_search_object, search_tables


@pytest.fixture
async def open_empty(empty_store_url: str) -> AsyncIterator[Callable[[], Database]]:
    opened: list[Database] = []

    def open_one() -> Database:
        database = Database.open(empty_store_url)
        opened.append(database)
        return database

    yield open_one
    for database in opened:
        await database.dispose()


async def schema_differences(database: Database) -> list[object]:
    def compare(sync_conn) -> list[object]:
        # The search index is made by hand per store; `search_objects` compares it.
        opts = {
            "compare_type": True,
            "include_name": lambda name, type_, _parents: not is_search_object(name, type_),
        }
        context = MigrationContext.configure(sync_conn, opts=opts)
        return list(compare_metadata(context, metadata))

    async with database.read() as conn:
        return await conn.run_sync(compare)


async def table_names(database: Database) -> set[str]:
    async with database.read() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


def expected_tables(database: Database) -> set[str]:
    return set(metadata.tables) | {"alembic_version"} | search_tables(database.dialect)


async def search_objects(database: Database) -> list[tuple[str, ...]]:
    """The search index's definition as the store reports it: the FTS5 table and its
    triggers on SQLite, the generated column and its index on PostgreSQL."""
    if database.dialect == "sqlite":
        query = (
            "SELECT type, name, sql FROM sqlite_master "
            "WHERE name LIKE 'samples_fts%' AND sql IS NOT NULL ORDER BY name"
        )
    else:
        query = (
            "SELECT 'column', attname, format_type(atttypid, atttypmod) || ' ' || "
            "pg_get_expr(adbin, adrelid) FROM pg_attribute JOIN pg_attrdef "
            "ON adrelid = attrelid AND adnum = attnum "
            "WHERE attrelid = 'samples'::regclass AND attgenerated = 's' "
            "UNION ALL SELECT 'index', indexname, indexdef FROM pg_indexes "
            "WHERE indexname = 'ix_samples_search' ORDER BY 2"
        )
    async with database.read() as conn:
        return [tuple(row) for row in (await conn.execute(text(query))).all()]


async def default_projects(database: Database) -> int:
    async with database.read() as conn:
        return await conn.scalar(
            select(func.count()).select_from(projects).where(projects.c.id == DEFAULT_PROJECT_ID)
        )


async def test_empty_store_upgrades_to_head_matching_the_metadata(open_empty):
    database = open_empty()
    assert await migrate.current_revision(database) is None
    assert await table_names(database) == set()

    await migrate.upgrade(database)

    assert await migrate.current_revision(database) == migrate.head_revision()
    assert await table_names(database) == expected_tables(database)
    assert await schema_differences(database) == []
    assert await default_projects(database) == 1


async def test_the_migrations_build_the_same_schema_as_the_metadata(open_empty):
    # An empty store is created from the metadata and stamped; stores made by older versions
    # get the migrations. Both must end with the same schema.
    database = open_empty()
    async with database.write() as conn:
        await conn.run_sync(migrate.run_migrations)

    assert await migrate.current_revision(database) == migrate.head_revision()
    assert await table_names(database) == expected_tables(database)
    assert await schema_differences(database) == []


async def test_migration_0008_builds_the_search_index_a_new_store_has(open_empty):
    database = open_empty()
    await migrate.upgrade(database)  # created at head, from the metadata
    at_head = await search_objects(database)
    # Back to 0011 through the downgrades, to 0006 by hand, then up through the migrations.
    async with database.write() as conn:
        await conn.run_sync(lambda sync: _downgrade(sync, "0011"))
    async with database.write() as conn:
        tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        later = ("generation_runs", "generation_requests", "generation_rejections")
        later += ("generation_cells", "generation_jobs")  # 0010: they refer to datasets
        later += ("stored_responses",)  # 0011
        for table in (*later, "events", "samples_fts", "samples", "datasets"):
            if table in tables:
                await conn.execute(text(f"DROP TABLE {table}"))
        await conn.execute(text("UPDATE alembic_version SET version_num = '0006'"))

    async with database.write() as conn:
        await conn.run_sync(migrate.run_migrations)

    assert len(at_head) == (8 if database.dialect == "sqlite" else 2)  # shadow tables too
    assert await search_objects(database) == at_head
    assert await table_names(database) == expected_tables(database)
    assert await schema_differences(database) == []


async def test_upgrading_twice_is_a_no_op(open_empty):
    database = open_empty()
    await migrate.upgrade(database)
    await migrate.upgrade(database)

    assert await migrate.current_revision(database) == migrate.head_revision()
    assert await schema_differences(database) == []
    assert await default_projects(database) == 1


async def test_two_racing_upgrades_both_succeed(open_empty):
    first, second = open_empty(), open_empty()

    await asyncio.gather(migrate.upgrade(first), migrate.upgrade(second))

    for database in (first, second):
        assert await migrate.current_revision(database) == migrate.head_revision()
    assert await schema_differences(first) == []
    assert await default_projects(first) == 1


async def test_racing_default_project_creation_creates_one(store_url):
    first, second = Database.open(store_url), Database.open(store_url)
    try:
        await migrate.upgrade(first)
        async with first.write() as conn:
            await conn.execute(projects.delete())

        await asyncio.gather(
            *(ensure_default_project(db) for _ in range(8) for db in (first, second))
        )

        assert await default_projects(first) == 1
    finally:
        await first.dispose()
        await second.dispose()


def test_the_schema_head_constant_is_alembics_head():
    # Starts skip Alembic when the store is at SCHEMA_HEAD: it must name the newest revision.
    assert migrate.head_revision() == migrate.SCHEMA_HEAD


async def test_an_upgraded_store_reports_the_head_without_alembic(empty_store_url):
    database = Database.open(empty_store_url)
    try:
        assert await migrate.current_revision(database) is None
        await migrate.upgrade(database)
        assert await migrate.current_revision(database) == migrate.SCHEMA_HEAD
        await migrate.upgrade(database)  # the fast path: nothing to do
        assert await migrate.current_revision(database) == migrate.SCHEMA_HEAD
    finally:
        await database.dispose()


@pytest.mark.parametrize("path", ["created at head", "migrated"])
async def test_postgresql_blob_chunks_are_compressed_with_lz4(open_empty, path):
    database = open_empty()
    if database.dialect != "postgresql":
        pytest.skip("a PostgreSQL storage setting")
    if path == "migrated":
        async with database.write() as conn:
            await conn.run_sync(migrate.run_migrations)
    else:
        await migrate.upgrade(database)

    async with database.read() as conn:
        compression = await conn.scalar(
            text(
                "SELECT attcompression FROM pg_attribute "
                "WHERE attrelid = 'blob_chunks'::regclass AND attname = 'data'"
            )
        )
    assert compression in {"l", b"l"}  # lz4, a "char" (Debian's PostgreSQL 15 has it)


async def test_0005_keeps_existing_batches_online_and_their_results_not_native(open_empty):
    from alembic import command

    database = open_empty()
    async with database.write() as conn:
        await conn.run_sync(lambda sync: command.upgrade(migrate._config(sync), "0003"))
        await conn.execute(text("INSERT INTO projects (id, name, created_at) VALUES ('p', 'p', 0)"))
        await conn.execute(
            text(
                "INSERT INTO batches (id, project_id, endpoint, input_file_id, "
                "completion_window, status, created_at) "
                "VALUES ('batch_1', 'p', '/v1/chat/completions', 'file-1', '24h', "
                "'in_progress', 0)"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO requests (batch_id, line, custom_id, body) "
                "VALUES ('batch_1', 1, 'a', :body)"
            ),
            {"body": b"{}"},
        )
        await conn.execute(
            text(
                "INSERT INTO results (request_id, batch_id, line, custom_id, ok, finished_at) "
                "SELECT id, batch_id, line, custom_id, true, 0 FROM requests"
            )
        )

    async with database.write() as conn:
        await conn.run_sync(migrate.run_migrations)

    async with database.read() as conn:
        assert await conn.scalar(text("SELECT mode FROM batches")) == "online"
        assert await conn.scalar(text("SELECT native_job_id FROM requests")) is None
        assert not await conn.scalar(text("SELECT native FROM results"))
    assert await schema_differences(database) == []


def _downgrade(sync: Any, revision: str) -> None:
    from alembic import command

    command.downgrade(migrate._config(sync), revision)


async def test_0015_copies_the_provenance_ids_of_existing_samples(open_empty):
    from alembic import command

    database = open_empty()
    async with database.write() as conn:
        await conn.run_sync(lambda sync: command.upgrade(migrate._config(sync), "0014"))
        await conn.execute(text("INSERT INTO projects (id, name, created_at) VALUES ('p', 'p', 0)"))
        await conn.execute(
            text(
                "INSERT INTO datasets (id, project_id, name, created_at, updated_at) "
                "VALUES ('ds_1', 'p', 'd', 0, 0)"
            )
        )
        provenances = [
            '{"batch_id": "batch_1", "request_id": "r"}',
            '{"job_id": "gen_1", "batch_id": "batch_2"}',
            '{"batch_id": 7}',  # not a string: no id of a batch
            '{"batch_id": "%s"}' % ("b" * 300),  # too long for the column
            None,
        ]
        for n, provenance in enumerate(provenances):
            await conn.execute(
                text(
                    "INSERT INTO samples (id, dataset_id, content, text, content_hash, "
                    "provenance, random_key, created_at) "
                    "VALUES (:id, 'ds_1', '{}', '', :hash, :provenance, 0.5, 0)"
                ),
                {"id": f"smp_{n}", "hash": f"h{n}", "provenance": provenance},
            )

    async with database.write() as conn:
        await conn.run_sync(migrate.run_migrations)

    async with database.read() as conn:
        rows = (await conn.execute(text("SELECT batch_id, job_id FROM samples ORDER BY id"))).all()
    assert [tuple(row) for row in rows] == [
        ("batch_1", None),
        ("batch_2", "gen_1"),
        (None, None),
        (None, None),
        (None, None),
    ]
    assert await schema_differences(database) == []


async def test_0017_makes_existing_samples_unreviewed(open_empty):
    from alembic import command

    database = open_empty()
    async with database.write() as conn:
        await conn.run_sync(lambda sync: command.upgrade(migrate._config(sync), "0015"))
        await conn.execute(text("INSERT INTO projects (id, name, created_at) VALUES ('p', 'p', 0)"))
        await conn.execute(
            text(
                "INSERT INTO datasets (id, project_id, name, created_at, updated_at) "
                "VALUES ('ds_1', 'p', 'd', 0, 0)"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO samples (id, dataset_id, content, text, content_hash, "
                "random_key, created_at) VALUES ('smp_1', 'ds_1', '{}', '', 'h', 0.5, 0)"
            )
        )

    async with database.write() as conn:
        await conn.run_sync(migrate.run_migrations)

    async with database.read() as conn:
        row = (await conn.execute(text("SELECT review_state, review_count FROM samples"))).one()
    assert tuple(row) == ("unreviewed", 0)
    assert await schema_differences(database) == []
