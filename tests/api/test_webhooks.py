"""Webhooks end to end, on both stores: endpoints made through the API, messages sent by the
runtime's `webhooks` side task to a real receiver on 127.0.0.1, and verified with the
`standardwebhooks` reference library. Waits are for what the receiver or the delivery log
shows, never for a fixed time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from standardwebhooks import Webhook

from datamill.engine.retention import DAY, apply_retention
from datamill.runtime import Role
from datamill.storage.events import NewEvent, prune_events, write_events
from datamill.storage.schema import DEFAULT_PROJECT_ID
from datamill.webhooks.addresses import AddressRefused, check_url, refused_reason
from tests.api.conftest import Api
from tests.api.test_generation import running, spec, wait_for_job
from tests.helpers import chat_line, jsonl

SIM = [{"name": "sim", "provider": "sim", "model": "sim-model"}]
FAST = {
    "webhooks_allow_private": True,
    "webhooks_retry_schedule": (0.05, 0.05),
    "webhooks_poll_interval": 0.05,
}


class Receiver:
    """A webhook receiver: answers each request with the next of ``statuses`` (the last
    one repeated) and keeps what it got."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._changed = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        self._changed.set()
        status = self.statuses[min(len(self.received), len(self.statuses)) - 1]
        return web.Response(status=status, text="gone" if status == 410 else "")

    async def wait(self, count: int, *, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            self._changed.clear()
            left = deadline - time.monotonic()
            assert left > 0, f"{len(self.received)} messages arrived, not {count}"
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass

    def ids(self) -> list[str]:
        return [headers["webhook-id"] for headers, _ in self.received]


@pytest.fixture
async def receiver() -> AsyncIterator[Callable[[list[int]], Any]]:
    runners: list[web.AppRunner] = []

    async def start(statuses: list[int]) -> Receiver:
        found = Receiver(statuses)
        app = web.Application()
        app.router.add_post("/hook", found.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        found.url = f"http://127.0.0.1:{port}/hook"
        return found

    yield start
    for runner in runners:
        await runner.cleanup()


async def create_endpoint(api: Api, url: str, **fields: Any) -> dict[str, Any]:
    response = await api.client.post("/api/webhooks", json={"url": url, **fields})
    assert response.status_code == 200, response.text
    return response.json()


async def deliveries(api: Api, endpoint_id: str) -> list[dict[str, Any]]:
    response = await api.client.get(f"/api/webhooks/{endpoint_id}/deliveries")
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def wait_logged(
    api: Api, endpoint_id: str, status: str, *, timeout: float = 30.0
) -> dict[str, Any]:
    """The newest delivery, once its status is ``status``."""
    deadline = time.monotonic() + timeout
    while True:
        found = await deliveries(api, endpoint_id)
        if found and found[0]["status"] == status:
            return found[0]
        assert time.monotonic() < deadline, f"no {status} delivery: {found}"
        await asyncio.sleep(0.02)


def verified(secret: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The message as `standardwebhooks` verifies it (it raises if the signature is off)."""
    return dict(Webhook(secret).verify(body, {k.lower(): v for k, v in headers.items()}))


async def test_a_completed_batch_sends_one_message_that_verifies(make_api, receiver):
    api = await make_api(SIM, **FAST)
    hook = await receiver([200])
    endpoint = await create_endpoint(api, hook.url, event_types=["batch.completed"])
    assert endpoint["secret"].startswith("whsec_")
    listed = (await api.client.get(f"/api/webhooks/{endpoint['id']}")).json()
    assert listed["secret"] is None  # shown once
    api.runtime.start_side_tasks(Role.worker)
    batch = await api.submit(jsonl([chat_line("a", model="sim-model")]))
    await api.wait_for(batch["id"])
    await hook.wait(1)
    headers, body = hook.received[0]
    message = verified(endpoint["secret"], headers, body)
    assert message["type"] == "batch.completed"
    assert message["data"]["id"] == batch["id"]
    assert message["data"]["status"] == "completed"
    assert message["timestamp"].endswith("Z")
    logged = await wait_logged(api, endpoint["id"], "delivered")
    assert (logged["id"], logged["attempts"], logged["last_status_code"]) == (
        headers["webhook-id"],
        1,
        200,
    )
    # Another round finds nothing more to send.
    assert await api.runtime.webhook_dispatcher.run_once() == 0
    assert len(hook.received) == 1


async def test_a_generation_job_ending_sends_its_message_from_the_servers_side_task(
    make_api, receiver
):
    api = await make_api(SIM, workers=1, **FAST)
    hook = await receiver([200])
    endpoint = await create_endpoint(api, hook.url, event_types=["generation.completed"])
    async with running(api):
        created = (await api.client.post("/api/generation/jobs", json={"spec": spec()})).json()
        job = await wait_for_job(api, created["id"], {"completed", "failed"})
        assert job["status"] == "completed", job
        await hook.wait(1)
    headers, body = hook.received[0]
    message = verified(endpoint["secret"], headers, body)
    assert message["type"] == "generation.completed"
    assert message["data"]["id"] == job["id"]
    assert message["data"]["accepted"] == job["accepted"]
    assert "cells" not in message["data"]
    assert len(hook.received) == 1


async def test_a_failed_attempt_is_retried_with_the_same_id(make_api, receiver):
    api = await make_api(SIM, **FAST)
    hook = await receiver([500, 200])
    endpoint = await create_endpoint(api, hook.url)
    api.runtime.start_side_tasks(Role.worker)
    sent = (await api.client.post(f"/api/webhooks/{endpoint['id']}/test")).json()
    await hook.wait(2)
    assert hook.ids() == [sent["id"], sent["id"]]
    for headers, body in hook.received:
        assert verified(endpoint["secret"], headers, body)["type"] == "webhook.test"
    logged = await wait_logged(api, endpoint["id"], "delivered")
    assert (logged["attempts"], logged["last_status_code"]) == (2, 200)


async def test_the_last_retry_failing_fails_the_delivery(make_api, receiver):
    api = await make_api(SIM, **FAST)
    hook = await receiver([503])
    endpoint = await create_endpoint(api, hook.url)
    api.runtime.start_side_tasks(Role.worker)
    await api.client.post(f"/api/webhooks/{endpoint['id']}/test")
    logged = await wait_logged(api, endpoint["id"], "failed")
    # The first attempt and one per delay of the schedule.
    assert (logged["attempts"], logged["last_status_code"]) == (3, 503)
    assert logged["last_error"].startswith("HTTP 503")
    assert len(hook.received) == 3


async def test_410_disables_the_endpoint(make_api, receiver):
    api = await make_api(SIM, **FAST)
    hook = await receiver([410])
    endpoint = await create_endpoint(api, hook.url)
    api.runtime.start_side_tasks(Role.worker)
    await api.client.post(f"/api/webhooks/{endpoint['id']}/test")
    logged = await wait_logged(api, endpoint["id"], "failed")
    assert (logged["attempts"], logged["last_status_code"]) == (1, 410)
    found = (await api.client.get(f"/api/webhooks/{endpoint['id']}")).json()
    assert found["enabled"] is False
    assert "410" in found["disabled_reason"]
    # A disabled endpoint is sent nothing; enabling it again sends what waits.
    await api.client.post(f"/api/webhooks/{endpoint['id']}/test")
    assert await api.runtime.webhook_dispatcher.run_once() == 0
    assert len(hook.received) == 1
    hook.statuses = [410, 204]
    enabled = await api.client.patch(f"/api/webhooks/{endpoint['id']}", json={"enabled": True})
    assert enabled.json()["disabled_reason"] is None
    await api.runtime.webhook_dispatcher.run_once()
    await wait_logged(api, endpoint["id"], "delivered")


async def test_a_replay_sends_the_same_message_again(make_api, receiver):
    api = await make_api(SIM, **FAST)
    hook = await receiver([200])
    endpoint = await create_endpoint(api, hook.url)
    api.runtime.start_side_tasks(Role.worker)
    sent = (await api.client.post(f"/api/webhooks/{endpoint['id']}/test")).json()
    await wait_logged(api, endpoint["id"], "delivered")
    replayed = await api.client.post(
        f"/api/webhooks/{endpoint['id']}/deliveries/{sent['id']}/replay"
    )
    assert replayed.status_code == 200, replayed.text
    await hook.wait(2)
    (h1, b1), (h2, b2) = hook.received
    assert h1["webhook-id"] == h2["webhook-id"] == sent["id"]
    assert b1 == b2
    assert verified(endpoint["secret"], h2, b2) == orjson.loads(b1)
    unknown = await api.client.post(f"/api/webhooks/{endpoint['id']}/deliveries/msg_unknown/replay")
    assert unknown.status_code == 404


async def test_a_rotated_secret_signs_from_then_on(make_api, receiver):
    api = await make_api(SIM, **FAST)
    hook = await receiver([200])
    endpoint = await create_endpoint(api, hook.url)
    rotated = (await api.client.post(f"/api/webhooks/{endpoint['id']}/rotate-secret")).json()
    assert rotated["secret"] != endpoint["secret"]
    api.runtime.start_side_tasks(Role.worker)
    await api.client.post(f"/api/webhooks/{endpoint['id']}/test")
    await hook.wait(1)
    headers, body = hook.received[0]
    assert verified(rotated["secret"], headers, body)["type"] == "webhook.test"


async def test_private_addresses_are_refused_unless_allowed(make_api):
    api = await make_api(SIM)
    for url, needle in [
        ("http://127.0.0.1:8000/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://[::1]/hook", "loopback"),
        ("http://169.254.169.254/latest", "link-local"),
        ("http://localhost/hook", "loopback"),
        ("ftp://example.com/hook", "http"),
        ("http://user:pw@203.0.113.9/", "credentials"),
    ]:
        response = await api.client.post("/api/webhooks", json={"url": url})
        assert response.status_code == 400, (url, response.text)
        error = response.json()["error"]
        assert error["param"] == "url"
        assert needle in error["message"], (url, error)
    assert (await api.client.get("/api/webhooks")).json()["data"] == []
    unknown = await api.client.post("/api/webhooks", json={"url": "x", "event_types": ["nope"]})
    assert unknown.status_code == 400


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("127.0.0.1", True),
        ("0.0.0.0", True),
        ("192.168.1.1", True),
        ("fd00::1", True),
        ("fe80::1", True),
        ("224.0.0.1", True),
        ("::ffff:10.0.0.1", True),
        ("93.184.215.14", False),
        ("2606:4700::1111", False),
    ],
)
def test_which_addresses_are_refused(address: str, refused: bool):
    assert (refused_reason(address) is not None) is refused


async def test_a_delivery_to_an_address_refused_since_fails(make_api, receiver):
    api = await make_api(SIM, **FAST)
    hook = await receiver([200])
    endpoint = await create_endpoint(api, hook.url)
    api.runtime.settings = api.runtime.settings.model_copy(update={"webhooks_allow_private": False})
    dispatcher = api.runtime.webhook_dispatcher
    dispatcher.settings = api.runtime.settings
    await api.client.post(f"/api/webhooks/{endpoint['id']}/test")
    await dispatcher.run_once()
    logged = (await deliveries(api, endpoint["id"]))[0]
    assert logged["status"] == "failed"
    assert "loopback" in logged["last_error"]
    assert hook.received == []
    with pytest.raises(AddressRefused):
        await check_url(hook.url, allow_private=False)


async def test_nothing_is_sent_twice_by_two_processes(make_api, make_runtime, receiver):
    api = await make_api(SIM, **FAST)
    other = await make_runtime(SIM, **FAST)
    hook = await receiver([200])
    endpoint = await create_endpoint(api, hook.url)
    # Twenty batches end; each shows its final state twice, as events can.
    now = api.runtime.clock.now() + 1
    events = [
        NewEvent(
            "batch",
            orjson.dumps({"id": f"batch_{n}", "status": "completed"}).decode(),
            project_id=DEFAULT_PROJECT_ID,
        )
        for n in range(20)
        for _ in range(2)
    ]
    for start in range(0, len(events), 8):
        await write_events(api.runtime.database, events[start : start + 8], now=now)
        await asyncio.gather(
            api.runtime.webhook_dispatcher.run_once(), other.webhook_dispatcher.run_once()
        )
    await asyncio.gather(
        api.runtime.webhook_dispatcher.run_once(), other.webhook_dispatcher.run_once()
    )
    assert len(hook.received) == 20
    assert len(set(hook.ids())) == 20
    batches = {verified(endpoint["secret"], h, b)["data"]["id"] for h, b in hook.received}
    assert batches == {f"batch_{n}" for n in range(20)}


async def test_events_before_an_endpoint_existed_send_nothing(make_api, receiver):
    api = await make_api(SIM, **FAST)
    hook = await receiver([200])
    past = api.runtime.clock.now() - 60
    payload = orjson.dumps({"id": "batch_old", "status": "completed"}).decode()
    event = NewEvent("batch", payload, project_id=DEFAULT_PROJECT_ID)
    await write_events(api.runtime.database, [event], now=past)
    endpoint = await create_endpoint(api, hook.url)
    await api.runtime.webhook_dispatcher.run_once()
    assert hook.received == []
    assert await deliveries(api, endpoint["id"]) == []


async def test_endpoints_can_be_listed_changed_and_deleted(make_api, receiver):
    api = await make_api(SIM, **FAST)
    hook = await receiver([200])
    endpoint = await create_endpoint(api, hook.url, description="ops")
    changed = await api.client.patch(
        f"/api/webhooks/{endpoint['id']}",
        json={"event_types": ["generation.completed"], "description": None},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["event_types"] == ["generation.completed"]
    assert changed.json()["description"] is None
    listed = (await api.client.get("/api/webhooks")).json()["data"]
    assert [e["id"] for e in listed] == [endpoint["id"]]
    deleted = await api.client.delete(f"/api/webhooks/{endpoint['id']}")
    assert deleted.json() == {
        "id": endpoint["id"],
        "object": "webhook_endpoint.deleted",
        "deleted": True,
    }
    assert (await api.client.get(f"/api/webhooks/{endpoint['id']}")).status_code == 404
    assert (await api.client.get(f"/api/webhooks/{endpoint['id']}/deliveries")).status_code == 404


async def test_the_delivery_log_is_pruned_after_its_retention(make_api, receiver):
    api = await make_api(SIM, retention_webhook_deliveries_days=30, **FAST)
    hook = await receiver([200])
    endpoint = await create_endpoint(api, hook.url)
    await api.client.post(f"/api/webhooks/{endpoint['id']}/test")
    await api.runtime.webhook_dispatcher.run_once()
    now = api.runtime.clock.now()
    kept = await apply_retention(api.runtime.engine, now=now + 29 * DAY)
    assert kept.webhook_deliveries == 0
    assert len(await deliveries(api, endpoint["id"])) == 1
    pruned = await apply_retention(api.runtime.engine, now=now + 31 * DAY)
    assert pruned.webhook_deliveries == 1
    assert await deliveries(api, endpoint["id"]) == []


async def test_events_pruned_before_they_were_read_are_reported(make_api, receiver, caplog):
    api = await make_api(SIM, **FAST)
    await create_endpoint(api, (await receiver([200])).url)
    dispatcher = api.runtime.webhook_dispatcher
    database, now = api.runtime.database, api.runtime.clock.now()
    running = NewEvent(
        "batch", '{"id": "b", "status": "in_progress"}', project_id=DEFAULT_PROJECT_ID
    )
    await write_events(database, [running], now=now - 7200)
    await dispatcher.run_once()  # read up to it: no process reads for two hours
    await write_events(database, [running] * 3, now=now - 7100)  # pruned before read
    await write_events(database, [running], now=now)
    await prune_events(database, before=now - 3600)
    with caplog.at_level(logging.WARNING, logger="datamill.webhooks"):
        await dispatcher.run_once()
    assert "were pruned before webhooks read them" in caplog.text
