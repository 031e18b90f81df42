"""`GET /metrics`: Prometheus' text format, parsed with the official client's parser; the
figures move as a batch runs against the mock provider and as the gateway streams."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import mock_deployment
from tests.helpers import chat_line, jsonl, running_worker

PRICED = {"input_price": 1.0, "output_price": 2.0}


async def scrape(api: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: {(name, sorted labels): value}."""
    response = await api.client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


async def test_metrics_parse_and_move_as_a_batch_runs(make_api, mock):
    api = await make_api([mock_deployment(mock, **PRICED)])
    api.runtime.metrics_state.max_age = 0.0  # read the store on every scrape
    before = await scrape(api)
    ok = {"deployment": "mock", "outcome": "ok", "category": "none"}
    assert value(before, "datamill_calls_total", **ok) == 0
    assert value(before, "datamill_deployment_circuit_state", deployment="mock", state="closed")
    assert value(before, "datamill_batches", status="validating") == 0

    batch = await api.submit(jsonl(chat_line(f"r{i}") for i in range(5)))
    queued = await scrape(api)
    assert value(queued, "datamill_batches", status="validating") == 1
    async with running_worker(api.runtime) as worker:
        await worker.started.wait()  # registered
        running = await scrape(api)
        assert value(running, "datamill_workers", kind="serve") == 1
        assert value(
            running,
            "datamill_worker_heartbeat_timestamp_seconds",
            worker=worker.id,
            kind="serve",
            host=worker._record.host,
        )
        await api.wait_for(batch["id"])
    after = await scrape(api)

    assert value(after, "datamill_calls_total", **ok) == 5
    assert value(after, "datamill_call_duration_seconds_count", deployment="mock") == 5
    assert value(after, "datamill_tokens_total", deployment="mock", kind="input") > 0
    assert value(after, "datamill_tokens_total", deployment="mock", kind="output") > 0
    assert value(after, "datamill_cost_usd_total", deployment="mock") > 0
    assert value(after, "datamill_batches", status="in_progress") == 0
    assert value(after, "datamill_batch_requests_remaining", status="in_progress") == 0
    assert value(after, "datamill_workers", kind="serve") is None  # stopped with the block


async def chat(api: Any, **body: Any) -> int:
    message = {"role": "user", "content": "hi"}
    body = {"model": "mock-model", "messages": [message], **body}
    return (await api.client.post("/v1/chat/completions", json=body)).status_code


async def test_429s_and_errors_are_counted_by_category(make_api, mock):
    api = await make_api([mock_deployment(mock)])
    assert await chat(api) == 200
    mock.control(force_status=400)
    assert await chat(api) == 400
    # Last: a 429 pauses the deployment for its Retry-After.
    mock.control(force_status=None, fail_next=1, error_status=429)
    assert await chat(api) == 429

    samples = await scrape(api)
    calls = "datamill_calls_total"
    assert value(samples, calls, deployment="mock", outcome="error", category="rate_limited") == 1
    assert value(samples, calls, deployment="mock", outcome="error", category="bad_request") == 1
    assert value(samples, calls, deployment="mock", outcome="ok", category="none") == 1
    assert value(samples, "datamill_deployment_rate_limited_total", deployment="mock") == 1


async def test_a_streamed_gateway_call_observes_its_first_token(make_api, mock):
    api = await make_api([mock_deployment(mock)])
    assert await chat(api, stream=True) == 200

    samples = await scrape(api)
    first_token = "datamill_gateway_time_to_first_token_seconds_count"
    assert value(samples, first_token, deployment="mock") == 1
    assert value(samples, "datamill_event_stream_clients") == 0


async def test_a_store_that_cannot_be_read_leaves_the_scrape_standing(make_api):
    api = await make_api()

    async def broken() -> Any:
        raise OSError("the store is gone")

    api.runtime.metrics_state._store = broken
    api.runtime.metrics_state.max_age = 0.0
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    assert "# TYPE datamill_batches gauge" in response.text  # the family, without samples
