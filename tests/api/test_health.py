"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import text

from datamill.api.app import create_app
from datamill.runtime import Runtime
from tests.helpers import running_worker


async def readiness(api):
    response = await api.client.get("/readyz")
    body = response.json()
    assert set(body) == {"status", "checks"}
    return response.status_code, body


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
    assert body == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "workers": "ok"},
    }


async def test_not_ready_without_a_live_worker(make_api):
    api = await make_api()
    status, body = await readiness(api)
    assert status == 503
    assert body["status"] == "not_ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["migrations"] == "ok"
    assert "no live worker" in body["checks"]["workers"]


async def test_not_ready_when_in_process_workers_are_not_running(make_api):
    api = await make_api(workers=1)
    # ASGITransport runs no lifespan: the app expects a worker that never started.
    status, body = await readiness(api)
    assert status == 503, body
    assert body["checks"]["workers"] != "ok"

    async with api.app.router.lifespan_context(api.app):
        status, body = await readiness(api)
        assert status == 200, body
        local = api.app.state.workers
        worker = local.workers[0]
        worker.stop()
        await asyncio.wait_for(api.runtime.side_tasks.wait(worker.id), timeout=30)
        status, body = await readiness(api)
        assert status == 503
        assert body["checks"]["workers"] == "an in-process worker has stopped"


async def test_not_ready_when_the_schema_is_behind(make_api):
    api = await make_api()
    async with running_worker(api.runtime) as worker:
        await worker.started.wait()
        async with api.runtime.database.write() as conn:
            await conn.execute(text("DELETE FROM alembic_version"))
        status, body = await readiness(api)
    assert status == 503
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["workers"] == "ok"
    assert body["checks"]["migrations"].startswith("at None, expected ")
    assert "datamill migrate" in body["checks"]["migrations"]


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
        httpx.AsyncClient(transport=transport, base_url="http://datamill.test") as client,
    ):
        response = await client.get("/readyz")
        assert response.status_code == 200, response.text
        assert app.state.workers.alive() is True
        runtime = app.state.runtime
    assert closed == [runtime]  # the app closes the runtime it opened, and only that one
