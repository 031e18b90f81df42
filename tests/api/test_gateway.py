"""The gateway end to end: the official `openai` SDK against `datamill serve`, in front of
mocks that speak OpenAI's, Anthropic's and Gemini's wire formats, and the `sim` provider."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from datamill_testing.mock_process import MockProviderProcess
from tests.api.test_openai_sdk import Server, start_server, stop_cleanly
from tests.conftest import write_config

pytestmark = pytest.mark.slow

# Each provider type behind one model name.
MODELS = {
    "openai": "gpt-mock",
    "anthropic": "claude-mock",
    "gemini": "gemini-mock",
    "sim": "sim-mock",
}


@pytest.fixture(scope="module")
def mocks() -> Iterator[dict[str, MockProviderProcess]]:
    started = {
        "openai": MockProviderProcess().start(),
        "openai-broken": MockProviderProcess(force_status=500).start(),
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
    home = tmp_path_factory.mktemp("gateway")
    config = write_config(
        home / "datamill.toml",
        [
            {
                "name": "oa",
                "base_url": mocks["openai"].base_url,
                "model": "mock-model",
                "alias": MODELS["openai"],
            },
            {
                "name": "oa-broken",
                "base_url": mocks["openai-broken"].base_url,
                "model": "mock-model",
            },
            {
                "name": "claude",
                "provider": "anthropic",
                "api_key_env": "MOCK_PROVIDER_KEY",
                "base_url": mocks["anthropic"].url,
                "model": "claude-sonnet-4-5",
                "alias": MODELS["anthropic"],
            },
            {
                "name": "gem",
                "provider": "gemini",
                "api_key_env": "MOCK_PROVIDER_KEY",
                "base_url": mocks["gemini"].url,
                "model": "gemini-2.5-flash",
                "alias": MODELS["gemini"],
            },
            {"name": "sim", "provider": "sim", "model": "sim-1", "alias": MODELS["sim"]},
        ],
        [{"name": "resilient", "deployments": ["oa-broken"], "fallbacks": ["oa"]}],
    )
    running = start_server(
        home,
        mocks["openai"],
        DATAMILL_CONFIG=str(config),
        DATAMILL_AUTO_DEPLOYMENTS="false",
        DATAMILL_WORKERS="0",
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


@pytest.mark.parametrize("provider", list(MODELS))
def test_every_provider_type_streams_through_the_sdk(client, provider):
    chunks = list(
        client.chat.completions.create(
            model=MODELS[provider],
            messages=[{"role": "user", "content": "Say something about datamill."}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens > 0
    assert {c.object for c in chunks} == {"chat.completion.chunk"}


@pytest.mark.parametrize("provider", list(MODELS))
def test_every_provider_type_answers_without_streaming(client, provider):
    raw = client.chat.completions.with_raw_response.create(
        model=MODELS[provider], messages=[{"role": "user", "content": "hello"}]
    )
    completion = raw.parse()

    assert completion.choices[0].message.content
    assert completion.usage.prompt_tokens > 0
    expected = {"openai": "oa", "anthropic": "claude", "gemini": "gem", "sim": "sim"}[provider]
    assert raw.headers["x-datamill-deployment"] == expected


def test_usage_is_left_out_unless_asked_for(client):
    chunks = list(
        client.chat.completions.create(
            model=MODELS["anthropic"], messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )

    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_a_client_that_disconnects_midway_stops_the_upstream_stream(client, mocks):
    for name in ("openai", "anthropic", "gemini"):
        mock = mocks[name]
        mock.control(stream_chunk_ms=100)
        mock.reset_stats()
        stream = client.chat.completions.create(
            model=MODELS[name],
            messages=[{"role": "user", "content": "a long answer, word after word " * 5}],
            stream=True,
        )
        first = next(iter(stream))
        assert first.choices[0].delta.role == "assistant"
        stream.close()  # the client goes away

        deadline = time.monotonic() + 10
        while mock.stats()["streams_disconnected"] < 1:
            assert time.monotonic() < deadline, f"{name}: {mock.stats()}"
            time.sleep(0.05)
        stats = mock.stats()
        assert (stats["streams"], stats["streams_completed"]) == (1, 0), name
        mock.control(stream_chunk_ms=0)


def test_a_failing_deployment_falls_back_to_the_next(client, mocks):
    mocks["openai"].reset_stats()
    mocks["openai-broken"].reset_stats()

    for stream in (False, True):
        raw = client.chat.completions.with_raw_response.create(
            model="resilient", messages=[{"role": "user", "content": f"s{stream}"}], stream=stream
        )
        assert raw.headers["x-datamill-deployment"] == "oa"
        parsed = raw.parse()
        if stream:
            assert "".join(c.choices[0].delta.content or "" for c in parsed if c.choices)
        else:
            assert parsed.choices[0].message.content

    assert mocks["openai-broken"].stats()["by_status"]["500"] >= 1
    healthy = mocks["openai"].stats()
    assert healthy["completed_keys"] == 2
    assert healthy["ok_repeats"] == 0


def test_a_rate_limit_stays_a_429_with_its_retry_hint(server, mocks):
    mocks["openai"].control(force_status=429)
    try:
        answer = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"model": MODELS["openai"], "messages": [{"role": "user", "content": "x"}]},
            trust_env=False,
        )
    finally:
        mocks["openai"].control(force_status=None)

    assert answer.status_code == 429
    assert answer.headers["retry-after"] == "1"
    assert answer.headers["x-datamill-deployment"] == "oa"
    error = answer.json()["error"]
    # The upstream's code is kept; datamill's category has a field of its own.
    assert (error["code"], error["type"]) == ("rate_limit_exceeded", "rate_limit_error")
    assert error["datamill_category"] == "rate_limited"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, 400, "model"),
        ({"model": MODELS["sim"]}, 400, "messages"),
        ({"model": MODELS["sim"], "messages": []}, 400, "messages"),
        ({"model": MODELS["sim"], "messages": [{"content": "x"}]}, 400, "messages[0].role"),
        (
            {
                "model": MODELS["sim"],
                "messages": [{"role": "user", "content": "x"}],
                "stream": "yes",
            },
            400,
            "stream",
        ),
        (
            {
                "model": MODELS["sim"],
                "messages": [{"role": "user", "content": "x"}],
                "stream_options": {"include_usage": True},
            },
            400,
            "stream_options",
        ),
        (
            {"model": "nobody-serves-this", "messages": [{"role": "user", "content": "x"}]},
            404,
            "model",
        ),
        # Anthropic cannot express a seed: refused, naming the field, before anything is sent.
        (
            {
                "model": MODELS["anthropic"],
                "messages": [{"role": "user", "content": "x"}],
                "seed": 7,
            },
            400,
            "seed",
        ),
    ],
)
def test_bad_requests_get_a_clear_4xx(server, body, status, param):
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=body, trust_env=False)

    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["param"] == param
    assert error["message"]


def test_a_body_that_is_not_json_is_a_400(server):
    answer = httpx.post(f"{server.url}/v1/chat/completions", content=b"{not json", trust_env=False)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_json"


def test_embeddings_through_openai_gemini_and_sim(client):
    for model in (MODELS["openai"], MODELS["gemini"], MODELS["sim"]):
        result = client.embeddings.create(model=model, input=["one", "two"])
        assert [item.index for item in result.data] == [0, 1]
        assert len(result.data[0].embedding) > 0


def test_models_lists_aliases_and_deployments(client):
    listed = {model.id: model for model in client.models.list()}

    assert set(MODELS.values()) | {"resilient"} <= set(listed)
    assert listed["resilient"].model_extra["datamill"] == {
        "kind": "alias",
        "deployments": ["oa-broken", "oa"],
    }
    assert listed[MODELS["anthropic"]].model_extra["datamill"]["deployments"] == ["claude"]


def test_models_are_retrieved_one_by_one(client):
    # Through `datamill serve`: client.models.retrieve, and OpenAI's 404 for a name not served.
    claude = client.models.retrieve(MODELS["anthropic"])
    assert (claude.id, claude.object) == (MODELS["anthropic"], "model")
    assert claude.model_extra["datamill"] == {"kind": "deployment", "deployments": ["claude"]}
    with pytest.raises(openai.NotFoundError) as unknown:
        client.models.retrieve("nobody-serves-this")
    assert (unknown.value.code, unknown.value.param) == ("model_not_found", "model")


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses", "/v1/embeddings"])
@pytest.mark.parametrize("depth", [300, 5000])  # orjson reads 1,024 levels, writes 255
def test_a_body_nested_too_deeply_is_a_400(server, path, depth):
    deep = b"[" * depth + b"]" * depth
    body = b'{"model": "%s", "messages": [{"role": "user", "content": "x"}], "input": "x", "x": %s}'
    answer = httpx.post(
        f"{server.url}{path}", content=body % (MODELS["sim"].encode(), deep), trust_env=False
    )

    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]["message"]
    assert "more than 128 levels deep" in message or "depth limit exceeded" in message, message
