"""The workers registry: heartbeats, clean stops, and declaring workers dead."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from datamill.storage.leasing import lease_requests, release_dead_workers
from datamill.storage.records import WorkerRecord
from datamill.storage.workers import (
    declare_dead_workers,
    heartbeat,
    list_workers,
    live_worker_count,
    mark_stopped,
    register_worker,
)
from tests.storage.conftest import NOW, WORKER_HOST, request_rows, worker

HOST = WORKER_HOST


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


async def by_id(database) -> dict[str, WorkerRecord]:
    return {w.id: w for w in await list_workers(database)}


async def beat(database, worker_id: str, now: float, **stats) -> bool:
    values = {"in_flight": 0, "completed": 0, "failed": 0, "current_batch_id": None, **stats}
    return await heartbeat(database, worker_id, now=now, **values)


async def test_register_heartbeat_and_stop(database):
    assert not await beat(database, "w1", NOW)  # unknown: nothing to renew
    assert await list_workers(database) == []
    await register_worker(database, worker("w1"))
    assert (await by_id(database))["w1"] == worker("w1")

    assert await beat(
        database, "w1", NOW + 5, in_flight=3, completed=10, failed=2, current_batch_id="batch_x"
    )
    record = (await by_id(database))["w1"]
    assert (record.heartbeat_at, record.in_flight, record.completed, record.failed) == (
        NOW + 5,
        3,
        10,
        2,
    )
    assert record.current_batch_id == "batch_x"
    assert await live_worker_count(database, now=NOW + 10, ttl=30) == 1

    await mark_stopped(database, "w1", now=NOW + 6)
    record = (await by_id(database))["w1"]
    assert (record.status, record.stopped_at, record.in_flight, record.current_batch_id) == (
        "stopped",
        NOW + 6,
        0,
        None,
    )
    assert await live_worker_count(database, now=NOW + 10, ttl=30) == 0
    assert [w.id for w in await list_workers(database, include_stopped=False)] == []


async def test_declares_dead_by_ttl(database):
    await register_worker(database, worker("old", host="elsewhere", at=NOW))
    await register_worker(database, worker("fresh", host="elsewhere", at=NOW + 50))
    await register_worker(database, worker("stopped", host="elsewhere", at=NOW))
    await mark_stopped(database, "stopped", now=NOW)

    assert await declare_dead_workers(database, now=NOW + 60, ttl=30, host=HOST) == ["old"]

    workers = await by_id(database)
    assert (workers["old"].status, workers["old"].stopped_at) == ("dead", NOW + 60)
    assert workers["fresh"].status == "running"
    assert workers["stopped"].status == "stopped"
    assert await live_worker_count(database, now=NOW + 60, ttl=30) == 1
    # Declared once: a second sweep finds nobody new.
    assert await declare_dead_workers(database, now=NOW + 61, ttl=30, host=HOST) == []


async def test_the_caller_is_never_declared_dead(database):
    await register_worker(database, worker("me", host="elsewhere", at=NOW))
    await register_worker(database, worker("peer", host="elsewhere", at=NOW))

    dead = await declare_dead_workers(database, now=NOW + 60, ttl=30, host=HOST, caller="me")

    assert dead == ["peer"]
    assert (await by_id(database))["me"].status == "running"


async def test_declares_dead_a_local_worker_whose_process_is_gone(database, dead_pid):
    await register_worker(database, worker("crashed", pid=dead_pid))
    await register_worker(database, worker("alive", pid=os.getpid()))
    # Same pid on another host says nothing about that host's process.
    await register_worker(database, worker("remote", host="elsewhere", pid=dead_pid))

    dead = await declare_dead_workers(database, now=NOW + 1, ttl=30, host=HOST)

    assert dead == ["crashed"]
    workers = await by_id(database)
    assert {w: workers[w].status for w in workers} == {
        "crashed": "dead",
        "alive": "running",
        "remote": "running",
    }


async def test_a_dead_workers_heartbeat_returns_false_and_revives_it(database, make_batch):
    batch = await make_batch(4)
    await register_worker(database, worker("w1", host="elsewhere"))
    await lease_requests(database, batch_id=batch.id, worker_id="w1", limit=2, now=NOW)
    dead = await declare_dead_workers(database, now=NOW + 100, ttl=30, host=HOST)
    assert dead == ["w1"]
    assert (await release_dead_workers(database, dead, now=NOW + 100)).requests == 2

    assert not await beat(database, "w1", NOW + 101, in_flight=2)

    record = (await by_id(database))["w1"]
    assert (record.status, record.heartbeat_at, record.stopped_at) == ("running", NOW + 101, None)
    # It lost its leases: they are pending for anyone.
    rows = await request_rows(database, batch.id)
    assert {row.state for row in rows.values()} == {"pending"}
    # Alive again: the next heartbeat is an ordinary one.
    assert await beat(database, "w1", NOW + 102)
