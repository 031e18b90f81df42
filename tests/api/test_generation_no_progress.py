"""A generation job whose answers bring no new sample stops by itself, after
``loop.max_idle_rounds`` rounds' worth of answers (issue 14): a model that only repeats
itself, or a regex no answer passes in time, no longer runs for ever."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from datamill.generation import confined
from datamill.generation.confined import ConfinedPool, Limits
from datamill_testing.mock_process import MockProviderProcess
from tests.api.conftest import Api
from tests.api.test_generation import running, spec

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)

SAME = {"text": "Always the same answer, word for word, whatever the prompt says."}


def on_mock(mock: MockProviderProcess) -> list[dict[str, Any]]:
    return [{"name": "mock", "base_url": mock.base_url, "model": "mock-model"}]


def repeating(content: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A spec whose model answers ``content`` every time (the mock echoes ``user``)."""
    value = spec(model="mock-model", sampling={"user": orjson.dumps(content).decode()})
    value["sample_types"] = [
        {
            "name": "note",
            "template": "Write a note about {{ topic }} ({{ variation.seed }})",
            "schema": {"type": "object", "properties": {"text": {"type": "string"}}},
        }
    ]
    value.update(changes)
    return value


async def ended(api: Api, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = (await api.client.get(f"/api/generation/jobs/{job_id}")).json()
        if job["status"] != "running":
            return job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.05)


async def test_a_model_that_repeats_itself_stops_the_job_by_default(make_api, mock):
    api = await make_api(on_mock(mock), workers=1)
    async with running(api):
        created = await api.client.post("/api/generation/jobs", json={"spec": repeating(SAME)})
        assert created.status_code == 200, created.text
        job = await ended(api, created.json()["id"])

    assert job["status"] == "budget_exhausted", job
    assert job["stop_reason"] == "no_progress"
    assert job["accepted"] == 1  # the first answer; every other one is the same
    # 10 rounds (the default) of 8 answers (batch_size; 5 short x 1.5 is more) each, and
    # what was in flight then (surplus answers, beyond a cell's room, are no verdict).
    assert 80 <= job["duplicates"] <= 80 + 8
    runs = (await api.client.get(f"/api/generation/jobs/{job['id']}/history")).json()["data"]
    assert [run["outcome"] for run in runs] == ["budget_exhausted"]


async def test_a_stored_job_whose_regex_backtracks_stops_after_a_restart(
    make_api, mock, monkeypatch: pytest.MonkeyPatch
):
    # Tight bounds: each check call takes one answer past its deadline and leaves the
    # others for the next pass, which the job sends again.
    pool = ConfinedPool(limits=Limits(seconds=0.2, overrun=0.1))
    monkeypatch.setattr(confined, "_shared", pool)
    long = {"text": "a" * 40 + "!"}  # ^(a+)+$ backtracks 2^40 times on it under `re`
    body = repeating(
        long,
        topics={"items": ["contracts"]},
        target={"per_cell": 2},
        quality={"regex": [{"pattern": "^(a+)+$", "field": "text"}]},
        loop={"batch_size": 3, "max_idle_rounds": 2},
    )
    before = await make_api(on_mock(mock))  # no worker: the job waits for the next server
    created = await before.client.post("/api/generation/jobs", json={"spec": body})
    assert created.status_code == 200, created.text

    after = await make_api(on_mock(mock), workers=1)
    async with running(after):
        job = await ended(after, created.json()["id"])
        assert (await after.client.get("/healthz")).status_code == 200

    pool.close()
    assert job["status"] == "budget_exhausted", job
    assert job["stop_reason"] == "no_progress"
    assert job["accepted"] == 0
    assert job["cells"][0]["rejected"]["regex"] >= 2 * 3
