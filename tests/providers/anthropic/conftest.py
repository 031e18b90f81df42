"""Fixtures of the `anthropic` provider's tests: the mock Anthropic server in a subprocess
(one per module, reset before each test), the HTTP pool, and a provider factory."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from datamill.clock import SystemClock
from datamill.providers.anthropic import AnthropicProvider
from datamill.providers.base import Endpoint, ProviderCall, ProviderContext
from datamill.providers.http import HttpPool
from datamill.settings import DeploymentConfig
from datamill_testing.mock_anthropic import AnthropicMockConfig
from datamill_testing.mock_process import MockProviderProcess

API_KEY = "sk-ant-test-d4t4m1ll-very-secret"
DEFAULTS = AnthropicMockConfig().model_dump()
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def mock_anthropic() -> Iterator[MockProviderProcess]:
    with MockProviderProcess(module="datamill_testing.mock_anthropic") as process:
        yield process


@pytest.fixture
def anthropic(mock_anthropic: MockProviderProcess) -> MockProviderProcess:
    """The module's mock, with its default switches, counters and recorded requests."""
    mock_anthropic.control(**DEFAULTS)
    mock_anthropic.reset_stats()
    return mock_anthropic


def seen_requests(mock: MockProviderProcess) -> list[dict[str, Any]]:
    """What the mock received (``GET /requests``), oldest first."""
    with _OPENER.open(f"{mock.url}/requests", timeout=5) as response:
        seen: list[dict[str, Any]] = json.loads(response.read())
    return seen


def last_body(mock: MockProviderProcess) -> dict[str, Any]:
    body: dict[str, Any] = seen_requests(mock)[-1]["body"]
    return body


@pytest.fixture
async def http() -> AsyncIterator[HttpPool]:
    pool = HttpPool()
    yield pool
    await pool.aclose()


def make_provider(
    http: HttpPool,
    base_url: str | None,
    *,
    api_key: str | None = API_KEY,
    **options: Any,
) -> AnthropicProvider:
    deployment = DeploymentConfig(
        name="claude",
        provider="anthropic",
        base_url=base_url,
        api_key=SecretStr(api_key) if api_key else None,
        options=options,
    )
    return AnthropicProvider(deployment, ProviderContext(http=http, clock=SystemClock()))


@pytest.fixture
def provider(anthropic: MockProviderProcess, http: HttpPool) -> AnthropicProvider:
    return make_provider(http, anthropic.url)


def chat(text: str = "hello", *, model: str = "claude-test", **fields: Any) -> ProviderCall:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **fields}
    return ProviderCall(Endpoint.chat_completions, body, timeout=10)
