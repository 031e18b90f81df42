"""datamill's answers checked against OpenAI's published OpenAPI document: files, batches,
the lines of their output and error files, chat completions (and their streamed chunks),
embeddings, responses (and their streamed events, and the stored response read back), models
and errors, on every provider type datamill translates (the mock speaks OpenAI's, Anthropic's
and Gemini's formats; `sim` is datamill's own) and on an upstream with the Responses API.

The schemas are a trimmed copy in tests/openapi/ (README.md there names the source, its
commit and its MIT license). OpenAPI 3.1 schemas are JSON Schema 2020-12; their extra
keywords (``discriminator``, ``x-*``) and ``format``s are not checked, and the OpenAPI 3.0
``nullable: true`` the document still uses in places is read as "or null". Where OpenAI's own
API answers differently from its document, `DOCUMENT_GAPS` follows the API. The differences
datamill intends are listed in docs/api.md ("Differences from OpenAI").

A new endpoint adds its calls to `GATEWAY_CALLS` (and its schema to ``ROOTS`` in
tests/openapi/trim.py).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from datamill_testing.mock_process import MockProviderProcess
from tests.api.conftest import Api
from tests.conftest import mock_deployment
from tests.helpers import chat_line, jsonl, running_worker

_SCHEMAS = Path(__file__).parents[1] / "openapi" / "openai-schemas.json"
_BASE = "urn:openai-openapi"
HELLO = [{"role": "user", "content": "hello"}]


# (schema, property): why OpenAI's API (and its SDK's types) allow null where the document
# does not.
_UNSET = "null until set in the API's answers; the SDK types it Optional"
DOCUMENT_GAPS = {
    ("OpenAIFile", "status_details"): "the API answers null; the SDK types it Optional[str]",
    ("OpenAIFile", "expires_at"): "null for a file that never expires; the SDK types it Optional",
    **{
        ("Batch", name): _UNSET
        for name in (
            "model",
            "errors",
            "output_file_id",
            "error_file_id",
            "in_progress_at",
            "expires_at",
            "finalizing_at",
            "completed_at",
            "failed_at",
            "expired_at",
            "cancelling_at",
            "cancelled_at",
        )
    },
    ("Response", "usage"): "null until the response is finished (response.created and "
    "response.in_progress events); the SDK types it Optional",
    ("ModelResponseProperties", "user"): "the API answers null when the request set none; "
    "the SDK types it Optional[str]",
}


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` as JSON Schema: the schema, or null."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def _properties_with(schema: dict[str, Any], prop: str) -> dict[str, Any]:
    """The ``properties`` of ``schema`` (or of one of its ``allOf`` parts) naming ``prop``."""
    for part in (schema, *schema.get("allOf", ())):
        properties: dict[str, Any] = part.get("properties", {})
        if prop in properties:
            return properties
    raise KeyError(prop)


@functools.cache
def _registry() -> Registry:
    document = _nullable(json.loads(_SCHEMAS.read_text()))
    schemas = document["components"]["schemas"]
    for schema, prop in DOCUMENT_GAPS:
        properties = _properties_with(schemas[schema], prop)
        properties[prop] = {"anyOf": [properties[prop], {"type": "null"}]}
    return Registry().with_resource(_BASE, Resource.from_contents(document, DRAFT202012))


def assert_matches(body: Any, schema: str, where: str = "") -> None:
    """``body`` is valid against OpenAI's schema named ``schema``; every problem is named."""
    validator = Draft202012Validator(
        {"$ref": f"{_BASE}#/components/schemas/{schema}"}, registry=_registry()
    )
    problems = [
        f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in validator.iter_errors(body)
    ]
    assert not problems, f"{where} {schema}: " + "; ".join(problems[:20])


def test_the_checker_catches_what_breaks_the_contract():
    assert_matches({"id": "m", "object": "model", "created": 1, "owned_by": "o"}, "Model")
    with pytest.raises(AssertionError, match="created"):
        assert_matches({"id": "m", "object": "model", "owned_by": "o"}, "Model")
    with pytest.raises(AssertionError, match="error/code"):
        assert_matches(
            {"error": {"message": "m", "type": "t", "param": None, "code": 4}}, "ErrorResponse"
        )


# -- the gateway, on every provider type -----------------------------------------------------

