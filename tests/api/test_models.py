"""`/v1/models` and `/v1/models/{model}` through the official `openai` SDK, against the app
served on 127.0.0.1 in front of the mock provider (and of an upstream that never answers),
and of the Anthropic and Gemini mocks (their own paginated model lists)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest

from datamill_testing.mock_process import MockProviderProcess
from tests.conftest import mock_deployment


def sdk(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{url}/v1",
        api_key="anything",
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(trust_env=False),
    )


async def test_the_sdk_lists_and_retrieves_what_is_served(make_api, serve, mock):
    mock.control(listed_models=["mock-model", "mock-large", "other-model"])
    api = await make_api(
        [
            # Pass-through, for the names its patterns match: the upstream's list says which.
            mock_deployment(mock, models=["mock-*"]),
            {"name": "fixed", "base_url": mock.base_url, "model": "mock-model", "alias": "smart"},
        ],
        aliases=[{"name": "team", "deployments": ["fixed"]}],
    )
    served = await serve(api)

    async with sdk(served.url) as client:
        listed = {model.id: model async for model in client.models.list()}
        one = await client.models.retrieve("mock-large")
        prefixed = await client.models.retrieve("mock/any-upstream-name")
        with pytest.raises(openai.NotFoundError) as unknown:
            await client.models.retrieve("nobody-serves-this")

    assert set(listed) == {"team", "smart", "mock", "mock-model", "mock-large"}
    kinds = {name: model.model_extra["datamill"]["kind"] for name, model in listed.items()}
    assert kinds == {
        "team": "alias",
        "smart": "deployment",
        "mock": "passthrough",
        "mock-model": "upstream",
        "mock-large": "upstream",
    }
    assert listed["mock-large"].owned_by == "mock"  # the upstream's own fields are kept
    assert listed["mock-large"].created == 1_700_000_000
    assert (one.id, one.object) == ("mock-large", "model")
    assert one.model_extra["datamill"] == {"kind": "upstream", "deployments": ["mock"]}
    assert prefixed.id == "mock/any-upstream-name"
    assert prefixed.model_extra["datamill"] == {"kind": "passthrough", "deployments": ["mock"]}
    error = unknown.value
    assert (error.status_code, error.code, error.param) == (404, "model_not_found", "model")
    assert error.type == "invalid_request_error"


async def test_a_failing_upstream_list_leaves_the_configured_names(make_api, serve, mock):
    mock.control(force_status=500)
    api = await make_api([mock_deployment(mock)])
    served = await serve(api)

    async with sdk(served.url) as client:
        listed = [model.id async for model in client.models.list()]
        # A pass-through deployment without patterns serves any name.
        anything = await client.models.retrieve("whatever-model")

    assert listed == ["mock"]
    assert anything.model_extra["datamill"] == {"kind": "passthrough", "deployments": ["mock"]}


@pytest.fixture
async def silent_upstream() -> AsyncIterator[tuple[str, list[bytes]]]:
    """An HTTP server on 127.0.0.1 that reads requests and never answers them."""
    heard: list[bytes] = []
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        heard.append(await reader.readuntil(b"\r\n\r\n"))

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/v1", heard
    for writer in writers:
        writer.close()
    server.close()


async def test_an_upstream_that_never_answers_does_not_hold_the_listing(
    make_api, serve, mock, silent_upstream
):
    url, heard = silent_upstream
    api = await make_api(
        [mock_deployment(mock), {"name": "silent", "base_url": url, "timeout": 600}]
    )
    served = await serve(api)

    async with sdk(served.url) as client:
        started = time.monotonic()
        first = [model.id async for model in client.models.list()]
        second = [model.id async for model in client.models.list()]
        elapsed = time.monotonic() - started

    assert first == second == ["mock", "silent", "mock-model"]
    # Each listing waits a bounded time (2 s by default), not the deployment's 600 s timeout.
    assert elapsed < 60
    # One refresh is out at a time: the second listing did not ask the silent upstream again.
    assert len(heard) == 1
    assert heard[0].startswith(b"GET /v1/models ")


# -- Anthropic's and Gemini's model lists --------------------------------------------------

CLAUDES = ["claude-opus-4-1", "claude-sonnet-4-5", "claude-haiku-4-5"]
GEMINIS = ["gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.0-flash"]


@pytest.fixture(scope="module")
def native_mocks() -> Iterator[dict[str, MockProviderProcess]]:
    started = {
        "anthropic": MockProviderProcess(module="datamill_testing.mock_anthropic").start(),
        "gemini": MockProviderProcess(module="datamill_testing.mock_gemini").start(),
    }
    try:
        yield started
    finally:
        for process in started.values():
            process.stop()


def _native_deployments(mocks: dict[str, MockProviderProcess]) -> list[dict[str, Any]]:
    """Pass-through deployments of both (Gemini's only for the 2.5 models)."""
    keyed = {"api_key_env": "TEST_KEY_MOCK"}
    return [
        {"name": "claude", "provider": "anthropic", "base_url": mocks["anthropic"].url, **keyed},
        {
            "name": "gem",
            "provider": "gemini",
            "base_url": mocks["gemini"].url,
            "models": ["gemini-2.5-*"],
            **keyed,
        },
    ]


def _requests(mock: MockProviderProcess) -> list[Any]:
    answer = httpx.get(f"{mock.url}/requests", trust_env=False).json()
    return list(answer["requests"] if isinstance(answer, dict) else answer)


async def test_the_sdk_lists_anthropics_and_geminis_models(
    make_api, serve, native_mocks, monkeypatch
):
    monkeypatch.setenv("TEST_KEY_MOCK", "mock-key-for-tests")
    anthropic, gemini = native_mocks["anthropic"], native_mocks["gemini"]
    for mock in native_mocks.values():
        mock.reset_stats()  # and the requests they keep
    # Two models a page: the adapters follow `after_id` and `nextPageToken` (base64, with
    # "+": it reaches the mock intact only when escaped).
    anthropic.control(listed_models=CLAUDES, models_page_size=2, force_status=None)
    gemini.control(
        listed_models=GEMINIS,
        listed_embedding_models=["text-embedding-004", "gemini-embedding-001"],
        models_page_size=2,
        force_status=None,
    )
    api = await make_api(_native_deployments(native_mocks))
    served = await serve(api)

    async with sdk(served.url) as client:
        listed = {model.id: model async for model in client.models.list()}
        haiku = await client.models.retrieve("claude-haiku-4-5")
        flash = await client.models.retrieve("gemini-2.5-flash")

    # Every page; Gemini's embedding-only models left out, its names without "models/", and
    # only those the deployment's patterns take (not gemini-2.0-flash).
    assert set(listed) == {"claude", "gem", *CLAUDES, "gemini-2.5-pro", "gemini-2.5-flash"}
    assert (haiku.owned_by, haiku.model_extra["datamill"]) == (
        "anthropic",
        {"kind": "upstream", "deployments": ["claude"]},
    )
    assert haiku.created > 1_000_000_000  # Anthropic's created_at, as Unix time
    assert haiku.model_extra["display_name"] == "Claude Haiku 4 5"
    assert (flash.owned_by, flash.created) == ("google", 0)
    assert flash.model_extra["datamill"] == {"kind": "upstream", "deployments": ["gem"]}

    claude_pages = [r for r in _requests(anthropic) if r["path"] == "/v1/models"]
    assert len(claude_pages) == 2
    assert claude_pages[0]["headers"]["x-api-key"] == "mock-key-for-tests"
    assert "anthropic-version" in claude_pages[0]["headers"]
    gemini_pages = [r for r in _requests(gemini) if r["path"] == "/v1beta/models"]
    assert len(gemini_pages) == 3
    assert "pageToken=%2B%2B%2B%2B" in gemini_pages[1]["query"]


async def test_a_failing_anthropic_or_gemini_list_leaves_the_configured_names(
    make_api, serve, native_mocks, monkeypatch
):
    monkeypatch.setenv("TEST_KEY_MOCK", "mock-key-for-tests")
    for mock in native_mocks.values():
        mock.control(force_status=529 if mock is native_mocks["anthropic"] else 503)
    try:
        api = await make_api(_native_deployments(native_mocks))
        served = await serve(api)
        async with sdk(served.url) as client:
            listed = [model.id async for model in client.models.list()]
    finally:
        for mock in native_mocks.values():
            mock.control(force_status=None)

    assert sorted(listed) == ["claude", "gem"]
