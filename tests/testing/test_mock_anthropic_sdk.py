"""The official anthropic SDK against the mock: if the SDK parses what the mock says (a
message, a stream of events, a Message Batch and its JSONL results), the mock speaks
Anthropic's wire format, and the adapter's tests against it mean something."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import pytest

from datamill_testing.mock_anthropic import MOCK_ANTHROPIC, MockAnthropic, start_anthropic_mock

TOOL = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
async def mock() -> AsyncIterator[tuple[str, MockAnthropic]]:
    runner, port = await start_anthropic_mock()
    try:
        yield f"http://127.0.0.1:{port}", runner.app[MOCK_ANTHROPIC]
    finally:
        await runner.cleanup()


@pytest.fixture
async def client(
    mock: tuple[str, MockAnthropic], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[anthropic.AsyncAnthropic]:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    sdk = anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=mock[0], max_retries=0)
    try:
        yield sdk
    finally:
        await sdk.close()


async def test_the_sdk_creates_a_message(client):
    message = await client.messages.create(
        model="claude-test",
        max_tokens=64,
        system="Be brief.",
        messages=[{"role": "user", "content": "hello"}],
    )
    assert isinstance(message, anthropic.types.Message)
    assert message.content[0].type == "text"
    assert message.content[0].text == "mock answer to hello"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0


async def test_the_sdk_streams_text_and_a_tool_call(client):
    async with client.messages.stream(
        model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "hello"}]
    ) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(texts) == "mock answer to hello"
    assert final.content[0].text == "mock answer to hello"
    assert final.usage.output_tokens > 1

    async with client.messages.stream(
        model="claude-test",
        max_tokens=64,
        messages=[{"role": "user", "content": "weather?"}],
        tools=[TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
    ) as stream:
        final = await stream.get_final_message()
    [call] = final.content
    assert call.type == "tool_use"
    assert isinstance(call.input["city"], str)
    assert final.stop_reason == "tool_use"


async def test_the_sdk_reads_the_errors(client, mock):
    hello = [{"role": "user", "content": "hi"}]
    with pytest.raises(anthropic.BadRequestError):
        await client.messages.create(model="claude-test", max_tokens=8, messages=[])
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.create(model="missing-model", max_tokens=8, messages=hello)
    mock[1].config.force_status = 529
    with pytest.raises(anthropic.InternalServerError) as caught:
        await client.messages.create(model="claude-test", max_tokens=8, messages=hello)
    assert caught.value.status_code == 529
    assert caught.value.body["error"]["type"] == "overloaded_error"
    assert caught.value.request_id.startswith("req_")


async def test_the_sdk_runs_a_message_batch(client):
    batch = await client.messages.batches.create(
        requests=[
            {
                "custom_id": f"req-{n}",
                "params": {
                    "model": "claude-test",
                    "max_tokens": 64,
                    "messages": [{"role": "user", "content": f"question {n}"}],
                },
            }
            for n in range(3)
        ]
    )
    assert batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 3

    ended = await client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.request_counts.succeeded == 3
    assert ended.results_url is not None

    results = {}
    async for entry in await client.messages.batches.results(batch.id):
        assert entry.result.type == "succeeded"
        results[entry.custom_id] = entry.result.message.content[0].text
    assert results == {f"req-{n}": f"mock answer to question {n}" for n in range(3)}

    cancelled = await client.messages.batches.cancel(batch.id)
    assert cancelled.processing_status == "ended"


async def test_the_sdk_pages_through_the_model_list(client, mock):
    names = [f"claude-{n}" for n in range(5)]
    mock[1].config.listed_models = names
    mock[1].config.models_page_size = 2

    listed = [model async for model in client.models.list(limit=3)]

    assert [model.id for model in listed] == names
    assert listed[0].type == "model"
    assert listed[0].created_at.year >= 2025