# (endpoint, body without its model, schema of the answer); a stream's schema is its chunks'.
GATEWAY_CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/chat/completions", {"messages": HELLO}, "CreateChatCompletionResponse"),
    (
        "/v1/chat/completions",
        {"messages": HELLO, "stream": True, "stream_options": {"include_usage": True}},
        "CreateChatCompletionStreamResponse",
    ),
    ("/v1/embeddings", {"input": ["one", "two"]}, "CreateEmbeddingResponse"),
]
PROVIDERS = ("openai", "anthropic", "gemini", "sim")
_MOCKS = {
    "anthropic": "datamill_testing.mock_anthropic",
    "gemini": "datamill_testing.mock_gemini",
}


@pytest.fixture(scope="module")
def provider_mocks() -> Any:
    started = {name: MockProviderProcess(module=module).start() for name, module in _MOCKS.items()}
    try:
        yield started
    finally:
        for process in started.values():
            process.stop()


def _deployments(mock: MockProviderProcess, others: dict[str, MockProviderProcess]) -> list[Any]:
    keyed = {"api_key_env": "TEST_KEY_MOCK"}
    return [
        {"name": "oa", "base_url": mock.base_url, "model": "mock-model", "alias": "openai"},
        {
            "name": "oa-pass",
            "base_url": mock.base_url,
            "model": "mock-model",
            "alias": "openai-pass",
            "options": {"responses_api": True},
        },
        {
            "name": "claude",
            "provider": "anthropic",
            "base_url": others["anthropic"].url,
            "model": "claude-sonnet-4-5",
            "alias": "anthropic",
            **keyed,
        },
        {
            "name": "gem",
            "provider": "gemini",
            "base_url": others["gemini"].url,
            "model": "gemini-2.5-flash",
            "alias": "gemini",
            **keyed,
        },
        {"name": "sim", "provider": "sim", "model": "sim-1", "alias": "sim"},
    ]


def _events(data: bytes) -> list[Any]:
    payloads = [line.removeprefix(b"data: ") for line in data.split(b"\n") if line]
    assert payloads[-1] == b"[DONE]"
    return [orjson.loads(payload) for payload in payloads[:-1]]


async def test_gateway_answers_match_openais_schemas(make_api, mock, provider_mocks, monkeypatch):
    monkeypatch.setenv("TEST_KEY_MOCK", "mock-key-for-tests")
    api = await make_api(_deployments(mock, provider_mocks))
    checked = 0
    for provider in PROVIDERS:
        for endpoint, body, schema in GATEWAY_CALLS:
            if provider == "anthropic" and endpoint == "/v1/embeddings":
                continue  # Anthropic has no embeddings
            answer = await api.client.post(endpoint, json={**body, "model": provider})
            assert answer.status_code == 200, (provider, endpoint, answer.text)
            if body.get("stream"):
                chunks = _events(answer.content)
                assert chunks, provider
                for chunk in chunks:
                    assert_matches(chunk, schema, provider)
            else:
                assert_matches(answer.json(), schema, provider)
            checked += 1
    assert checked == len(PROVIDERS) * len(GATEWAY_CALLS) - 1


async def test_models_and_errors_match_openais_schemas(make_api, mock):
    api = await make_api([mock_deployment(mock, models=["mock-*", "reject-me"])])

    listed = await api.client.get("/v1/models")
    one = await api.client.get("/v1/models/mock-model")
    unknown = await api.client.get("/v1/models/nobody-serves-this")
    refused = await api.client.post(
        "/v1/chat/completions", json={"model": "reject-me", "messages": HELLO}
    )
    mock.control(force_status=429)
    limited = await api.client.post(
        "/v1/chat/completions", json={"model": "mock-model", "messages": HELLO}
    )
    invalid = await api.client.post("/v1/batches", json={"endpoint": "/v1/chat/completions"})
    missing = await api.client.get("/v1/files/file-nope")

    assert_matches(listed.json(), "ListModelsResponse")
    assert_matches(one.json(), "Model")
    for answer, status in (
        (unknown, 404),
        (refused, 400),  # the upstream's own error, its param and code kept
        (limited, 429),
        (invalid, 400),
        (missing, 404),
    ):
        assert answer.status_code == status, answer.text
        assert_matches(answer.json(), "ErrorResponse")


# -- the Responses API, passed through and translated ---------------------------------------

TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
# (body without its model); each is sent plain and streamed.
RESPONSES_CALLS: list[dict[str, Any]] = [
    {"input": "hello", "instructions": "Be brief.", "max_output_tokens": 64},
    {"input": "Weather in Paris?", "tools": [TOOL], "tool_choice": "required"},
]
RESPONSES_PROVIDERS = ("openai-pass", *PROVIDERS)  # "openai": translated to chat completions
CALLING_TOOLS = {"openai-pass", "sim"}  # the other mocks answer every request with text


