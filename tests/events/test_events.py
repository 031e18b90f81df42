"""Events on both stores: a batch's progress coalesced and never going back,
a circuit opening, workers' lives, the hub across processes (polling on SQLite, LISTEN on
PostgreSQL), a subscriber that falls behind, and a store refusing a write."""

from __future__ import annotations

import asyncio
import os
import time

import orjson

from datamill.events import EventFilter, publisher
from datamill.storage import events as event_repo
from datamill.storage import workers as worker_repo
from datamill.storage.records import WorkerRecord
from tests.conftest import mock_deployment
from tests.engine.conftest import wait_until
from tests.helpers import chat_line, jsonl, run_batch, running_worker, submit

STATUS_ORDER = ["validating", "in_progress", "finalizing", "completed", "failed"]


async def payloads(runtime, topic: str, **filters) -> list[dict]:
    await runtime.events.flush()
    rows = await event_repo.read_events(
        runtime.database, after=0, topics=[topic], limit=100_000, **filters
    )
    return [orjson.loads(row.payload) for row in rows]


async def test_a_batch_s_progress_is_coalesced_and_never_goes_back(make_runtime, make_mock):
    mock = make_mock()
    runtime = await make_runtime([mock_deployment(mock)])
    started = time.monotonic()
    batch, outputs, _ = await run_batch(
        runtime, jsonl(chat_line(f"r{i}") for i in range(2000)), worker={"concurrency": 64}
    )
    elapsed = time.monotonic() - started
    assert batch.status == "completed"
    assert len(outputs) == 2000

    events = await payloads(runtime, "batch", batch_ids=[batch.id])
    # At most one progress event per 0.5 s, plus one per status change: never one per result.
    assert len(events) <= elapsed / 0.5 + 6, (len(events), elapsed)
    assert events[0]["status"] in {"validating", "in_progress"}  # a few ms may fold
    assert events[-1]["status"] == "completed"
    assert events[-1]["request_counts"] == {"total": 2000, "completed": 2000, "failed": 0}
    # Each event was read when written: a later one never shows an older state.
    ranks = [STATUS_ORDER.index(e["status"]) for e in events]
    assert ranks == sorted(ranks)
    done = [e["request_counts"]["completed"] for e in events]
    assert done == sorted(done)


async def test_an_opening_circuit_is_published_at_once(make_runtime, make_mock):
    broken = make_mock(force_status=500)
    runtime = await make_runtime([mock_deployment(broken)])
    # Slower than the monitor's second: what is seen comes from the circuit changing.
    runtime.deployment_monitor._interval = 3600
    _batch, _, errors = await run_batch(
        runtime, jsonl(chat_line(f"r{i}") for i in range(8)), worker={"max_retries": 0}
    )
    assert len(errors) == 8

    states = await payloads(runtime, "deployment")
    opened = [s for s in states if s["live"]["circuit"] == "open"]
    assert opened, [s["live"]["circuit"] for s in states]
    state = opened[0]
    assert state["name"] == "mock"
    assert state["config"]["base_url"] == broken.base_url
    assert state["process"]["workers"]  # the process it comes from, with its worker
    assert state["live"]["breaker_opens"] >= 1
    assert state["live"]["errors"] >= 5


async def test_busy_deployments_are_published_each_second_and_once_when_quiet(
    make_runtime, make_mock
):
    mock = make_mock(latency_ms=300)
    runtime = await make_runtime([mock_deployment(mock)])
    runtime.deployment_monitor._interval = 0.2
    await run_batch(runtime, jsonl(chat_line(f"r{i}") for i in range(4)))

    # The tick that sees the last answer publishes it, the next one publishes the quiet state
    # once more (later on a loaded machine), then nothing while the deployment stays quiet.
    def ended(state: dict) -> bool:
        return state["live"]["in_flight"] == 0 and state["live"]["calls"] == 4

    deadline = time.monotonic() + 10
    while not (
        len(states := await payloads(runtime, "deployment")) >= 2
        and ended(states[-2])
        and ended(states[-1])
    ):
        assert time.monotonic() < deadline, states[-2:]
        await asyncio.sleep(0.05)
    count = len(states)
    await asyncio.sleep(0.6)  # three ticks

    states = await payloads(runtime, "deployment")
    assert len(states) == count >= 2
    assert any(s["live"]["in_flight"] > 0 for s in states)
    last = states[-1]["live"]
    assert (last["in_flight"], last["calls"], last["error_rate"]) == (0, 4, 0.0)
    assert last["latency_ms"]["p50"] >= 300


async def test_workers_publish_their_lives(make_runtime):
    runtime = await make_runtime(heartbeat_interval=0.1)
    async with running_worker(runtime) as worker:
        # Heartbeats every 0.1 s; on a loaded machine the first may come late.
        deadline = time.monotonic() + 10
        while sum(e["event"] == "heartbeat" for e in await payloads(runtime, "worker")) < 2:
            assert time.monotonic() < deadline, "no heartbeat was published"
            await asyncio.sleep(0.05)
    events = await payloads(runtime, "worker")

    kinds = [e["event"] for e in events if e["worker"]["id"] == worker.id]
    assert kinds[0] == "started"
    assert kinds[-1] == "stopped"
    assert kinds[1:-1]
    assert set(kinds[1:-1]) == {"heartbeat"}
    last = events[-1]["worker"]
    assert (last["status"], last["alive"], last["pid"]) == ("stopped", False, os.getpid())


