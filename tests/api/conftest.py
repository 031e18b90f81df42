"""Fixtures of the API tests: an app on the test's store with an httpx client in front of it,
and one mock provider shared by the whole session (its switches are reset after each test)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from datamill.api.app import create_app
from datamill.runtime import Runtime
from datamill_testing.mock_process import MockProviderProcess
from datamill_testing.mock_provider import MockConfig
from tests.helpers import CHAT

TERMINAL = frozenset({"failed", "completed", "expired", "cancelled"})
# Every error body the API answers has exactly these fields (OpenAI's error shape).
ERROR_FIELDS = {"message", "type", "param", "code"}


@dataclass
class Api:
    """An app on one runtime, and a client that talks to it through ASGITransport."""

    runtime: Runtime
    app: FastAPI
    client: httpx.AsyncClient

    async def upload(
        self,
        data: bytes,
        *,
        purpose: str = "batch",
        filename: str = "input.jsonl",
        **fields: str,
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/files", files={"file": (filename, data)}, data={"purpose": purpose, **fields}
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def create_batch(
        self, file_id: str, *, headers: dict[str, str] | None = None, **body: Any
    ) -> dict[str, Any]:
        payload = {"input_file_id": file_id, "endpoint": CHAT, "completion_window": "24h", **body}
        response = await self.client.post("/v1/batches", json=payload, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    async def submit(self, data: bytes, **body: Any) -> dict[str, Any]:
        """Upload ``data`` and create a batch from it."""
        file = await self.upload(data)
        return await self.create_batch(file["id"], **body)

    async def batch(self, batch_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/batches/{batch_id}")
        assert response.status_code == 200, response.text
        return response.json()

    async def wait_for(
        self,
        batch_id: str,
        done: Callable[[dict[str, Any]], bool] = lambda b: b["status"] in TERMINAL,
        *,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Poll the batch until ``done(batch)`` (by default: a terminal status)."""
        deadline = time.monotonic() + timeout
        while True:
            batch = await self.batch(batch_id)
            if done(batch):
                return batch
            if time.monotonic() > deadline:
                raise AssertionError(f"batch not there after {timeout} s: {batch}")
            await asyncio.sleep(0.05)

    async def lines(self, path: str) -> tuple[httpx.Response, list[dict[str, Any]]]:
        response = await self.client.get(path)
        assert response.status_code == 200, response.text
        return response, [orjson.loads(line) for line in response.content.splitlines()]


ApiFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(make_runtime: Any) -> AsyncIterator[ApiFactory]:
    """Build an `Api` on the test's store (both stores through ``store_url``). Arguments go to
    ``make_runtime``; ``workers`` to ``create_app`` (0: no in-process worker)."""
    clients: list[httpx.AsyncClient] = []

    async def make(
        deployments: list[dict[str, Any]] | None = None, *, workers: int = 0, **overrides: Any
    ) -> Api:
        runtime = await make_runtime(deployments, **overrides)
        app = create_app(runtime=runtime, workers=workers)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost"
        )
        clients.append(client)
        return Api(runtime, app, client)

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture(scope="session")
def shared_mock() -> Iterator[MockProviderProcess]:
    with MockProviderProcess() as process:
        yield process


_DEFAULTS = MockConfig().model_dump()


@pytest.fixture
def mock(shared_mock: MockProviderProcess) -> Iterator[MockProviderProcess]:
    """The session's mock provider, with default switches and fresh counters for this test."""
    shared_mock.control(**_DEFAULTS)
    shared_mock.reset_stats()
    yield shared_mock
    shared_mock.control(**_DEFAULTS)


def assert_error(
    response: httpx.Response, status: int, *, param: str | None, code: str | None = None
) -> dict[str, Any]:
    """The response is an OpenAI-shaped error with this status and param; returns the error."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert ERROR_FIELDS <= set(error) <= ERROR_FIELDS | {"line", "datamill_category"}, error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert "Value error" not in error["message"], error  # pydantic's noise is stripped
    assert isinstance(error["type"], str)
    assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    return error


# -- a real HTTP server for streams (ASGITransport buffers a response until it ends) ---------


@dataclass
class Served:
    """An app served by uvicorn in this process, on a free port of 127.0.0.1."""

    api: Api
    url: str
    server: Any

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30, **kwargs)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Api], Awaitable[Served]]]:
    """Serve an `Api`'s app over real HTTP; every server stops at the end of the test."""
    import uvicorn

    running: list[tuple[Served, asyncio.Task[None]]] = []

    async def start(api: Api) -> Served:
        config = uvicorn.Config(api.app, host="127.0.0.1", port=0, log_level="warning")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        served = Served(api, f"http://127.0.0.1:{port}", server)
        running.append((served, task))
        return served

    yield start
    for served, task in running:
        served.api.runtime.event_hub.close_streams()  # open streams would hold the shutdown
        served.server.should_exit = True
        await task
