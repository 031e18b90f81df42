"""Request ids: taken from a sane ``X-Request-ID`` (else made up), echoed in the answer, and
carried into the JSON log lines a worker writes about the batch the request created."""

from __future__ import annotations

import io
import logging

import orjson
import pytest

from datamill.logs import JsonFormatter
from tests.conftest import mock_deployment
from tests.helpers import chat_line, jsonl, running_worker


@pytest.fixture
def json_log():
    """datamill's log lines as `JsonFormatter` writes them, parsed."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("datamill")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    def lines() -> list[dict]:
        return [orjson.loads(line) for line in out.getvalue().splitlines()]

    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


async def test_a_batch_s_worker_log_lines_carry_its_creating_request_s_id(make_api, mock, json_log):
    api = await make_api([mock_deployment(mock)])
    file = await api.upload(jsonl(chat_line(f"r{i}") for i in range(3)))
    response = await api.client.post(
        "/v1/batches",
        json={
            "input_file_id": file["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
        headers={"X-Request-ID": "abc"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "abc"
    batch_id = response.json()["id"]
    async with running_worker(api.runtime):
        await api.wait_for(batch_id)

    about = [line for line in json_log() if batch_id in line["message"]]
    messages = [line["message"] for line in about]
    assert any("validated" in m for m in messages), messages
    assert any("completed" in m for m in messages), messages
    assert {line.get("request_id") for line in about} == {"abc"}
    assert {"time", "level", "logger", "message"} <= set(about[0])
    # The worker's own lines, about no batch, carry none.
    started = [line for line in json_log() if "started (" in line["message"]]
    assert started
    assert all("request_id" not in line for line in started)


@pytest.mark.parametrize("given", [None, "", "a b", 'x"y', "x" * 129, "caf\u00e9"], ids=repr)
async def test_an_insane_or_missing_id_is_replaced_by_one_of_ours(make_api, given):
    api = await make_api()
    headers = {} if given is None else {"X-Request-ID": given.encode()}
    response = await api.client.get("/healthz", headers=headers)
    assert response.status_code == 200
    made = response.headers["x-request-id"]
    assert made.startswith("req-")
    assert len(made) == 28


async def test_a_sane_id_is_echoed_and_the_gateway_keeps_the_upstream_s(make_api, mock):
    api = await make_api([mock_deployment(mock)])
    ours = await api.client.get("/healthz", headers={"X-Request-ID": "trace-01:a/b"})
    assert ours.headers["x-request-id"] == "trace-01:a/b"
    answer = await api.client.post(
        "/v1/chat/completions",
        json={"model": "mock-model", "messages": [{"role": "user", "content": "hi"}]},
        headers={"X-Request-ID": "abc"},
    )
    assert answer.status_code == 200
    assert answer.headers.get_list("x-request-id") != ["abc"]  # the provider's, once
    assert len(answer.headers.get_list("x-request-id")) == 1
