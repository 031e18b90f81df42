"""`/api/generation` on both stores: a job started with a YAML spec is driven by the
server's worker to every target; stop and resume; coverage, history, events, listings,
preview; bad input answers 4xx naming the field."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
import yaml

from datamill.storage import events as event_repo
from tests.api.conftest import Api, assert_error

SIM = [{"name": "sim", "provider": "sim", "model": "sim-model"}]
SLOW_SIM = [{"name": "sim", "provider": "sim", "model": "sim-model", "options": {"latency_ms": 30}}]


def spec(**changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "name": "api-test",
        "model": "sim-model",
        "topics": {"items": ["contracts", "torts"]},
        "sample_types": [
            {
                "name": "qa",
                "template": "A question about {{ topic }} from {{ variation.parties }}",
                "schema": {
                    "type": "object",
                    "required": ["question", "answer"],
                    "additionalProperties": False,
                    "properties": {
                        "question": {"type": "string", "minLength": 20},
                        "answer": {"type": "string", "minLength": 40},
                    },
                },
            },
            {
                "name": "summary",
                "template": "Summarise a case on {{ topic }} ({{ variation.seed }})",
                "schema": {
                    "type": "object",
                    "required": ["summary"],
                    "properties": {"summary": {"type": "string", "minLength": 50}},
                },
            },
        ],
        "target": {"per_cell": 3},
        "dedup": {"near": False},
        "loop": {"batch_size": 8},
    }
    value.update(changes)
    return value


async def wait_for_job(
    api: Api, job_id: str, statuses: set[str], timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = await api.client.get(f"/api/generation/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.1)


@asynccontextmanager
async def running(api: Api) -> AsyncIterator[Api]:
    """The app's lifespan: its worker and the worker's generation side task run."""
    async with api.app.router.lifespan_context(api.app):
        yield api


async def test_a_yaml_job_runs_on_the_servers_worker_to_every_target(make_api):
    api = await make_api(SIM, workers=1)
    async with running(api):
        await _a_yaml_job(api)


async def _a_yaml_job(api: Api) -> None:

    response = await api.client.post(
        "/api/generation/jobs",
        content=yaml.safe_dump(spec()),
        headers={"content-type": "application/yaml"},
    )

    assert response.status_code == 200, response.text
    created = response.json()
    assert created["status"] == "running"
    assert created["target"] == 12
    assert len(created["cells"]) == 4
    job = await wait_for_job(api, created["id"], {"completed", "failed"})
    assert job["status"] == "completed", job
    assert [c["accepted"] for c in job["cells"]] == [3, 3, 3, 3]
    assert job["accepted"] == 12

    dataset = (await api.client.get(f"/api/datasets/{job['dataset_id']}")).json()
    assert dataset["sample_count"] == 12
    coverage = (
        await api.client.get(f"/api/generation/jobs/{job['id']}/coverage?diversity=false")
    ).json()
    assert coverage["complete"] is True
    assert coverage["cells_full"] == 4
    history = (await api.client.get(f"/api/generation/jobs/{job['id']}/history")).json()
    assert [run["outcome"] for run in history["data"]] == ["completed"]
    batches = (await api.client.get("/v1/batches")).json()["data"]
    assert batches
    assert {b["metadata"]["datamill_generation_job"] for b in batches} == {job["id"]}
    listed = (await api.client.get("/api/generation/jobs")).json()
    assert [j["id"] for j in listed["data"]] == [job["id"]]
    assert listed["data"][0]["target"] == 12
    assert listed["data"][0]["cells"] is None

    await api.runtime.events.flush()
    events = await event_repo.recent_events(api.runtime.database, topic="generation", since=0)
    payloads = [orjson.loads(e.payload) for e in events]
    assert {p["type"] for p in payloads} >= {"status", "progress"}
    assert payloads[-1]["status"] == "completed"
    progress = [p for p in payloads if p["type"] == "progress"]
    assert {
        "accepted",
        "rejected_by_reason",
        "duplicates",
        "cost",
        "eta_seconds",
        "changed_cells",
    } <= set(progress[0])


async def test_stop_then_resume(make_api):
    api = await make_api(SLOW_SIM, workers=1)
    async with running(api):
        await _stop_then_resume(api)


async def _stop_then_resume(api: Api) -> None:
    body = spec(target={"per_cell": 12}, loop={"batch_size": 6})
    created = (
        await api.client.post(
            "/api/generation/jobs", json={"spec": body, "budget": {"requests": 1000}}
        )
    ).json()
    deadline = time.monotonic() + 20
    while (await wait_for_job(api, created["id"], {"running"}))["accepted"] < 8:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)

    stopped = await api.client.post(f"/api/generation/jobs/{created['id']}/stop")

    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["status"] == "stopped"
    assert stopped.json()["accepted"] < 48
    again = await api.client.post(f"/api/generation/jobs/{created['id']}/stop")
    assert again.json()["status"] == "stopped"
    history = f"/api/generation/jobs/{created['id']}/history"
    deadline = time.monotonic() + 10
    while (await api.client.get(history)).json()["data"][-1]["outcome"] != "stopped":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)  # the runner sees the stop at its next round
    paused = (await api.client.get(f"/api/generation/jobs/{created['id']}")).json()
    await asyncio.sleep(0.3)
    assert (await api.client.get(f"/api/generation/jobs/{created['id']}")).json()[
        "requests"
    ] == paused["requests"]

    resumed = await api.client.post(
        f"/api/generation/jobs/{created['id']}/resume", json={"budget": {"requests": 2000}}
    )
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["budget"]["requests"] == 2000
    job = await wait_for_job(api, created["id"], {"completed", "failed"}, timeout=60)
    assert job["status"] == "completed"
    assert [c["accepted"] for c in job["cells"]] == [12, 12, 12, 12]
    dataset = (await api.client.get(f"/api/datasets/{job['dataset_id']}")).json()
    assert dataset["sample_count"] == 48
    runs = (await api.client.get(f"/api/generation/jobs/{job['id']}/history")).json()["data"]
    assert [r["outcome"] for r in runs] == ["stopped", "completed"]

    conflict = await api.client.post(f"/api/generation/jobs/{job['id']}/stop")
    assert_error(conflict, 409, param="job_id", code="job_not_running")


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_preview_listings_and_schema(make_api):
    api = await make_api(SIM)
    body = {"spec": spec(quality={"min_chars": 10_000})}

    preview = await api.client.post("/api/generation/preview", json=body)

    assert preview.status_code == 200, preview.text
    report = preview.json()
    assert [s["sample_type"] for s in report["samples"]] == ["qa", "summary"]
    assert {s["rejection"] for s in report["samples"]} == {"too_short"}
    assert report["samples"][0]["raw_answer"]["choices"]
    assert report["estimate"]["target"] == 12
    described = (await api.client.post("/api/generation/describe", json=body)).json()
    assert described["topics"] == ["contracts", "torts"]
    assert [t["name"] for t in described["sample_types"]] == ["qa", "summary"]
    schema = (await api.client.get("/api/generation/spec-schema")).json()
    assert "sample_types" in schema["properties"]
    models = (await api.client.get("/api/generation/models")).json()
    assert "sim-model" in {m["id"] for m in models["data"]}
    providers = (await api.client.get("/api/generation/providers")).json()
    assert {"name": "sim", "deployments": ["sim"]} in providers["data"]
    tree = spec(topics={"generate": {"root": "consumer law", "count": 5, "depth": 2}})
    generated = await api.client.post("/api/generation/describe", json={"spec": tree})
    assert generated.status_code == 200, generated.text
    topics = generated.json()["topics"]
    assert len(topics) == 5
    assert len(set(topics)) == 5
    assert all(len(topic.split(" > ")) == 2 for topic in topics)  # leaves, named by their path
    nothing = await api.client.get("/api/generation/stuck")
    assert nothing.json()["data"] == []


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "param", "code"),
    [
        (
            "post",
            "/api/generation/jobs",
            {"json": {"spec": spec(target={"total": 0})}},
            400,
            "spec.target.total",
            "invalid_spec",
        ),
        (
            "post",
            "/api/generation/jobs",
            {"json": {"spec": spec(), "spec_text": "a: 1"}},
            400,
            "spec",
            "invalid_spec",
        ),
        (
            "post",
            "/api/generation/jobs",
            {"json": {"spec": spec(), "colour": 1}},
            400,
            "colour",
            "invalid_value",
        ),
        (
            "post",
            "/api/generation/jobs",
            {"content": b"{nope", "headers": {"content-type": "application/json"}},
            400,
            None,
            "invalid_json",
        ),
        (
            "post",
            "/api/generation/jobs",
            {"content": b"name: [", "headers": {"content-type": "application/yaml"}},
            400,
            "spec",
            "invalid_spec",
        ),
        ("post", "/api/generation/jobs", {"content": b""}, 400, "spec", "invalid_spec"),
        (
            "post",
            "/api/generation/jobs",
            {"json": {"spec": spec(topics={"file": "t.txt"})}},
            400,
            "spec.topics.file",
            "invalid_spec",
        ),
        (
            "post",
            "/api/generation/jobs",
            {"json": {"spec": spec(), "budget": {"usd": -1}}},
            400,
            "budget.usd",
            "invalid_value",
        ),
        ("get", "/api/generation/jobs/gen_nope", {}, 404, "job_id", "not_found"),
        ("post", "/api/generation/jobs/gen_nope/stop", {}, 404, "job_id", "not_found"),
        ("post", "/api/generation/jobs/gen_nope/resume", {}, 404, "job_id", "not_found"),
        ("get", "/api/generation/jobs/gen_nope/coverage", {}, 404, "job_id", "not_found"),
        ("get", "/api/generation/jobs/gen%00x", {}, 400, "job_id", "invalid_value"),
        ("get", "/api/generation/jobs?limit=0", {}, 400, "limit", None),
        (
            "post",
            "/api/generation/preview",
            {"json": {"spec": spec(), "topic": "astrology"}},
            400,
            "topic",
            None,
        ),
        (
            "post",
            "/api/generation/preview",
            {"json": {"spec": spec(), "sample_type": "poem"}},
            400,
            "sample_type",
            None,
        ),
    ],
)
async def test_bad_input_is_a_4xx_naming_the_field(
    make_api, method, path, kwargs, status, param, code
):
    api = await make_api(SIM)
    response = await getattr(api.client, method)(path, **kwargs)
    assert_error(response, status, param=param, code=code)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_a_job_with_no_answers_is_reported_stuck(make_api):
    never = [
        {"name": "sim", "provider": "sim", "model": "sim-model", "options": {"latency_ms": 2_000}}
    ]
    api = await make_api(never, workers=1, stuck_after=0.3)
    async with running(api):
        created = (await api.client.post("/api/generation/jobs", json={"spec": spec()})).json()
        deadline = time.monotonic() + 20
        while not (await api.client.get("/api/generation/stuck")).json()["data"]:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        stuck = (await api.client.get("/api/generation/stuck")).json()["data"]
        assert [j["id"] for j in stuck] == [created["id"]]
        while True:
            await api.runtime.events.flush()
            events = await event_repo.recent_events(
                api.runtime.database, topic="generation", since=0
            )
            kinds = [orjson.loads(e.payload)["type"] for e in events]
            if "stuck" in kinds:
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        await api.client.post(f"/api/generation/jobs/{created['id']}/stop")


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_the_judge_and_both_duplicate_filters_run_in_the_loop(make_api):
    api = await make_api(SIM, workers=1)
    judged = spec(
        target={"per_cell": 2},
        quality={
            "judge": {"prompt": "Score this sample from 0 to 10: {{ sample }}", "threshold": 5}
        },
    )
    choices = {
        "type": "object",
        "required": ["level"],
        "additionalProperties": False,
        "properties": {"level": {"enum": ["low", "medium", "high"]}},
    }
    few = spec(  # three possible contents for a target of four: duplicates must come
        topics={"items": ["only"]},
        sample_types=[{"name": "pick", "template": "{{ variation.seed }}", "schema": choices}],
        target={"per_cell": 4},
        budget={"requests": 30},
    )
    strict = spec(  # every sample is "near" every other: only the first is kept
        topics={"items": ["only"]},
        target={"per_cell": 3},
        dedup={"threshold": 0.01},
        budget={"requests": 12},
    )
    async with running(api):
        ids = []
        for body in (judged, few, strict):
            response = await api.client.post(
                "/api/generation/jobs", json={"spec": body, "dataset": body["name"] + str(len(ids))}
            )
            assert response.status_code == 200, response.text
            ids.append(response.json()["id"])
        jobs = [
            await wait_for_job(api, job_id, {"completed", "budget_exhausted", "failed"})
            for job_id in ids
        ]

    assert jobs[0]["status"] == "completed", jobs[0]
    samples = (await api.client.get(f"/api/datasets/{jobs[0]['dataset_id']}/samples")).json()[
        "data"
    ]
    assert len(samples) == 8
    assert all(s["provenance"]["judge_score"] >= 5 for s in samples)
    assert jobs[0]["requests"] > 8  # samples and their judgements
    assert jobs[1]["status"] == "budget_exhausted"
    assert jobs[1]["accepted"] == 3
    assert sum(c["rejected"].get("duplicate", 0) for c in jobs[1]["cells"]) > 0
    assert jobs[2]["status"] == "budget_exhausted"
    near = [
        c["rejected"].get("near_duplicate", 0) for c in jobs[2]["cells"] if c["topic"] == "only"
    ]
    assert sum(near) > 0
    assert jobs[2]["accepted"] <= 2  # at the default threshold all 6 would be


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("budget", "reason"), [({"usd": 0.002}, "budget_usd"), ({"seconds": 1.5}, "budget_seconds")]
)
async def test_a_cost_or_time_budget_stops_the_job_cleanly(make_api, budget, reason):
    priced = [
        {
            "name": "sim",
            "provider": "sim",
            "model": "sim-model",
            "options": {"latency_ms": 20},
            "input_price": 5.0,
            "output_price": 15.0,
        }
    ]
    api = await make_api(priced, workers=1)
    # 8,000 samples: more than any machine makes in the time budget (about 17 s at the
    # fastest measured rate), while a loaded one still accepts its first ones within 1.5 s.
    body = spec(target={"per_cell": 2000}, loop={"batch_size": 10})
    async with running(api):
        created = (
            await api.client.post("/api/generation/jobs", json={"spec": body, "budget": budget})
        ).json()
        job = await wait_for_job(api, created["id"], {"budget_exhausted", "completed", "failed"})

    assert job["status"] == "budget_exhausted", job
    assert job["stop_reason"] == reason
    assert 0 < job["accepted"] < 8000
    assert all(c["in_flight"] == 0 for c in job["cells"])  # what was out was recorded first
    if reason == "budget_usd":
        # Spending stops at the budget, give or take the requests that were out.
        assert 0.002 <= job["cost"] < 0.002 + 10 * 4 * 0.001
    dataset = (await api.client.get(f"/api/datasets/{job['dataset_id']}")).json()
    assert dataset["sample_count"] == job["accepted"]


# A "billion laughs": 580 bytes of nested aliases that PyYAML would expand to gigabytes.
_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"content": _LAUGHS, "headers": {"content-type": "application/yaml"}}, "aliases"),
        ({"json": {"spec_text": _LAUGHS}}, "aliases"),
        # PyYAML composes by recursion: 3,000 levels was a RecursionError (a 500).
        ({"json": {"spec_text": "name: " + "[" * 3000 + "]" * 3000}}, "levels deep"),
        ({"json": {"spec_text": "name: " + "[" * 300 + "]" * 300}}, "levels deep"),
        ({"json": {"spec_text": "name: x\n" + "#" * (1024 * 1024)}}, "bytes"),
        ({"json": {"spec": spec(description="x" * (1024 * 1024))}}, "bytes"),
        ({"content": b'{"spec": {"name": ' + b"[" * 300 + b"]" * 300 + b"}}"}, "levels deep"),
    ],
)
async def test_spec_bombs_are_refused_with_a_4xx(make_api, kwargs, words):
    api = await make_api(SIM)
    for path in ("/api/generation/jobs", "/api/generation/preview"):
        response = await api.client.post(path, **kwargs)
        assert_error(response, 400, param="spec", code="invalid_spec")
        assert words in response.json()["error"]["message"]
