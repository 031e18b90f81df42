"""The mock Anthropic server, served in-process: it validates like Anthropic, streams the
exact event sequence, answers errors in Anthropic's shape, and runs Message Batches."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from datamill_testing.mock_anthropic import MOCK_ANTHROPIC, MockAnthropic, build_app
from datamill_testing.mock_provider import start_mock

HEADERS = {"x-api-key": "test-key", "anthropic-version": "2023-06-01"}
USER = {"role": "user", "content": "hello"}


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, MockAnthropic]]:
    runner, port = await start_mock(build=build_app)
    try:
        app: web.Application = runner.app
        yield f"http://127.0.0.1:{port}", app[MOCK_ANTHROPIC]
    finally:
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: Any,
    headers: dict[str, str] = HEADERS,
) -> tuple[int, dict[str, Any]]:
    async with session.post(url, json=body, headers=headers) as response:
        return response.status, await response.json()


def message(**fields: Any) -> dict[str, Any]:
    return {"model": "claude-test", "max_tokens": 100, "messages": [USER], **fields}


# -- validation -------------------------------------------------------------------------------

INVALID = [
    ({"model": "m", "messages": [USER]}, "max_tokens: Field required"),
    (message(top_k_sampling=3), "top_k_sampling: Extra inputs are not permitted"),
    (message(messages=[{"role": "system", "content": "x"}]), "messages.0.role"),
    (message(messages=[{"role": "user", "content": ""}]), "non-empty content"),
    (
        message(messages=[{"role": "user", "content": [{"type": "text", "text": ""}]}]),
        "text content blocks must be non-empty",
    ),
    (message(temperature=1.5), "temperature"),
    (message(tool_choice={"type": "any"}), "tool_choice may only be specified"),
    (
        message(
            messages=[
                USER,
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
                },
                {"role": "user", "content": "no result"},
            ]
        ),
        "`tool_use` ids were found without `tool_result` blocks",
    ),
    (
        message(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t9", "content": "x"}],
                }
            ]
        ),
        "unexpected `tool_use_id`",
    ),
    (
        message(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/bmp", "data": "A"},
                        }
                    ],
                }
            ]
        ),
        "media_type",
    ),
    (
        message(
            tools=[{"name": "f", "input_schema": {"type": "object"}}],
            tool_choice={"type": "tool", "name": "f"},
            thinking={"type": "adaptive"},
        ),
        "Thinking may not be enabled when tool_choice forces tool use",
    ),
    (message(tools=[{"name": "f", "input_schema": {"type": "array"}}]), "input_schema.type"),
]


@pytest.mark.parametrize(("body", "expected"), INVALID)
async def test_requests_anthropic_refuses_are_refused(server, session, body, expected):
    url, _ = server
    status, answer = await post(session, f"{url}/v1/messages", body)
    assert status == 400
    assert answer["type"] == "error"
    assert answer["error"]["type"] == "invalid_request_error"
    assert expected in answer["error"]["message"]


async def test_headers_are_required(server, session):
    url, _ = server
    status, answer = await post(session, f"{url}/v1/messages", message(), headers={})
    assert (status, answer["error"]["type"]) == (401, "authentication_error")
    no_version = {"x-api-key": "k"}
    status, answer = await post(session, f"{url}/v1/messages", message(), headers=no_version)
    assert (status, answer["error"]["message"]) == (400, "anthropic-version: header is required")


async def test_the_2026_version_refuses_sampling_parameters(server, session):
    url, _ = server
    headers = {**HEADERS, "anthropic-version": "2026-10-21"}
    status, answer = await post(session, f"{url}/v1/messages", message(temperature=1), headers)
    assert (status, answer["error"]["message"]) == (
        400,
        "`temperature` is deprecated for this model.",
    )
    status, _ = await post(session, f"{url}/v1/messages", message(), headers)
    assert status == 200


async def test_consecutive_turns_merge_and_requests_are_recorded(server, session):
    url, mock = server
    body = message(messages=[USER, {"role": "user", "content": "again"}])
    status, answer = await post(session, f"{url}/v1/messages", body)
    assert status == 200
    assert answer["content"] == [{"type": "text", "text": "mock answer to again"}]
    async with session.get(f"{url}/requests") as response:
        [seen] = await response.json()
    assert (seen["path"], seen["body"]) == ("/v1/messages", body)
    assert seen["headers"]["x-api-key"] == "test-key"
    assert mock.counters.by_status[200] == 1


async def test_injected_errors_are_in_anthropics_shape(server, session):
    url, _ = server
    for status, kind in [(529, "overloaded_error"), (500, "api_error"), (429, "rate_limit_error")]:
        async with session.post(f"{url}/control", json={"force_status": status}):
            pass
        async with session.post(f"{url}/v1/messages", json=message(), headers=HEADERS) as answer:
            body = await answer.json()
            assert (answer.status, body["error"]["type"]) == (status, kind)
            assert answer.headers["request-id"].startswith("req_")
            assert ("retry-after" in answer.headers) is (status == 429)


async def test_control_refuses_unknown_switches(server, session):
    url, _ = server
    async with session.post(f"{url}/control", json={"batch_pols": 2}) as response:
        assert response.status == 400
    async with session.post(f"{url}/control", json={"batch_polls": 2}) as response:
        assert (await response.json())["batch_polls"] == 2


# -- streaming ------------------------------------------------------------------------------


async def stream_events(session, url, body) -> list[tuple[str, dict[str, Any]]]:
    async with session.post(f"{url}/v1/messages", json=body, headers=HEADERS) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        text = (await response.read()).decode()
    events = []
    for block in text.strip().split("\n\n"):
        name, data = block.split("\n")
        events.append((name.removeprefix("event: "), orjson.loads(data.removeprefix("data: "))))
    return events


async def test_a_text_stream_is_the_documented_sequence(server, session):
    url, mock = server
    events = await stream_events(session, url, message(stream=True))

    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 4,  # "mock", " answer", " to", " hello"
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert (start["content"], start["stop_reason"], start["usage"]["output_tokens"]) == (
        [],
        None,
        1,
    )
    assert start["usage"]["input_tokens"] > 0
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "end_turn"
    assert final["usage"]["output_tokens"] > 1
    assert "".join(
        data["delta"]["text"] for name, data in events if name == "content_block_delta"
    ) == ("mock answer to hello")
    assert (mock.counters.streams, mock.counters.streams_completed) == (1, 1)


async def test_a_forced_tool_streams_input_json_deltas(server, session):
    url, _ = server
    tool = {
        "name": "get_weather",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
    body = message(stream=True, tools=[tool], tool_choice={"type": "tool", "name": "get_weather"})
    events = await stream_events(session, url, body)

    opening = events[1][1]["content_block"]
    assert (opening["type"], opening["name"], opening["input"]) == ("tool_use", "get_weather", {})
    pieces = [data["delta"] for name, data in events if name == "content_block_delta"]
    assert {piece["type"] for piece in pieces} == {"input_json_delta"}
    assert "city" in orjson.loads("".join(piece["partial_json"] for piece in pieces))
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


async def test_an_error_event_midway(server, session):
    url, _ = server
    async with session.post(f"{url}/control", json={"stream_error_after": 3}):
        pass
    events = await stream_events(session, url, message(stream=True))
    assert [name for name, _ in events][-1] == "error"
    assert events[-1][1]["error"]["type"] == "overloaded_error"
    assert len(events) == 4


# -- batches --------------------------------------------------------------------------------


async def test_batch_requests_are_checked_as_a_whole(server, session):
    url, _ = server
    item = {"custom_id": "a", "params": message()}
    for requests, problem in [
        ([], "at least one request"),
        ([item, item], "duplicate"),
        ([{"custom_id": "a b", "params": message()}], "custom_id"),
    ]:
        status, answer = await post(session, f"{url}/v1/messages/batches", {"requests": requests})
        assert status == 400
        assert problem in answer["error"]["message"]
