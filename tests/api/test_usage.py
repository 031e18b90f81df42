"""`GET /api/usage`: what batches and gateway calls used and cost, by model, deployment,
batch, day or source; and the cost on the Batch object."""

from __future__ import annotations

import time

import pytest

from tests.api.conftest import assert_error
from tests.helpers import chat_line, jsonl, running_worker

SIM = {
    "name": "sim",
    "provider": "sim",
    "model": "sim-1",
    "alias": "cheap",
    "input_price": 3.0,
    "output_price": 6.0,
}


async def chat(api, text: str, **body):
    response = await api.client.post(
        "/v1/chat/completions",
        json={"model": "cheap", "messages": [{"role": "user", "content": text}], **body},
    )
    assert response.status_code == 200, response.text
    return response


async def test_gateway_calls_are_accounted_with_their_cost(make_api):
    api = await make_api([SIM])
    for n in range(3):
        await chat(api, f"question {n}")
    streamed = await chat(api, "streamed", stream=True)
    assert streamed.text.endswith("data: [DONE]\n\n")
    await api.runtime.call_log.flush()

    response = await api.client.get("/api/usage", params={"group_by": "source"})

    assert response.status_code == 200
    body = response.json()
    [gateway] = body["data"]
    assert (gateway["key"], gateway["source"], gateway["requests"]) == ("gateway", "gateway", 4)
    assert gateway["failed"] == 0
    expected = (gateway["input_tokens"] * 3.0 + gateway["output_tokens"] * 6.0) / 1e6
    assert gateway["cost_usd"] == pytest.approx(expected)
    assert gateway["output_tokens"] > 0
    assert body["total"]["requests"] == 4


async def test_batches_and_gateway_add_up_by_model_and_by_day(make_api):
    api = await make_api([SIM])
    batch = await api.submit(jsonl(chat_line(f"r{i}", model="cheap") for i in range(5)))
    async with running_worker(api.runtime):
        done = await api.wait_for(batch["id"])
    await chat(api, "one more")
    await api.runtime.call_log.flush()

    by_model = (await api.client.get("/api/usage", params={"group_by": "model"})).json()
    sources = {entry["source"]: entry for entry in by_model["data"]}
    assert sources["batch"]["key"] == sources["gateway"]["key"] == "cheap"
    assert (sources["batch"]["requests"], sources["gateway"]["requests"]) == (5, 1)
    assert done["datamill"]["cost_usd"] == pytest.approx(sources["batch"]["cost_usd"])
    assert done["datamill"]["cost_usd"] > 0

    by_day = (await api.client.get("/api/usage", params={"group_by": "day"})).json()
    today = int(time.time() // 86_400 * 86_400)
    assert {entry["key"] for entry in by_day["data"]} == {str(today)}

    window = {"since": time.time() + 60, "until": time.time() + 120}
    later = (await api.client.get("/api/usage", params=window)).json()
    assert later["data"] == []
    assert later["total"]["requests"] == 0


async def test_a_batch_shows_its_budget(make_api):
    api = await make_api([SIM])
    batch = await api.submit(jsonl([chat_line("a", model="cheap")]), datamill={"budget_usd": 2.5})

    assert batch["datamill"]["budget_usd"] == 2.5
    assert batch["datamill"]["cost_usd"] == 0
    assert batch["datamill"]["stop_reason"] is None


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"group_by": "colour"}, "group_by"),
        ({"since": "-1"}, "since"),
        ({"since": "100", "until": "50"}, "until"),
    ],
)
async def test_bad_usage_queries_are_400s(make_api, params, param):
    api = await make_api([SIM])
    assert_error(await api.client.get("/api/usage", params=params), 400, param=param)


async def test_a_budget_must_be_positive(make_api):
    api = await make_api([SIM])
    file = await api.upload(jsonl([chat_line("a", model="cheap")]))
    response = await api.client.post(
        "/v1/batches",
        json={
            "input_file_id": file["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "datamill": {"budget_usd": 0},
        },
    )
    assert_error(response, 400, param="datamill.budget_usd")
