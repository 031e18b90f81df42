"""The Responses API end to end: the official `openai` SDK (and LangChain) against `datamill
serve`, passed through to a mock upstream that has /v1/responses, and translated to chat
completions for one that does not, for Anthropic's and Gemini's wire formats, and for the
`sim` provider."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import orjson
import pytest

from datamill_testing.mock_process import MockProviderProcess
from tests.api.test_openai_sdk import Server, lines_of, start_server, stop_cleanly, wait_for
from tests.conftest import write_config

pytestmark = pytest.mark.slow

# Model name -> the deployment that serves it, and whether it passes the call through.
MODELS = {
    "gpt-pass": ("oa-pass", True),
    "gpt-chat": ("oa-chat", False),
    "claude-mock": ("claude", False),
    "gemini-mock": ("gem", False),
    "sim-mock": ("sim", False),
}
TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


@pytest.fixture(scope="module")
def mocks() -> Iterator[dict[str, MockProviderProcess]]:
    started = {
        "openai": MockProviderProcess().start(),
        "anthropic": MockProviderProcess(module="datamill_testing.mock_anthropic").start(),
        "gemini": MockProviderProcess(module="datamill_testing.mock_gemini").start(),
    }
    try:
        yield started
    finally:
        for process in started.values():
            process.stop()


@pytest.fixture(scope="module")
def server(
    mocks: dict[str, MockProviderProcess], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("responses")
    openai_url = mocks["openai"].base_url
    config = write_config(
        home / "datamill.toml",
        [
            {
                "name": "oa-pass",
                "base_url": openai_url,
                "model": "mock-model",
                "alias": "gpt-pass",
                "options": {"responses_api": True},
            },
            {"name": "oa-chat", "base_url": openai_url, "model": "mock-model", "alias": "gpt-chat"},
            {
                "name": "claude",
                "provider": "anthropic",
                "api_key_env": "MOCK_PROVIDER_KEY",
                "base_url": mocks["anthropic"].url,
                "model": "claude-sonnet-4-5",
                "alias": "claude-mock",
            },
            {
                "name": "gem",
                "provider": "gemini",
                "api_key_env": "MOCK_PROVIDER_KEY",
                "base_url": mocks["gemini"].url,
                "model": "gemini-2.5-flash",
                "alias": "gemini-mock",
            },
            {"name": "sim", "provider": "sim", "model": "sim-1", "alias": "sim-mock"},
        ],
    )
    running = start_server(
        home,
        mocks["openai"],
        DATAMILL_CONFIG=str(config),
        DATAMILL_AUTO_DEPLOYMENTS="false",
        MOCK_PROVIDER_KEY="mock-key-for-tests",
    )
    try:
        yield running
    finally:
        stop_cleanly(running)


@pytest.fixture
def client(server: Server) -> Iterator[openai.OpenAI]:
    with server.client() as sdk:
        yield sdk


@pytest.mark.parametrize("model", list(MODELS))
def test_create_and_retrieve(client, model):
    raw = client.responses.with_raw_response.create(
        model=model,
        instructions="Answer briefly.",
        input="Say something about datamill.",
        max_output_tokens=200,
        metadata={"run": "1"},
    )
    response = raw.parse()

    assert raw.headers["x-datamill-deployment"] == MODELS[model][0]
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text.strip()
    assert response.output[0].type == "message"
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens > 0
    usage = response.usage
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert client.responses.retrieve(response.id).output_text == response.output_text


@pytest.mark.parametrize("model", list(MODELS))
def test_streamed(client, model):
    events = list(client.responses.create(model=model, input="Stream a few words.", stream=True))

    kinds = [event.type for event in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-1] == "response.completed"
    for kind in (
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert kind in kinds, kind
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert text
    assert final.output_text == text
    assert final.usage.output_tokens > 0
    assert client.responses.retrieve(final.id).output_text == text


def test_the_stream_helper(client):
    with client.responses.stream(model="gpt-chat", input="Use the helper.") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()

    assert "".join(deltas) == final.output_text == "mock answer to Use the helper."


@pytest.mark.parametrize("model", ["gpt-pass", "sim-mock"])
def test_function_calls_and_their_outputs(client, model):
    asked = client.responses.create(
        model=model, input="Weather in Paris?", tools=[TOOL], tool_choice="required"
    )
    [call] = [item for item in asked.output if item.type == "function_call"]
    assert call.name == "get_weather"
    assert isinstance(orjson.loads(call.arguments), dict)

    answered = client.responses.create(
        model=model,
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
        tools=[TOOL],
    )
    assert answered.status == "completed"
    assert answered.output


def test_a_streamed_function_call_through_translation(client):
    events = list(
        client.responses.create(
            model="sim-mock", input="Weather?", tools=[TOOL], tool_choice="required", stream=True
        )
    )

    kinds = [event.type for event in events]
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    [call] = events[-1].response.output
    assert call.type == "function_call"
    assert call.name == "get_weather"


def test_json_schema_output_is_asked_of_chat_as_response_format(client):
    response = client.responses.create(
        model="sim-mock",
        input="A city.",
        text={
            "format": {
                "type": "json_schema",
                "name": "city",
                "schema": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}},
                    "required": ["name"],
                    "additionalProperties": False,
                },
                "strict": True,
            }
        },
    )

    assert isinstance(orjson.loads(response.output_text)["name"], str)


def test_length_makes_a_response_incomplete(client):
    response = client.responses.create(model="sim-mock", input="Go on and on.", max_output_tokens=1)

    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("tools", [{"type": "web_search"}], "tools[0].type"),
        ("previous_response_id", "resp_earlier", "previous_response_id"),
        ("background", True, "background"),
        ("reasoning", {"summary": "auto"}, "reasoning.summary"),
        ("not_a_field", 1, "not_a_field"),
    ],
)
def test_what_translation_cannot_express_is_a_400_naming_the_field(client, field, value, param):
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="gpt-chat", input="x", extra_body={field: value})

    assert raised.value.status_code == 400
    assert raised.value.body["param"] == param
    assert f"`{param}`" in raised.value.body["message"]


def test_a_field_the_provider_cannot_take_is_named_as_the_client_set_it(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="claude-mock", input="x", text={"verbosity": "low"})

    assert raised.value.body["param"] == "text.verbosity"


def test_built_in_tools_pass_through_to_an_upstream_that_has_the_api(client, mocks):
    response = client.responses.create(model="gpt-pass", input="x", tools=[{"type": "web_search"}])

    assert response.output_text == "mock answer to x"


def test_unstored_and_unknown_responses_are_404(client, server):
    response = client.responses.create(model="gpt-chat", input="forget me", store=False)

    for response_id in (response.id, "resp_nothing"):
        with pytest.raises(openai.NotFoundError) as raised:
            client.responses.retrieve(response_id)
        assert raised.value.body["param"] == "response_id"
    answer = httpx.get(f"{server.url}/v1/responses/resp_nothing", trust_env=False)
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}


def test_a_missing_input_is_a_400(server):
    answer = httpx.post(f"{server.url}/v1/responses", json={"model": "gpt-chat"}, trust_env=False)

    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "input"


@pytest.mark.parametrize("model", ["gpt-pass", "gpt-chat"])
def test_a_batch_on_the_responses_endpoint(client, model):
    lines = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/responses",
            "body": {"model": model, "input": f"batch item {i}"},
        }
        for i in range(5)
    ]
    data = b"\n".join(orjson.dumps(line) for line in lines)
    file = client.files.create(file=("input.jsonl", data), purpose="batch")
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/responses", completion_window="24h"
    )

    done = wait_for(client, batch.id)
    assert done.status == "completed", done
    assert done.request_counts.completed == 5
    assert done.usage.input_tokens > 0
    outputs = {
        line["custom_id"]: line["response"] for line in lines_of(client, done.output_file_id)
    }
    assert set(outputs) == {f"r{i}" for i in range(5)}
    for i in range(5):
        body = outputs[f"r{i}"]["body"]
        assert body["object"] == "response"
        assert body["output"][0]["content"][0]["text"] == f"mock answer to batch item {i}"
        assert body["usage"]["total_tokens"] > 0


def test_a_responses_batch_cannot_run_natively(client):
    line = {
        "custom_id": "n",
        "method": "POST",
        "url": "/v1/responses",
        "body": {"model": "gpt-chat", "input": "x"},
    }
    file = client.files.create(file=("input.jsonl", orjson.dumps(line)), purpose="batch")
    batch = client.batches.create(
        input_file_id=file.id,
        endpoint="/v1/responses",
        completion_window="24h",
        extra_body={"datamill": {"mode": "native"}},
    )

    done = wait_for(client, batch.id)
    assert done.status == "failed"
    assert [e.code for e in done.errors.data] == ["native_batch_unsupported"]


def test_a_batch_line_translation_refuses_ends_in_the_error_file(client):
    line = {
        "custom_id": "bad",
        "method": "POST",
        "url": "/v1/responses",
        "body": {"model": "gpt-chat", "input": "x", "background": True},
    }
    file = client.files.create(file=("input.jsonl", orjson.dumps(line)), purpose="batch")
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/responses", completion_window="24h"
    )

    done = wait_for(client, batch.id)
    [error] = lines_of(client, done.error_file_id)
    assert error["custom_id"] == "bad"
    assert "`background`" in orjson.dumps(error).decode()


@pytest.fixture
def http_clients() -> Iterator[list[httpx.Client]]:
    clients: list[httpx.Client] = []
    yield clients
    for http in clients:
        http.close()


def test_langchain_uses_the_responses_api(server, http_clients):
    from langchain_openai import ChatOpenAI

    def chat_model(model: str) -> ChatOpenAI:
        http_clients.append(httpx.Client(trust_env=False))
        return ChatOpenAI(
            model=model,
            base_url=f"{server.url}/v1",
            api_key="anything",
            use_responses_api=True,
            max_retries=0,
            http_client=http_clients[-1],
        )

    for model in ("gpt-pass", "gpt-chat"):
        answer = chat_model(model).invoke("Hello from LangChain")
        assert answer.text.startswith("mock answer to"), model
        assert "Hello from LangChain" in answer.text, model
        assert answer.usage_metadata["output_tokens"] > 0, model
        streamed = "".join(chunk.text for chunk in chat_model(model).stream("Hello again"))
        assert "Hello again" in streamed, model
    chat_tool = {"type": "function", "function": {k: TOOL[k] for k in ("name", "parameters")}}
    with_tool = chat_model("sim-mock").bind_tools([chat_tool], tool_choice="required")
    answer = with_tool.invoke("Weather in Paris?")
    assert answer.tool_calls[0]["name"] == "get_weather"
