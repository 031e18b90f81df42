"""The mock Gemini server: the official google-genai SDK works against it (so it speaks the real
wire format), and it refuses what Gemini refuses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from datamill_testing.mock_gemini import build_gemini_app
from datamill_testing.mock_process import MockProviderProcess
from datamill_testing.mock_provider import start_mock

KEY = {"x-goog-api-key": "test-key"}


@pytest.fixture(scope="module")
def process() -> Iterator[MockProviderProcess]:
    with MockProviderProcess(module="datamill_testing.mock_gemini") as process:
        yield process


@pytest.fixture
def mock(process: MockProviderProcess) -> MockProviderProcess:
    process.control(force_status=None, batch_polls=1)
    return process


@pytest.fixture
def client(mock: MockProviderProcess) -> genai.Client:
    http_options = types.HttpOptions(base_url=mock.url, api_version="v1beta")
    return genai.Client(api_key="test-key", http_options=http_options)


def post(mock: MockProviderProcess, path: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(f"{mock.url}/v1beta/{path}", json=body, headers={**KEY, **headers})


# -- the official SDK -------------------------------------------------------------------------


def test_the_sdk_generates_streams_and_embeds(client):
    config = types.GenerateContentConfig(system_instruction="be brief", max_output_tokens=50)
    answer = client.models.generate_content(model="gemini-x", contents="hello sdk", config=config)
    assert answer.text == "mock answer to hello sdk"
    assert answer.usage_metadata.candidates_token_count == 5  # a token per word
    assert answer.candidates[0].finish_reason == types.FinishReason.STOP

    pieces = [
        c.text
        for c in client.models.generate_content_stream(model="gemini-x", contents="stream it")
    ]
    assert len(pieces) > 1
    assert "".join(pieces) == "mock answer to stream it"

    embedded = client.models.embed_content(
        model="text-embedding",
        contents=["a", "b"],
        config=types.EmbedContentConfig(output_dimensionality=3),
    )
    assert [len(e.values) for e in embedded.embeddings] == [3, 3]


def test_the_sdk_calls_a_function_the_config_forces(client):
    declaration = types.FunctionDeclaration(
        name="get_weather",
        parameters_json_schema={
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    )
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[declaration])],
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(mode="ANY")
        ),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    answer = client.models.generate_content(model="gemini-x", contents="weather?", config=config)
    [call] = answer.function_calls
    assert call.name == "get_weather"
    assert isinstance(call.args["city"], str)


def test_the_sdk_runs_a_batch(client):
    batch = client.batches.create(
        model="gemini-x",
        src=[{"contents": [{"role": "user", "parts": [{"text": "batch question"}]}]}],
        config={"display_name": "sdk-batch"},
    )
    assert batch.name.startswith("batches/")
    assert client.batches.get(name=batch.name).state == types.JobState.JOB_STATE_RUNNING
    done = client.batches.get(name=batch.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    [inlined] = done.dest.inlined_responses
    assert inlined.response.text == "mock answer to batch question"


def test_the_sdk_reads_the_mock_s_errors(client, mock):
    mock.control(force_status=429)
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.generate_content(model="gemini-x", contents="x")
    assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert caught.value.details["error"]["details"][0]["retryDelay"] == "2s"


# -- what the mock refuses --------------------------------------------------------------------

TEXT = {"parts": [{"text": "hi"}]}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"contents": []}, "contents is not specified"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role"),
        ({"contents": [{"role": "user", "parts": []}]}, "must not be empty"),
        (
            {"contents": [{"role": "user", "parts": [{"text": "a", "inlineData": {}}]}]},
            "exactly one",
        ),
        ({"contents": [TEXT], "temperature": 1}, 'Unknown name "temperature"'),
        ({"contents": [TEXT], "generationConfig": {"responseJsonSchema": {}}}, "responseMimeType"),
        (
            {
                "contents": [
                    {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}
                ]
            },
            "function response turn",
        ),
        (
            {
                "contents": [TEXT],
                "toolConfig": {
                    "functionCallingConfig": {"mode": "AUTO", "allowedFunctionNames": ["f"]}
                },
            },
            "allowedFunctionNames",
        ),
        (
            {
                "contents": [
                    {
                        "role": "user",
                        "parts": [{"inlineData": {"mimeType": "image/png", "data": "%%"}}],
                    }
                ]
            },
            "base64",
        ),
    ],
)
def test_the_mock_refuses_what_gemini_refuses(mock, body, words):
    answer = post(mock, "models/m:generateContent", body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert words in error["message"]


def test_keys_routes_and_the_json_array_stream(mock):
    assert (
        httpx.post(
            f"{mock.url}/v1beta/models/m:generateContent", json={"contents": [TEXT]}
        ).status_code
        == 403
    )
    assert post(mock, "models/m:frobnicate", {}).status_code == 404
    events = post(mock, "models/m:streamGenerateContent", {"contents": [TEXT]}).json()
    assert isinstance(events, list)
    assert "usageMetadata" in events[-1]
    batch = post(
        mock,
        "models/m:batchEmbedContents",
        {"requests": [{"model": "models/other", "content": TEXT}]},
    )
    assert "does not match" in batch.json()["error"]["message"]


async def test_the_mock_runs_in_process_too():
    runner, port = await start_mock(build=build_gemini_app)
    try:
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                f"http://127.0.0.1:{port}/v1beta/models/m:generateContent",
                json={"contents": [TEXT]},
                headers=KEY,
            )
            stats = (await http.get(f"http://127.0.0.1:{port}/stats")).json()
    finally:
        await runner.cleanup()
    assert answer.json()["candidates"][0]["content"]["parts"] == [{"text": "mock answer to hi"}]
    assert stats["by_status"] == {"200": 1}


def test_the_sdk_pages_through_the_model_list(client, mock):
    mock.control(
        listed_models=["gemini-2.5-pro", "gemini-2.5-flash"],
        listed_embedding_models=["text-embedding-004"],
        models_page_size=1,
    )

    listed = list(client.models.list())

    assert [model.name for model in listed] == [
        "models/gemini-2.5-pro",
        "models/gemini-2.5-flash",
        "models/text-embedding-004",
    ]
    assert listed[2].supported_actions == ["embedContent"]
