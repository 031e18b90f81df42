"""Fixtures of the gemini tests: the mock Gemini server in a subprocess (one per module,
reset before each test), a provider bound to it, and what the mock last received."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from datamill.clock import SystemClock
from datamill.providers.base import Endpoint, ProviderCall, ProviderContext
from datamill.providers.gemini import GeminiProvider
from datamill.providers.http import HttpPool
from datamill.settings import DeploymentConfig
from datamill_testing.mock_gemini import GeminiSwitches
from datamill_testing.mock_process import MockProviderProcess
from datamill_testing.mock_provider import MockConfig

API_KEY = "AIza-test-d4t4m1ll-very-secret"
_DEFAULTS = {**MockConfig().model_dump(), **GeminiSwitches().model_dump()}


@pytest.fixture(scope="module")
def gemini_process() -> Iterator[MockProviderProcess]:
    with MockProviderProcess(module="datamill_testing.mock_gemini") as process:
        yield process


@pytest.fixture
def gemini_mock(gemini_process: MockProviderProcess) -> MockProviderProcess:
    """The module's mock with its default switches and fresh counters."""
    gemini_process.control(**_DEFAULTS)
    gemini_process.reset_stats()
    return gemini_process


@pytest.fixture
async def http() -> AsyncIterator[HttpPool]:
    pool = HttpPool()
    yield pool
    await pool.aclose()


def make_provider(
    base_url: str, http: HttpPool, *, api_key: str | None = API_KEY, **options: Any
) -> GeminiProvider:
    deployment = DeploymentConfig(
        name="g",
        provider="gemini",
        base_url=base_url,
        api_key=SecretStr(api_key) if api_key else None,
        options=options,
    )
    return GeminiProvider(deployment, ProviderContext(http=http, clock=SystemClock()))


@pytest.fixture
def provider(gemini_mock: MockProviderProcess, http: HttpPool) -> GeminiProvider:
    return make_provider(gemini_mock.url, http)


def seen(mock: MockProviderProcess) -> list[dict[str, Any]]:
    """What the mock received, oldest first: ``{"path", "query", "body"}``."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{mock.url}/requests", timeout=5) as answer:
        requests: list[dict[str, Any]] = json.loads(answer.read())["requests"]
    return requests


def chat(text: str = "hello", model: str = "gemini-test", **fields: Any) -> ProviderCall:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **fields}
    return ProviderCall(Endpoint.chat_completions, body, timeout=10)


def chat_body(
    messages: list[dict[str, Any]], model: str = "gemini-test", **fields: Any
) -> ProviderCall:
    return ProviderCall(
        Endpoint.chat_completions, {"model": model, "messages": messages, **fields}, timeout=10
    )
