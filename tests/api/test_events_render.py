"""An event carries exactly the object the API's GET returns at that moment (both are rendered
by `datamill.render`), through real HTTP on both stores: a batch's events, and a generation
job's status events, from the service (create, stop, resume) and from its runner (the end)."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

from datamill.protocol.generation import GenerationJobObject
from tests.api.sse import SseReader
from tests.api.test_generation import SIM, spec
from tests.helpers import chat_line, jsonl


@asynccontextmanager
async def subscribe(served: Any, topic: str):
    async with (
        served.client() as client,
        client.stream("GET", "/api/events", params={"topic": topic}) as response,
    ):
        assert response.status_code == 200, await response.aread()
        stream = SseReader(response)
        assert (await stream.next()).comments == ["subscribed"]
        yield client, stream


def job_in(data: dict[str, Any]) -> dict[str, Any]:
    """The job a ``generation`` event carries: its payload without ``type``."""
    return {key: value for key, value in data.items() if key != "type"}


async def test_a_batch_event_is_the_batch_get_returns(make_api, serve):
    api = await make_api()  # no worker: the batch stays as each event left it
    served = await serve(api)
    async with subscribe(served, "batch") as (client, stream):
        batch = await api.submit(jsonl(chat_line(f"r{i}") for i in range(3)))
        [created] = await stream.events(1)
        assert created.data["status"] == "validating"
        assert created.data == (await client.get(f"/v1/batches/{batch['id']}")).json()

        cancelled = await client.post(f"/v1/batches/{batch['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        [cancelling] = await stream.events(1)
        assert cancelling.data["status"] == "cancelling"
        assert cancelling.data == (await client.get(f"/v1/batches/{batch['id']}")).json()


async def test_a_generation_status_event_is_the_job_get_returns(make_api, serve):
    api = await make_api(SIM)  # no worker: no runner moves the job between its events
    served = await serve(api)
    async with subscribe(served, "generation") as (client, stream):
        created = (await client.post("/api/generation/jobs", json={"spec": spec()})).json()
        path = f"/api/generation/jobs/{created['id']}"
        for action, status in (("", "running"), ("/stop", "stopped"), ("/resume", "running")):
            if action:
                answer = await client.post(path + action)
                assert answer.status_code == 200, answer.text
            [event] = await stream.events(1)
            assert event.data["type"] == "status"
            assert event.data["status"] == status
            assert "job_id" not in event.data
            got = (await client.get(path)).json()
            assert len(got["cells"]) == 4
            assert job_in(event.data) == got


async def test_a_job_run_to_its_end_ends_with_the_object_get_returns(make_api, serve):
    api = await make_api(SIM, workers=1)
    served = await serve(api)
    async with subscribe(served, "generation") as (client, stream):
        created = (await client.post("/api/generation/jobs", json={"spec": spec()})).json()
        frames = await stream.until(
            lambda f: f.data["type"] == "status" and f.data["status"] == "completed"
        )
        got = (await client.get(f"/api/generation/jobs/{created['id']}")).json()

    assert job_in(frames[-1].data) == got
    assert got["runner"] is None  # published once the runner let the job go
    listed_keys = set(GenerationJobObject.model_fields)
    progress = [f.data for f in frames if f.data["type"] == "progress"]
    assert progress
    for data in progress:
        # The job as the listing renders it (no cells), and what changed since the last.
        assert listed_keys <= set(data)
        assert data["id"] == created["id"]
        assert data["cells"] is None
        for cell in data["changed_cells"]:
            assert set(cell) == set(got["cells"][0])  # as the job's cells render
