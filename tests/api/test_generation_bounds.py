"""Issue 14's hardening of spec code: a spec's templates, regexes and schema patterns run
bounded in time and memory, off the event loop. Each probe answers a clear 4xx (or rejects
the sample) within a bound, and the server answers other requests meanwhile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from datamill_testing.mock_process import MockProviderProcess
from tests.api.conftest import Api, assert_error
from tests.api.test_generation import SIM, running, spec

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def with_type(**changes: Any) -> dict[str, Any]:
    """The test spec with its first sample type changed."""
    value = spec()
    value["sample_types"] = [{**value["sample_types"][0], **changes}]
    return value


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        (
            with_type(template="{{ " + "(" * 200 + "1" + ")" * 200 + " }}"),
            "spec.sample_types[0].template",
            "nests too deeply",
        ),
        (
            spec(quality={"regex": [{"pattern": "(" * 3000 + ")" * 3000}]}),
            "spec.quality.regex[0].pattern",
            "nests too deeply",
        ),
        (
            with_type(schema={"type": "string", "pattern": "(" * 3000 + ")" * 3000}),
            "spec.sample_types[0].schema",
            "nests too deeply",
        ),
    ],
)
async def test_deeply_nested_templates_and_regexes_are_400s(
    make_api, body: dict[str, Any], param: str, words: str
):
    api = await make_api(SIM)

    response = await api.client.post("/api/generation/jobs", json={"spec": body})

    error = assert_error(response, 400, param=param, code="invalid_spec")
    assert words in error["message"]


async def served_meanwhile(api: Api, probe: Awaitable[httpx.Response]) -> ProbeResult:
    """Send ``probe``; while it is in flight, GET /healthz. Says whether /healthz was
    answered before the probe (the event loop was not blocked by it)."""
    task = asyncio.ensure_future(probe)
    started = time.monotonic()
    health = await api.client.get("/healthz")
    assert health.status_code == 200, health.text
    first = not task.done()
    response = await task
    return ProbeResult(response, first, time.monotonic() - started)


@dataclass
class ProbeResult:
    response: httpx.Response
    health_first: bool  # /healthz was answered while the probe was in flight
    seconds: float


# Templates the sandbox refuses at once, with the bound they hit.
REFUSED = [
    (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "more than 100,000 numbers",
    ),
    ("{{ 9**(9**7) }}", "over 10,000 bits"),
    ("{{ 'x' * 10**10 }}", "past 2,000,000 items"),
]
# Templates only the worker process's deadline or memory cap stops.
OVERRUN = [
    ("{% for a in 'x' * 99999 %}{% for b in 'x' * 99999 %}{% endfor %}{% endfor %}", "within 1 s"),
    ("{{ 'x' | center(2000000000) }}", "within 512 MB"),
]


@pytest.mark.parametrize(("template", "words"), REFUSED + OVERRUN)
async def test_a_runaway_template_is_a_400_within_its_bound(make_api, template: str, words: str):
    api = await make_api(SIM)
    body = {"spec": with_type(template=template + "{{ variation }}")}

    result = await served_meanwhile(api, api.client.post("/api/generation/preview", json=body))

    error = assert_error(result.response, 400, param="spec.sample_types", code="invalid_spec")
    assert words in error["message"], error
    assert result.seconds < 60
    if (template, words) in OVERRUN[:1]:
        assert result.health_first  # the render held a process, not the event loop


async def test_9_9_7_is_left_associative_in_jinja_and_renders_at_once(make_api):
    api = await make_api(SIM)
    body = {"spec": with_type(template="{{ 9**9**7 }} {{ variation }}")}

    response = await api.client.post("/api/generation/preview", json=body)

    assert response.status_code == 200, response.text
    prompt = response.json()["samples"][0]["prompt"][-1]["content"]
    assert prompt.startswith(str((9**9) ** 7))


def on_mock(mock: MockProviderProcess) -> list[dict[str, Any]]:
    return [{"name": "mock", "base_url": mock.base_url, "model": "mock-model"}]


BACKTRACKS = "^(a+)+$"
LONG = {"text": "a" * 40 + "!"}  # 2^40 ways to fail under re's backtracking


def echoing(body: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
    """``body`` with the model answering ``content`` (the mock echoes ``user``)."""
    return {**body, "model": "mock-model", "sampling": {"user": orjson.dumps(content).decode()}}


@pytest.mark.parametrize("where", ["quality", "schema"])
async def test_a_backtracking_regex_rejects_the_sample_within_its_bound(make_api, mock, where):
    api = await make_api(on_mock(mock))
    schema: dict[str, Any] = {"type": "object", "properties": {"text": {"type": "string"}}}
    quality: dict[str, Any] = {}
    if where == "schema":
        schema["properties"]["text"]["pattern"] = BACKTRACKS
    else:
        quality = {"regex": [{"pattern": BACKTRACKS, "field": "text"}]}
    body = echoing(with_type(schema=schema), LONG) | {"quality": quality}

    result = await served_meanwhile(
        api, api.client.post("/api/generation/preview", json={"spec": body})
    )

    assert result.response.status_code == 200, result.response.text
    (sample,) = result.response.json()["samples"]
    assert sample["accepted"] is False
    assert sample["rejection"] == ("regex" if where == "quality" else "schema")
    assert "took over 1 s" in sample["detail"]
    assert result.health_first  # the check held a process, not the event loop
    assert result.seconds < 60


@pytest.mark.parametrize(("template", "words"), [REFUSED[0], OVERRUN[0]])
async def test_a_stored_runaway_job_fails_cleanly_after_a_restart(
    make_api, template: str, words: str
):
    before = await make_api(SIM)  # no worker: the job waits, stored, for the next server
    body = {"spec": with_type(template=template + "{{ variation }}")}
    created = await before.client.post("/api/generation/jobs", json=body)
    assert created.status_code == 200, created.text

    after = await make_api(SIM, workers=1)
    async with running(after):
        deadline = time.monotonic() + 60
        while True:
            health = await after.client.get("/healthz")  # served while the runner renders
            assert health.status_code == 200
            job = (await after.client.get(f"/api/generation/jobs/{created.json()['id']}")).json()
            if job["status"] != "running":
                break
            assert time.monotonic() < deadline, job
            await asyncio.sleep(0.05)

    assert job["status"] == "failed", job
    assert "TemplateProblem" in job["error"], job
    assert words in job["error"], job
    assert job["requests"] == 0