@functools.cache
def _event_schemas() -> dict[str, str]:
    """Each streamed event's type, and the name of its schema (those in trim.py's ROOTS)."""
    schemas = json.loads(_SCHEMAS.read_text())["components"]["schemas"]
    return {
        schema["properties"]["type"]["enum"][0]: name
        for name, schema in schemas.items()
        if name.startswith("Response") and name.endswith("Event")
    }


def _responses_events(data: bytes) -> list[Any]:
    """A Responses stream's events: ``event: TYPE`` and ``data: {...}``, no ``[DONE]``."""
    events = []
    for block in data.decode().split("\n\n"):
        if not block.strip():
            continue
        kind, payload = block.split("\n", 1)
        event = orjson.loads(payload.removeprefix("data: "))
        assert kind == f"event: {event['type']}", block
        events.append(event)
    return events


async def test_responses_match_openais_schemas(make_api, mock, provider_mocks, monkeypatch):
    monkeypatch.setenv("TEST_KEY_MOCK", "mock-key-for-tests")
    api = await make_api(_deployments(mock, provider_mocks))
    for provider in RESPONSES_PROVIDERS:
        seen: set[str] = set()
        for body in RESPONSES_CALLS:
            where = f"{provider} {sorted(body)}"
            answer = await api.client.post("/v1/responses", json={**body, "model": provider})
            assert answer.status_code == 200, (where, answer.text)
            assert_matches(answer.json(), "Response", where)

            streamed = await api.client.post(
                "/v1/responses", json={**body, "model": provider, "stream": True}
            )
            assert streamed.status_code == 200, (where, streamed.text)
            events = _responses_events(streamed.content)
            assert events[-1]["type"] == "response.completed", (where, events[-1])
            for event in events:
                assert_matches(event, _event_schemas()[event["type"]], where)
            seen |= {event["type"] for event in events}

            for kept in (answer.json(), events[-1]["response"]):
                again = await api.client.get(f"/v1/responses/{kept['id']}")
                assert again.status_code == 200, (where, again.text)
                assert_matches(again.json(), "Response", f"{where} GET")
        # Both kinds of output item were streamed (and checked) where the upstream calls tools.
        expected = {"response.output_text.done"}
        if provider in CALLING_TOOLS:
            expected.add("response.function_call_arguments.done")
        assert expected <= seen, (provider, seen)


async def test_a_responses_stream_failing_midway_ends_with_openais_error_event(
    make_api, mock, provider_mocks, monkeypatch
):
    monkeypatch.setenv("TEST_KEY_MOCK", "mock-key-for-tests")
    api = await make_api(_deployments(mock, provider_mocks))
    provider_mocks["anthropic"].control(stream_error_after=4)
    try:
        answer = await api.client.post(
            "/v1/responses", json={"model": "anthropic", "input": "hello", "stream": True}
        )
    finally:
        provider_mocks["anthropic"].control(stream_error_after=None)

    events = _responses_events(answer.content)
    assert events[-1]["type"] == "error", events[-1]
    for event in events:
        assert_matches(event, _event_schemas()[event["type"]])


# -- files and batches -----------------------------------------------------------------------


async def _lines(api: Api, file_id: str) -> list[Any]:
    _, lines = await api.lines(f"/v1/files/{file_id}/content")
    return lines


async def test_files_batches_and_their_lines_match_openais_schemas(make_api, mock):
    api = await make_api([mock_deployment(mock)])
    lines = [chat_line("ok"), chat_line("refused", model="reject-me")]
    file = await api.upload(jsonl(lines))
    batch = await api.create_batch(file["id"])
    async with running_worker(api.runtime):
        done = await api.wait_for(batch["id"])
    files = await api.client.get("/v1/files")
    batches = await api.client.get("/v1/batches")
    deleted = await api.client.delete(f"/v1/files/{file['id']}")

    assert_matches(file, "OpenAIFile")
    assert_matches(batch, "Batch")
    assert_matches(done, "Batch")
    assert_matches(files.json(), "ListFilesResponse")
    assert_matches(batches.json(), "ListBatchesResponse")
    assert_matches(deleted.json(), "DeleteFileResponse")
    [ok] = await _lines(api, done["output_file_id"])
    [refused] = await _lines(api, done["error_file_id"])
    assert_matches(ok["response"]["body"], "CreateChatCompletionResponse")
    # An HTTP answer is the line's `response`, the upstream's error body kept (OpenAI's rule).
    assert (refused["response"]["status_code"], refused["error"]) == (400, None)
    assert_matches(refused["response"]["body"], "ErrorResponse")
