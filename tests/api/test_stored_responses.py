"""`/v1/responses` through the app on both stores: responses kept and read back, streams
kept once they end, and their usage and cost accounted as gateway calls."""

from __future__ import annotations

import orjson
import pytest

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.base import ProviderCall, ProviderStream
from datamill.storage.responses import StoredResponse, get_response, save_response
from datamill.storage.schema import DEFAULT_PROJECT_ID
from tests.api.conftest import assert_error
from tests.helpers import jsonl, run_batch

SIM = {
    "name": "sim",
    "provider": "sim",
    "model": "sim-1",
    "alias": "cheap",
    "input_price": 3.0,
    "output_price": 6.0,
}


def events_of(text: str) -> list[dict]:
    """The ``data:`` payloads of a stream, checking each names its event type."""
    events = []
    for block in text.strip().split("\n\n"):
        name, data = block.split("\n")
        event = orjson.loads(data.removeprefix("data: "))
        assert name == f"event: {event['type']}"
        events.append(event)
    return events


async def test_a_response_is_kept_and_read_back(make_api):
    api = await make_api([SIM])

    created = await api.client.post("/v1/responses", json={"model": "cheap", "input": "hi"})

    assert created.status_code == 200, created.text
    body = created.json()
    assert created.headers["x-datamill-deployment"] == "sim"
    read = await api.client.get(f"/v1/responses/{body['id']}")
    assert read.status_code == 200
    assert read.json() == body


async def test_a_stream_is_kept_once_it_ends(make_api):
    api = await make_api([SIM])

    streamed = await api.client.post(
        "/v1/responses", json={"model": "cheap", "input": "hi", "stream": True}
    )

    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = events_of(streamed.text)
    assert events[-1]["type"] == "response.completed"
    final = events[-1]["response"]
    read = await api.client.get(f"/v1/responses/{final['id']}")
    assert read.json() == final


@pytest.mark.parametrize("stream", [False, True])
async def test_store_false_keeps_nothing(make_api, stream):
    api = await make_api([SIM])

    answer = await api.client.post(
        "/v1/responses", json={"model": "cheap", "input": "hi", "store": False, "stream": stream}
    )

    final = events_of(answer.text)[-1]["response"] if stream else answer.json()
    missing = await api.client.get(f"/v1/responses/{final['id']}")
    assert_error(missing, 404, param="response_id")


async def test_responses_usage_is_accounted_with_its_cost(make_api):
    api = await make_api([SIM])
    for stream in (False, True):
        answer = await api.client.post(
            "/v1/responses", json={"model": "cheap", "input": "tell me", "stream": stream}
        )
        assert answer.status_code == 200
    await api.runtime.call_log.flush()

    usage = (await api.client.get("/api/usage", params={"group_by": "source"})).json()

    [gateway] = usage["data"]
    assert gateway["requests"] == 2
    assert gateway["output_tokens"] > 0
    expected = (gateway["input_tokens"] * 3.0 + gateway["output_tokens"] * 6.0) / 1e6
    assert gateway["cost_usd"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "cheap"}, "input"),
        ({"model": "cheap", "input": ""}, "input"),
        ({"input": "x"}, "model"),
        ({"model": "cheap", "input": "x", "stream": "yes"}, "stream"),
        ({"model": "cheap", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        # PostgreSQL's text cannot hold NUL: looking it up was a 500 there.
        (
            {"model": "cheap", "input": "x", "previous_response_id": "resp_\x00"},
            "previous_response_id",
        ),
    ],
)
async def test_bad_requests_are_400s_naming_the_field(make_api, body, param):
    api = await make_api([SIM])

    answer = await api.client.post("/v1/responses", json=body)

    assert_error(answer, 400, param=param)


async def test_previous_response_id_continues_a_kept_response(make_api):
    api = await make_api([SIM])
    first = await api.client.post(
        "/v1/responses",
        json={"model": "cheap", "instructions": "Be brief.", "input": "My name is Ada."},
    )
    first_id = first.json()["id"]

    second = await api.client.post(
        "/v1/responses",
        json={"model": "cheap", "input": "What is my name?", "previous_response_id": first_id},
    )
    third = await api.client.post(
        "/v1/responses",
        json={
            "model": "cheap",
            "input": [{"role": "user", "content": "And again?"}],
            "previous_response_id": second.json()["id"],
            "stream": True,
        },
    )

    assert second.status_code == 200, second.text
    assert third.status_code == 200, third.text
    final = events_of(third.text)[-1]["response"]
    stored = await get_response(api.runtime.database, final["id"], project_id=DEFAULT_PROJECT_ID)
    turns = orjson.loads(stored.input)
    assert [(t.get("type", "message"), t["role"]) for t in turns] == [
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
    ]
    assert turns[0]["content"] == "My name is Ada."
    assert turns[1]["content"] == first.json()["output"][0]["content"]
    assert turns[-1]["content"] == "And again?"


