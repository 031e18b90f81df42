"""The event stream's bounds over real HTTP: at most DATAMILL_EVENTS_MAX_SUBSCRIBERS clients
at once (a 503 with Retry-After beyond, the place freed when a client leaves), and a resuming
client is replayed at most DATAMILL_EVENTS_MAX_REPLAY events before a reset."""

from __future__ import annotations

from contextlib import AsyncExitStack

from tests.api.conftest import assert_error
from tests.api.sse import SseReader
from tests.api.test_events import publish, subscribe
from tests.engine.conftest import wait_until


async def test_the_subscriber_cap_is_enforced_and_freed_when_clients_leave(make_api, serve):
    api = await make_api(events_max_subscribers=2)
    served = await serve(api)
    hub = api.runtime.event_hub

    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(subscribe(served))
        await first.next()
        async with subscribe(served) as second:
            await second.next()
            async with served.client() as client:
                refused = await client.get("/api/events")
            error = assert_error(refused, 503, param=None, code="too_many_subscribers")
            assert error["type"] == "server_error"
            assert "DATAMILL_EVENTS_MAX_SUBSCRIBERS" in error["message"]
            assert int(refused.headers["retry-after"]) > 0
            assert hub.admitted == 2

        async def one_left() -> bool:
            return hub.admitted == 1

        await wait_until(one_left, timeout=10)  # the second client left: its place is free
        async with subscribe(served) as third:
            assert (await third.next()).comments == ["subscribed"]
            await publish(api.runtime, "worker", 1)
            [event] = await third.events(1)
            assert event.data == {"n": 0}
            [same] = await first.events(1)
            assert same.data == {"n": 0}

    async def none_left() -> bool:
        return hub.admitted == 0

    await wait_until(none_left, timeout=10)


async def test_a_refused_parameter_takes_no_place(make_api, serve):
    api = await make_api(events_max_subscribers=1)
    served = await serve(api)

    async with served.client() as client:
        for _ in range(3):
            bad = await client.get("/api/events", params={"topic": "nope"})
            assert_error(bad, 400, param="topic", code="invalid_value")
    async with subscribe(served) as stream:
        assert (await stream.next()).comments == ["subscribed"]


async def test_a_long_replay_is_cut_with_a_reset_and_live_events_follow(make_api, serve):
    api = await make_api(events_max_replay=5)
    served = await serve(api)
    async with subscribe(served) as stream:
        start = (await stream.next()).id
    await publish(api.runtime, "worker", 12)

    async with (
        served.client() as client,
        client.stream("GET", "/api/events", headers={"Last-Event-ID": str(start)}) as response,
    ):
        assert response.status_code == 200
        stream = SseReader(response)
        replayed = await stream.events(6)
        await publish(api.runtime, "worker", 1, start=100)
        [live] = await stream.events(1)

    assert [frame.data["n"] for frame in replayed[:5]] == [0, 1, 2, 3, 4]
    reset = replayed[5]
    assert reset.event == "reset"
    assert reset.data["reason"] == "replay_too_long"
    assert reset.data["last_event_id"] == reset.id > replayed[4].id
    assert live.data == {"n": 100}


async def test_a_replay_within_the_bound_is_whole(make_api, serve):
    api = await make_api(events_max_replay=12)
    served = await serve(api)
    async with subscribe(served) as stream:
        start = (await stream.next()).id
    await publish(api.runtime, "worker", 12)

    async with subscribe(served, headers={"Last-Event-ID": str(start)}) as stream:
        replayed = await stream.events(12)
        await publish(api.runtime, "worker", 1, start=100)
        [live] = await stream.events(1)

    assert [frame.data["n"] for frame in replayed] == list(range(12))
    assert live.data == {"n": 100}
