"""The mock provider, driven through real HTTP on loopback."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from datamill_testing.mock_process import MockProviderProcess
from datamill_testing.mock_provider import MOCK_PROVIDER, MockConfig, start_mock

DEFAULTS = MockConfig().model_dump()


@pytest.fixture(scope="module")
def mock() -> Iterator[MockProviderProcess]:
    with MockProviderProcess() as process:
        yield process


@pytest.fixture(autouse=True)
def _fresh_mock(mock: MockProviderProcess) -> None:
    mock.control(**DEFAULTS)
    mock.reset_stats()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


Answer = tuple[int, CIMultiDict[str], dict[str, Any]]


async def post(session: aiohttp.ClientSession, url: str, body: Any) -> Answer:
    data = body if isinstance(body, bytes) else None
    async with session.post(url, data=data, json=None if data else body) as response:
        return response.status, response.headers.copy(), await response.json()


async def chat(
    session: aiohttp.ClientSession, mock: MockProviderProcess, content: Any = "hello", **extra: Any
) -> Answer:
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": content}], **extra}
    return await post(session, f"{mock.base_url}/chat/completions", body)


def assert_openai_error(body: dict[str, Any], kind: str) -> None:
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == kind


async def test_chat_completion_shape(session, mock) -> None:
    status, headers, body = await chat(session, mock, "hello there", model="gpt-x")

    assert status == 200
    assert headers["x-request-id"].startswith("req_")
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "gpt-x"
    [choice] = body["choices"]
    assert choice["message"] == {
        "role": "assistant",
        "content": "mock answer to hello there",
        "refusal": None,
    }
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] == len("hello there") // 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # The answer depends on the request only.
    assert (await chat(session, mock, "hello there"))[2]["choices"] == body["choices"]


async def test_embeddings_shape(session, mock) -> None:
    url = f"{mock.base_url}/embeddings"
    status, _, body = await post(session, url, {"model": "emb", "input": "some text"})

    assert status == 200
    assert body["object"] == "list"
    assert body["model"] == "emb"
    [item] = body["data"]
    assert item["object"] == "embedding"
    assert item["index"] == 0
    assert len(item["embedding"]) == 8
    assert math.isclose(sum(value * value for value in item["embedding"]), 1.0)
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] >= 1

    _, _, many = await post(
        session, url, {"model": "emb", "input": ["a", "b", "a"], "dimensions": 4}
    )
    vectors = [item["embedding"] for item in many["data"]]
    assert [item["index"] for item in many["data"]] == [0, 1, 2]
    assert [len(vector) for vector in vectors] == [4, 4, 4]
    assert vectors[0] == vectors[2] != vectors[1]


async def test_models_health_and_control(session, mock) -> None:
    async with session.get(f"{mock.base_url}/models") as response:
        assert [model["id"] for model in (await response.json())["data"]] == ["mock-model"]
    async with session.get(f"{mock.url}/health") as response:
        assert await response.json() == {"ok": True}
    async with session.get(f"{mock.url}/control") as response:
        assert await response.json() == DEFAULTS


@pytest.mark.parametrize(
    ("body", "status", "kind", "code"),
    [
        (b"{not json", 400, "invalid_request_error", None),
        ({"messages": [{"role": "user", "content": "x"}]}, 400, "invalid_request_error", None),
        ({"model": "gpt-test"}, 400, "invalid_request_error", "missing_required_parameter"),
        ({"model": "reject-me", "messages": []}, 400, "invalid_request_error", "invalid_value"),
        ({"model": "unauthorized", "messages": []}, 401, "authentication_error", "invalid_api_key"),
        (
            {"model": "missing-model", "messages": []},
            404,
            "invalid_request_error",
            "model_not_found",
        ),
    ],
)
async def test_invalid_requests_are_final_errors(session, mock, body, status, kind, code) -> None:
    got, _, answer = await post(session, f"{mock.base_url}/chat/completions", body)

    assert got == status
    assert_openai_error(answer, kind)
    assert answer["error"]["code"] == code
    assert mock.stats()["by_status"] == {str(status): 1}


async def test_embeddings_validate_input_and_model(session, mock) -> None:
    url = f"{mock.base_url}/embeddings"
    assert (await post(session, url, {"model": "emb"}))[0] == 400
    assert (await post(session, url, {"model": "reject-me", "input": "x"}))[0] == 400


async def test_error_rate_one_answers_server_errors(session, mock) -> None:
    mock.control(error_rate=1)
    answers = [await chat(session, mock, str(n)) for n in range(5)]
    assert {status for status, _, _ in answers} == {500}
    assert_openai_error(answers[0][2], "server_error")

    mock.control(error_status=503)
    assert (await chat(session, mock))[0] == 503


async def test_rpm_limit_answers_429_with_retry_after(session, mock) -> None:
    mock.control(rpm=120)  # 2 per second, burst of 2
    first, second, third = [await chat(session, mock, str(n)) for n in range(3)]

    assert (first[0], second[0], third[0]) == (200, 200, 429)
    assert first[1]["x-ratelimit-limit-requests"] == "120"
    assert first[1]["x-ratelimit-remaining-requests"] == "1"
    assert second[1]["x-ratelimit-remaining-requests"] == "0"
    assert first[1]["x-ratelimit-reset-requests"].endswith("ms")
    assert int(first[1]["x-ratelimit-limit-tokens"]) > 1_000_000
    _, headers, body = third
    assert headers["Retry-After"] == "1"
    assert 0 < int(headers["retry-after-ms"]) <= 500
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert_openai_error(body, "requests")
    assert body["error"]["code"] == "rate_limit_exceeded"

    mock.control(ratelimit_headers=False)
    _, headers, _ = await chat(session, mock)
    assert "Retry-After" in headers
    assert not any(name.lower().startswith("x-ratelimit") for name in headers)


async def test_429s_come_back_at_once_while_successes_are_slow(session, mock) -> None:
    mock.control(rpm=60, latency_ms=1000, retry_after_ms=False)  # a burst of 1
    finished: dict[str, float] = {}

    async def one(key: str, after: float) -> Answer:
        await asyncio.sleep(after)
        answer = await chat(session, mock, key)
        finished[key] = time.monotonic()
        return answer

    (ok, _, _), (limited, headers, _) = await asyncio.gather(one("a", 0), one("b", 0.2))
    assert (ok, limited) == (200, 429)
    assert finished["b"] < finished["a"]  # the 429 did not wait for the latency
    assert headers["Retry-After"] == "1"
    assert "retry-after-ms" not in headers


@pytest.mark.parametrize(
    ("convention", "names"),
    [
        ("openai-live", {"x-ratelimit-limit-requests", "x-ratelimit-reset-requests"}),
        ("azure", {"x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens"}),
        ("groq", {"x-ratelimit-limit-requests", "x-ratelimit-limit-tokens"}),
        ("cerebras", {"x-ratelimit-limit-requests-day", "x-ratelimit-limit-tokens-minute"}),
        (
            "anthropic",
            {"anthropic-ratelimit-requests-reset", "anthropic-ratelimit-output-tokens-limit"},
        ),
        ("openrouter", {"x-ratelimit-limit", "x-ratelimit-reset"}),
        ("together", {"x-ratelimit-remaining", "x-tokenlimit-remaining"}),
    ],
)
async def test_each_convention_sends_its_own_headers(session, mock, convention, names) -> None:
    mock.control(rpm=600, ratelimit_convention=convention)
    status, headers, _ = await chat(session, mock)
    assert status == 200
    assert names <= {name.lower() for name in headers}
    if convention == "openai-live":
        assert headers["x-ratelimit-reset-requests"] == "0s"
    if convention == "azure":
        assert "x-ratelimit-limit-requests" not in headers


async def test_a_vllm_box_queues_instead_of_answering_429(session, mock) -> None:
    mock.control(rpm=600, burst_seconds=0.2, ratelimit_convention="vllm")  # 10/s, 2 of burst
    started = time.monotonic()
    answers = await asyncio.gather(*(chat(session, mock, str(n)) for n in range(6)))
    assert [status for status, _, _ in answers] == [200] * 6
    assert time.monotonic() - started >= 0.3  # the 4 past the burst waited their turn
    assert not any(name.lower().startswith("x-ratelimit") for name in answers[0][1])


async def test_errors_spend_the_rpm_budget_unless_told_otherwise(session, mock) -> None:
    mock.control(rpm=120, error_rate=1)  # a burst of 2 requests
    spent = [(await chat(session, mock, str(n)))[0] for n in range(3)]
    assert spent == [500, 500, 429]  # the errors took the burst

    mock.control(rpm=60, errors_spend_budget=False)  # a new bucket, with a burst of 1
    free = [(await chat(session, mock, str(n)))[0] for n in range(4)]
    assert free == [500] * 4
    mock.control(error_rate=0)
    assert (await chat(session, mock))[0] == 200  # the burst was still there


async def test_max_concurrency_rejects_the_excess(session, mock) -> None:
    mock.control(max_concurrency=2, latency_ms=300)
    answers = await asyncio.gather(*(chat(session, mock, str(n)) for n in range(5)))

    assert sorted(status for status, _, _ in answers) == [200, 200, 429, 429, 429]
    assert mock.stats()["by_status"] == {"200": 2, "429": 3}


async def test_fail_next_then_force_status(session, mock) -> None:
    mock.control(fail_next=2, error_status=502, error_rate=0)
    assert [(await chat(session, mock))[0] for _ in range(3)] == [502, 502, 200]
    assert mock.control()["fail_next"] == 0

    mock.control(force_status=503)
    status, _, body = await chat(session, mock)
    assert status == 503
    assert_openai_error(body, "server_error")
    mock.control(force_status=None)
    assert (await chat(session, mock))[0] == 200


async def wait_until_idle(mock: MockProviderProcess) -> dict[str, Any]:
    for _ in range(100):
        stats = mock.stats()
        if not stats["in_flight"]:
            break
        await asyncio.sleep(0.02)
    return stats


async def test_hung_request_ends_when_the_client_gives_up(session, mock) -> None:
    mock.control(hang_rate=1)
    with pytest.raises(TimeoutError):
        await session.post(
            f"{mock.base_url}/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
            timeout=aiohttp.ClientTimeout(total=0.3),
        )

    stats = await wait_until_idle(mock)
    assert stats["in_flight"] == 0
    assert (stats["total"], stats["hung"], stats["by_status"]) == (1, 1, {})


async def test_counters(session, mock) -> None:
    mock.control(fail_next=1)
    for content in ["a", "a", "a", "b"]:
        await chat(session, mock, content)
    await chat(session, mock, "ignored", user="u-1")
    await chat(session, mock, ["a", "part"])

    stats = mock.stats(per_key=True)
    assert stats["total"] == 6
    assert stats["by_status"] == {"200": 5, "500": 1}
    assert stats["per_key"] == {"a": 3, "b": 1, "u-1": 1, '["a","part"]': 1}
    assert (stats["keys"], stats["repeats"], stats["repeated_keys"]) == (4, 2, 1)
    # "a" failed once then succeeded twice: executed twice.
    assert (stats["completed_keys"], stats["ok_repeats"]) == (4, 1)
    assert "per_key" not in mock.stats()

    assert mock.reset_stats()["total"] == 0
    assert mock.stats(per_key=True)["per_key"] == {}


async def test_peak_in_flight(session, mock) -> None:
    mock.control(latency_ms=200)
    started = time.monotonic()
    await asyncio.gather(*(chat(session, mock, str(n)) for n in range(6)))

    assert time.monotonic() - started >= 0.2
    stats = mock.stats()
    assert (stats["peak_in_flight"], stats["in_flight"]) == (6, 0)


async def test_lognormal_latency_varies(session, mock) -> None:
    mock.control(latency_ms=20, latency_dist="lognormal", latency_sigma=0.8, seed=7)
    durations = []
    for n in range(8):
        started = time.monotonic()
        await chat(session, mock, str(n))
        durations.append(time.monotonic() - started)
    assert max(durations) - min(durations) > 0.005


def test_control_rejects_unknown_and_invalid_fields(mock) -> None:
    with pytest.raises(ValueError, match="bogus"):
        mock.control(bogus=1)
    with pytest.raises(ValueError, match="error_rate"):
        mock.control(error_rate=2)
    with pytest.raises(ValueError, match="latency_dist"):
        MockProviderProcess(latency_dist="uniform")


def test_cli_options_become_the_initial_config() -> None:
    with MockProviderProcess(rpm=3000, ratelimit_headers=False, error_rate=0.05, seed=1) as mock:
        config = mock.control()
    assert (config["rpm"], config["ratelimit_headers"]) == (3000, False)
    assert (config["error_rate"], config["seed"]) == (0.05, 1)
    assert not mock.running


async def test_kill_and_restart_on_the_same_port() -> None:
    with MockProviderProcess() as mock:
        port = mock.port
        async with aiohttp.ClientSession() as session:
            assert (await chat(session, mock))[0] == 200
        mock.kill()
        assert not mock.running
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectionError):
                await chat(session, mock)

        mock.restart()
        assert mock.port == port
        async with aiohttp.ClientSession() as session:
            assert (await chat(session, mock))[0] == 200
        assert mock.stats()["total"] == 1  # a fresh process, fresh counters


async def test_start_mock_in_process() -> None:
    runner, port = await start_mock("127.0.0.1", 0, fail_next=1)
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        async with aiohttp.ClientSession() as session:
            assert [(await post(session, url, body))[0] for _ in range(2)] == [500, 200]
        assert runner.app[MOCK_PROVIDER].counters.total == 2
    finally:
        await runner.cleanup()


def test_the_openai_sdk_runs_a_batch_on_the_mocks_batch_api(mock) -> None:
    """Files and Batches in OpenAI's exact wire format: the official SDK drives them."""
    import openai

    mock.control(batch_polls=2, batch_fail_lines=1)
    client = openai.OpenAI(
        base_url=mock.base_url,
        api_key="x",
        max_retries=0,
        http_client=openai.DefaultHttpxClient(trust_env=False),
    )
    lines = b"".join(
        b'{"custom_id":"q%d","method":"POST","url":"/v1/chat/completions",'
        b'"body":{"model":"m","messages":[{"role":"user","content":"hi %d"}]}}\n' % (i, i)
        for i in range(3)
    )
    with client:
        uploaded = client.files.create(file=("in.jsonl", lines), purpose="batch")
        assert (uploaded.purpose, uploaded.bytes) == ("batch", len(lines))
        created = client.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"datamill_job": "njob_x"},
        )
        assert created.status == "validating"
        assert client.batches.retrieve(created.id).status == "in_progress"
        done = client.batches.retrieve(created.id)
        assert done.status == "completed"
        assert done.request_counts is not None
        assert (done.request_counts.total, done.request_counts.completed) == (3, 2)
        assert done.metadata == {"datamill_job": "njob_x"}
        assert [b.id for b in client.batches.list(limit=1)] == [created.id]
        assert done.output_file_id is not None
        assert done.error_file_id is not None
        outputs = client.files.content(done.output_file_id).text.splitlines()
        errors = client.files.content(done.error_file_id).text.splitlines()
    assert len(outputs) == 2
    [failed] = errors
    assert '"status_code":500' in failed
    stats = mock.stats()
    assert (stats["upstream_batches"], stats["files_uploaded"], stats["batch_lines"]) == (1, 1, 3)