async def test_a_previous_response_id_not_kept_here_cannot_be_translated(make_api):
    api = await make_api([SIM])

    answer = await api.client.post(
        "/v1/responses",
        json={"model": "cheap", "input": "x", "previous_response_id": "resp_elsewhere"},
    )

    error = assert_error(answer, 400, param="previous_response_id")
    assert "no response with this id is kept here" in error["message"]


async def test_a_stream_that_fails_midway_ends_with_an_error_event(make_api, monkeypatch):
    api = await make_api([SIM])
    provider = api.runtime.router.get("sim").provider

    async def failing_stream(call: ProviderCall) -> ProviderStream:
        async def chunks():
            yield {"model": "sim-1", "choices": [{"index": 0, "delta": {"content": "Hel"}}]}
            raise ProviderError(ErrorCategory.connection, "the upstream went away")

        async def close() -> None:
            return None

        return ProviderStream(chunks=chunks(), request_id="req_1", close=close)

    monkeypatch.setattr(provider, "stream", failing_stream)

    answer = await api.client.post(
        "/v1/responses", json={"model": "cheap", "input": "hi", "stream": True}
    )

    events = events_of(answer.text)
    # No upstream answered with a code of its own: datamill's category is in its own field.
    assert events[-1] == {
        "type": "error",
        "code": None,
        "message": "the upstream went away",
        "param": None,
        "sequence_number": len(events) - 1,
        "datamill_category": "connection",
    }
    assert "response.output_text.delta" in [e["type"] for e in events]
    assert not any(e["type"] == "response.completed" for e in events)


def responses_line(custom_id: str, text: str, **body: object) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/responses",
        "body": {"model": "cheap", "input": text, **body},
    }


async def test_batch_lines_continue_responses_the_gateway_kept(make_api, monkeypatch):
    api = await make_api([SIM])
    first = await api.client.post(
        "/v1/responses",
        json={"model": "cheap", "instructions": "Be brief.", "input": "My name is Ada."},
    )
    first_id = first.json()["id"]
    # A response of another project is not this batch's to continue.
    await save_response(
        api.runtime.database,
        StoredResponse(
            id="resp_of_another_project",
            project_id="proj_other",
            model="cheap",
            deployment="sim",
            body=first.content,
            input=b"[]",
            created_at=0.0,
        ),
    )
    provider = api.runtime.router.get("sim").provider
    sent: list[dict] = []
    complete = provider.complete

    async def recording(call: ProviderCall):
        sent.append(call.body)
        return await complete(call)

    monkeypatch.setattr(provider, "complete", recording)

    batch, outputs, errors = await run_batch(
        api.runtime,
        jsonl(
            [
                responses_line("chained", "What is my name?", previous_response_id=first_id),
                responses_line("unknown", "x", previous_response_id="resp_never_kept"),
                responses_line("foreign", "x", previous_response_id="resp_of_another_project"),
                responses_line("alone", "Hello."),
            ]
        ),
        endpoint="/v1/responses",
    )

    assert (batch.status, batch.completed_count, batch.failed_count) == ("completed", 2, 2)
    assert {line["custom_id"] for line in outputs} == {"chained", "alone"}
    chained = next(body for body in sent if body["messages"][-1]["content"] == "What is my name?")
    assert [(m["role"], m["content"]) for m in chained["messages"]] == [
        ("user", "My name is Ada."),
        ("assistant", first.json()["output"][0]["content"][0]["text"]),
        ("user", "What is my name?"),
    ]  # the earlier instructions do not carry over, as at OpenAI
    assert {line["custom_id"] for line in errors} == {"unknown", "foreign"}
    for line in errors:  # refused before anything was sent: no HTTP answer, OpenAI's error
        assert line["response"] is None
        assert (line["error"]["code"], line["error"]["param"]) == (
            "bad_request",
            "previous_response_id",
        )
        assert "no response with this id is kept here" in line["error"]["message"]
    # The batch's results are not kept as responses.
    [answer] = [line for line in outputs if line["custom_id"] == "chained"]
    kept = await get_response(
        api.runtime.database, answer["response"]["body"]["id"], project_id=DEFAULT_PROJECT_ID
    )
    assert kept is None
