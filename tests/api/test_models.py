"""`/v1/models` and `/v1/models/{model}` through the official `openai` SDK, against the app
served on 127.0.0.1 in front of the mock provider (and of an upstream that never answers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import openai
import pytest

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