async def test_a_worker_declared_dead_is_published(make_runtime):
    runtime = await make_runtime()
    gone = WorkerRecord(
        id="worker_gone",
        kind="worker",
        host="elsewhere",
        pid=1,
        version="0",
        status="running",
        started_at=0.0,
        heartbeat_at=0.0,  # long silent
        stopped_at=None,
        current_batch_id=None,
        in_flight=3,
        completed=0,
        failed=0,
    )
    await worker_repo.register_worker(runtime.database, gone)
    async with running_worker(runtime):
        await wait_until(
            lambda: _has(runtime, lambda e: (e["event"], e["worker"]["id"]) == ("dead", gone.id))
        )
    [dead] = [e for e in await payloads(runtime, "worker") if e["event"] == "dead"]
    assert (dead["worker"]["status"], dead["worker"]["alive"]) == ("dead", False)


async def _has(runtime, predicate) -> bool:
    return any(predicate(e) for e in await payloads(runtime, "worker"))


async def test_the_hub_follows_events_written_by_another_process(make_runtime, store_url):
    # Two runtimes on one store are two processes as far as events go: the writer's own
    # hub is woken in-process, the other's is not. On SQLite the other polls; on PostgreSQL
    # it polls once a minute here, so only NOTIFY can bring the events in time.
    api, worker = await make_runtime(), await make_runtime()
    hub = api.event_hub
    if store_url.startswith("postgresql"):
        hub.poll_interval = hub.listen_poll_interval = 60
    else:
        hub.poll_interval = 0.1
    stream = hub.stream(EventFilter(topics=frozenset({"worker"})), after=None)
    await anext(stream)  # subscribed
    # (the LISTEN connection opens when the hub starts; give it a moment on PostgreSQL)
    await asyncio.sleep(0.3)
    started = time.monotonic()
    for n in range(3):
        worker.events.publish("worker", {"n": n})
    await worker.events.flush()

    frames = [await asyncio.wait_for(anext(stream), 5) for _ in range(3)]
    await stream.aclose()
    assert time.monotonic() - started < 5
    assert [orjson.loads(f.split(b"data: ")[1]) for f in frames] == [{"n": n} for n in range(3)]


async def test_a_subscriber_that_falls_behind_is_ended_and_resumes_from_the_table(make_runtime):
    runtime = await make_runtime()
    hub = runtime.event_hub
    hub._queue_limit = 5
    stream = hub.stream(EventFilter(), after=None)
    await anext(stream)
    for n in range(12):
        runtime.events.publish("worker", {"n": n})
    await runtime.events.flush()
    await asyncio.sleep(0.2)  # the hub fans out while this subscriber reads nothing

    got = [frame async for frame in stream]  # what it holds, then the end
    assert len(got) == 5
    last = int(got[-1].split(b"\n")[0].removeprefix(b"id: "))
    resumed = hub.stream(EventFilter(), after=last)
    assert await anext(resumed) == b": subscribed\n\n"
    rest = [await anext(resumed) for _ in range(7)]
    await resumed.aclose()
    numbers = [orjson.loads(f.split(b"data: ")[1])["n"] for f in got + rest]
    assert numbers == list(range(12))


async def test_events_wait_out_a_store_that_refuses_them(make_runtime, monkeypatch):
    runtime = await make_runtime()
    real = publisher.write_events
    refusals = 0

    async def flaky(*args, **kwargs):
        nonlocal refusals
        if refusals < 2:
            refusals += 1
            raise OSError("the store is down")
        return await real(*args, **kwargs)

    monkeypatch.setattr(publisher, "write_events", flaky)
    for n in range(3):
        runtime.events.publish("worker", {"n": n})
    await wait_until(lambda: _count(runtime, 3), timeout=10)
    assert refusals == 2
    assert [e["n"] for e in await payloads(runtime, "worker")] == [0, 1, 2]


async def _count(runtime, expected: int) -> bool:
    rows = await event_repo.read_events(runtime.database, after=0)
    return len(rows) == expected


async def test_a_cancel_is_published(make_runtime, make_mock):
    mock = make_mock(latency_ms=2000)
    runtime = await make_runtime([mock_deployment(mock)])
    batch = await submit(runtime, jsonl(chat_line(f"r{i}") for i in range(4)))
    async with running_worker(runtime):
        await wait_until(lambda: _status_is(runtime, batch.id, "in_progress"))
        await runtime.batches.cancel(batch.id)
        await runtime.batches.wait(batch.id, timeout=30, poll=0.05)
    statuses = [e["status"] for e in await payloads(runtime, "batch", batch_ids=[batch.id])]
    assert "cancelling" in statuses
    assert statuses[-1] == "cancelled"


async def _status_is(runtime, batch_id: str, status: str) -> bool:
    return (await runtime.batches.get(batch_id)).status == status
