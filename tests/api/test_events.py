"""`GET /api/events` over real HTTP on both stores: live batch events, resuming with
Last-Event-ID without loss or repeat, filters, reset after pruning, pings, one reader for
many clients, clients dropped when they leave, and bad parameters."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from datamill.storage import events as event_repo
from tests.api.conftest import assert_error
from tests.api.sse import SseReader
from tests.conftest import mock_deployment
from tests.engine.conftest import wait_until
from tests.helpers import chat_line, jsonl

STATUS_ORDER = ["validating", "in_progress", "finalizing", "completed"]


@asynccontextmanager
async def subscribe(served, path: str = "/api/events", **kwargs: Any):
    async with served.client() as client, client.stream("GET", path, **kwargs) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SseReader(response)


async def publish(runtime, topic: str, count: int, *, start: int = 0, batch_id=None) -> None:
    """``count`` events with payload ``{"n": start..}``, written now."""
    for n in range(start, start + count):
        runtime.events.publish(topic, {"n": n}, batch_id=batch_id)
    await runtime.events.flush()


async def test_a_batch_is_followed_live_to_its_end_as_get_renders_it(make_api, serve, mock):
    mock.control(latency_ms=200)  # in_progress lasts long enough to be seen for sure
    api = await make_api([mock_deployment(mock)], workers=1)
    served = await serve(api)
    async with subscribe(served, params={"topic": "batch"}) as stream:
        first = await stream.next()
        assert first.comments == ["subscribed"]
        assert first.id is not None
        batch = await api.submit(jsonl(chat_line(f"r{i}") for i in range(50)))
        frames = await stream.until(lambda f: f.data["status"] == "completed")

    assert {f.event for f in frames} == {"batch"}
    assert {f.data["id"] for f in frames} == {batch["id"]}
    statuses = [f.data["status"] for f in frames]
    # Each status shows up, in order; one lasting less than an event write (validating, when
    # the worker takes the batch at once) may fold into the next.
    assert statuses[0] in {"validating", "in_progress"}
    assert "in_progress" in statuses
    assert [STATUS_ORDER.index(s) for s in statuses] == sorted(
        STATUS_ORDER.index(s) for s in statuses
    )
    ids = [f.id for f in frames]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert frames[-1].data == await api.batch(batch["id"])


async def test_reconnecting_with_last_event_id_gets_exactly_the_missed_events_then_live_ones(
    make_api, serve
):
    api = await make_api()
    served = await serve(api)
    runtime = api.runtime
    async with subscribe(served, params={"topic": "worker"}) as stream:
        await stream.next()
        await publish(runtime, "worker", 5)
        seen = await stream.events(5)
    last = seen[-1].id
    await publish(runtime, "worker", 7, start=5)  # while disconnected

    async with subscribe(
        served, params={"topic": "worker"}, headers={"Last-Event-ID": str(last)}
    ) as stream:
        assert (await stream.next()).comments == ["subscribed"]
        missed = await stream.events(7)
        await publish(runtime, "worker", 3, start=12)  # live again
        live = await stream.events(3)

    numbers = [f.data["n"] for f in seen + missed + live]
    assert numbers == list(range(15))  # none lost, none repeated, in order
    ids = [f.id for f in seen + missed + live]
    assert ids == sorted(ids)
    assert len(set(ids)) == 15


async def test_last_event_id_as_a_query_parameter_and_the_header_wins(make_api, serve):
    api = await make_api()
    served = await serve(api)
    await publish(api.runtime, "worker", 6)
    rows = await event_repo.read_events(api.runtime.database, after=0)
    ids = [r.id for r in rows]

    async with subscribe(served, params={"last_event_id": str(ids[2])}) as stream:
        await stream.next()
        assert [f.data["n"] for f in await stream.events(3)] == [3, 4, 5]
    # A browser reconnecting keeps the URL it started with and sends the header: the header
    # is the later position.
    async with subscribe(
        served, params={"last_event_id": str(ids[0])}, headers={"Last-Event-ID": str(ids[4])}
    ) as stream:
        await stream.next()
        [only] = await stream.events(1)
        assert only.data == {"n": 5}


async def test_filters_by_batch_and_by_topic(make_api, serve):
    api = await make_api()
    served = await serve(api)
    runtime = api.runtime
    one = await api.submit(jsonl([chat_line("a")]))
    two = await api.submit(jsonl([chat_line("b")]))
    await runtime.events.flush()  # their creation events

    async with (
        subscribe(served, params={"batch_id": one["id"]}) as by_batch,
        subscribe(served, params={"topic": ["worker", "deployment"]}) as by_topics,
        subscribe(served, params={"batch_id": [one["id"], two["id"]], "topic": "batch"}) as both,
    ):
        for stream in (by_batch, by_topics, both):
            await stream.next()
        await publish(runtime, "batch", 2, batch_id=one["id"])
        await publish(runtime, "batch", 2, start=2, batch_id=two["id"])
        await publish(runtime, "worker", 1, start=4)
        await publish(runtime, "worker", 1, start=5, batch_id=one["id"])
        await publish(runtime, "deployment", 1, start=6)

        assert [f.data["n"] for f in await by_batch.events(3)] == [0, 1, 5]
        assert [f.data["n"] for f in await by_topics.events(3)] == [4, 5, 6]
        assert [f.data["n"] for f in await both.events(4)] == [0, 1, 2, 3]
        # Nothing else came: the next event each sees is one published now for all of them.
        await publish(runtime, "worker", 1, start=7, batch_id=one["id"])
        assert (await by_batch.events(1))[0].data["n"] == 7
        assert (await by_topics.events(1))[0].data["n"] == 7


async def test_a_client_resuming_from_a_pruned_id_is_told_to_reset(make_api, serve):
    api = await make_api()
    served = await serve(api)
    runtime = api.runtime
    await publish(runtime, "worker", 4)
    oldest = (await event_repo.event_bounds(runtime.database))[0]
    assert await event_repo.prune_events(runtime.database, before=runtime.clock.now() + 1) == 3
    newest = await event_repo.last_event_id(runtime.database)

    async with subscribe(served, headers={"Last-Event-ID": str(oldest)}) as stream:
        reset = await stream.next()
        assert reset.event == "reset"
        assert reset.data["reason"] == "events_pruned"
        assert reset.id == reset.data["last_event_id"] == newest  # the client resumes here
        await publish(runtime, "worker", 1, start=10)
        [live] = await stream.events(1)
        assert live.data == {"n": 10}

    # An id this store never gave (another store's, say) resets too.
    async with subscribe(served, params={"last_event_id": str(newest + 1000)}) as stream:
        reset = await stream.next()
        assert (reset.event, reset.data["reason"]) == ("reset", "unknown_event_id")
    # The id just before the oldest kept one lost nothing: no reset.
    async with subscribe(served, headers={"Last-Event-ID": str(newest - 1)}) as stream:
        assert (await stream.next()).comments == ["subscribed"]


async def test_the_maintenance_sweep_prunes_events_past_the_retention(make_api, serve):
    api = await make_api(workers=1, events_retention=0.2)
    runtime = api.runtime
    await publish(runtime, "worker", 5)
    first = (await event_repo.event_bounds(runtime.database))[0]
    await asyncio.sleep(0.3)
    served = await serve(api)  # starts the worker, whose first sweep prunes

    async def pruned() -> bool:
        return (await event_repo.event_bounds(runtime.database))[0] > first + 3

    await wait_until(pruned, timeout=10)
    async with subscribe(served, headers={"Last-Event-ID": str(first)}) as stream:
        assert (await stream.next()).event == "reset"


async def test_a_quiet_stream_is_pinged(make_api, serve):
    api = await make_api()
    api.runtime.event_hub.ping_interval = 0.2
    served = await serve(api)
    async with subscribe(served) as stream:
        await stream.next()
        pings = [await stream.next(timeout=2) for _ in range(2)]
    assert all(frame.comments == ["ping"] and not frame.is_event for frame in pings)


async def test_fifty_clients_are_served_by_one_reader(make_api, serve):
    api = await make_api()
    served = await serve(api)
    hub = api.runtime.event_hub
    async with served.client(limits=httpx.Limits(max_connections=None)) as client:
        responses = []
        readers = []
        for _ in range(50):
            response = await client.send(client.build_request("GET", "/api/events"), stream=True)
            responses.append(response)
            readers.append(SseReader(response))
        for reader in readers:
            await reader.next()
        reads_before = hub.reads
        for n in range(10):
            await publish(api.runtime, "worker", 1, start=n)
        received = await asyncio.gather(*(reader.events(10) for reader in readers))
        for response in responses:
            await response.aclose()

    assert all([f.data["n"] for f in frames] == list(range(10)) for frames in received)
    assert hub.reads - reads_before <= 20  # about one read per write, not one per client


async def test_a_client_that_leaves_is_dropped_at_once(make_api, serve):
    api = await make_api()
    served = await serve(api)
    hub = api.runtime.event_hub
    async with subscribe(served) as stream:
        await stream.next()
        assert hub.subscribers == 1

    async def dropped() -> bool:
        return hub.subscribers == 0

    await wait_until(dropped, timeout=2, poll=0.01)


async def test_the_server_shutting_down_ends_the_streams(make_api, serve):
    api = await make_api()
    served = await serve(api)
    async with subscribe(served) as stream:
        await stream.next()
        api.runtime.event_hub.close_streams()
        assert await stream.ended()


@pytest.mark.parametrize(
    ("params", "headers", "status", "param"),
    [
        ({"topic": "nope"}, {}, 400, "topic"),
        ({"topic": ["batch", "batches"]}, {}, 400, "topic"),
        ({"last_event_id": "-1"}, {}, 400, "last_event_id"),
        ({"last_event_id": "ten"}, {}, 400, "last_event_id"),
        ({}, {"Last-Event-ID": "1.5"}, 400, "Last-Event-ID"),
        ({"batch_id": "batch_nope"}, {}, 404, "batch_id"),
    ],
)
async def test_bad_parameters_are_refused_naming_them(make_api, params, headers, status, param):
    api = await make_api()
    response = await api.client.get("/api/events", params=params, headers=headers)
    assert_error(response, status, param=param)
