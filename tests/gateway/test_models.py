"""`ModelCatalog`: upstream model lists cached with a TTL, failures tolerated, one refresh
per deployment at a time; time is a fake clock, upstreams are fake listers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from datamill.errors import ErrorCategory, ProviderError
from datamill.gateway.models import ModelCatalog
from datamill.providers.base import Capabilities
from datamill.scheduler.gate import DeploymentGate
from datamill.scheduler.router import DeploymentHandle, Router
from datamill.settings import DeploymentConfig
from tests.scheduler.conftest import FakeClock


class Lister:
    """A provider whose upstream lists ``names``, or fails while ``failing`` is set."""

    capabilities = Capabilities(chat=True, embeddings=True)

    def __init__(self, *names: str) -> None:
        self.names = list(names)
        self.failing = False
        self.calls = 0
        self.release: asyncio.Event | None = None  # when set: answers only once released
        self.answered = asyncio.Event()

    async def list_models(self) -> list[dict[str, Any]]:
        self.calls += 1
        if self.release is not None:
            await self.release.wait()
        if self.failing:
            raise ProviderError(ErrorCategory.server_error, "HTTP 500", status_code=500)
        self.answered.set()  # the catalog stores the list before the waiter runs
        return [
            {"id": name, "object": "model", "created": 1, "owned_by": "up"} for name in self.names
        ]

    async def aclose(self) -> None:
        pass


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def catalog(clock: FakeClock, lister: Lister, **kwargs: Any) -> ModelCatalog:
    config = DeploymentConfig(name="up", base_url="http://127.0.0.1:9/v1")
    gate = DeploymentGate(config, clock, default_concurrency=4)
    router = Router([DeploymentHandle(config=config, provider=lister, gate=gate)])  # type: ignore[arg-type]
    return ModelCatalog(router, clock, **kwargs)


async def ids(models: ModelCatalog) -> list[str]:
    return [entry["id"] for entry in await models.list_models()]


async def test_an_upstream_list_is_cached_for_its_ttl(clock):
    lister = Lister("a", "b")
    models = catalog(clock, lister, ttl=60)

    assert await ids(models) == ["up", "a", "b"]
    lister.names = ["a", "b", "c"]
    clock.advance(59)
    assert await ids(models) == ["up", "a", "b"]
    clock.advance(2)
    assert await ids(models) == ["up", "a", "b", "c"]
    assert lister.calls == 2


async def test_a_failure_keeps_the_last_list_and_is_retried_later(clock):
    lister = Lister("a")
    models = catalog(clock, lister, ttl=60, retry=10)
    assert await ids(models) == ["up", "a"]

    lister.failing = True
    clock.advance(61)
    assert await ids(models) == ["up", "a"]  # the list it had
    clock.advance(5)
    assert await ids(models) == ["up", "a"]
    assert lister.calls == 2  # not asked again before `retry`
    lister.failing = False
    lister.names = ["b"]
    clock.advance(6)
    assert await ids(models) == ["up", "b"]


async def test_a_slow_upstream_is_waited_for_a_bounded_time_once(clock):
    lister = Lister("a")
    lister.release = asyncio.Event()
    models = catalog(clock, lister, wait=0.01)

    assert await ids(models) == ["up"]  # answered without the upstream
    assert await ids(models) == ["up"]
    assert lister.calls == 1  # the refresh still out is not started again
    lister.release.set()
    await lister.answered.wait()  # the refresh ends in the background
    assert await ids(models) == ["up", "a"]
    assert lister.calls == 1
    await models.aclose()


async def test_what_is_kept_of_an_upstream_list_is_bounded(clock, monkeypatch):
    monkeypatch.setattr("datamill.gateway.models.MAX_LISTED", 3)
    lister = Lister("x" * 257, *(f"m{i}" for i in range(10)))
    models = catalog(clock, lister)

    assert await ids(models) == ["up", "m0", "m1", "m2"]
