"""The metrics registry without a server: the store read at most once per ``max_age``, the
circuit states named as the breaker names them, one registry per runtime, and the small
server `datamill worker --metrics-port` runs."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from datamill.errors import ErrorCategory
from datamill.metrics import Metrics
from datamill.metrics.exposition import serve_metrics
from datamill.metrics.state import CIRCUIT_STATES, StateCollector, StoreGauges
from datamill.scheduler.breaker import BreakerState


class FakeClock:
    """Only what the collector reads: monotonic time, moved by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_the_circuit_states_are_the_breakers():
    assert tuple(state.value for state in BreakerState) == CIRCUIT_STATES


def test_a_histogram_counts_a_value_on_a_bound_in_that_bound_s_bucket():
    metrics = Metrics()
    deployment = metrics.deployment("d")
    for latency in (0.05, 0.07, 400.0):
        deployment.record(latency, error=None)
    sample = metrics.registry.get_sample_value
    labels = {"deployment": "d"}
    assert sample("datamill_call_duration_seconds_bucket", {**labels, "le": "0.05"}) == 1
    assert sample("datamill_call_duration_seconds_bucket", {**labels, "le": "0.1"}) == 2
    assert sample("datamill_call_duration_seconds_bucket", {**labels, "le": "300.0"}) == 2
    assert sample("datamill_call_duration_seconds_bucket", {**labels, "le": "+Inf"}) == 3
    assert sample("datamill_call_duration_seconds_count", labels) == 3
    assert sample("datamill_call_duration_seconds_sum", labels) == 400.12


def test_runtimes_do_not_share_a_registry():
    first, second = Metrics(), Metrics()
    first.deployment("d").record(0.2, error=None)
    second.deployment("d").record(0.2, error=ErrorCategory.timeout)
    assert (
        first.registry.get_sample_value(
            "datamill_calls_total", {"deployment": "d", "outcome": "ok", "category": "none"}
        )
        == 1
    )
    assert (
        second.registry.get_sample_value(
            "datamill_calls_total", {"deployment": "d", "outcome": "ok", "category": "none"}
        )
        == 0
    )


async def test_the_store_is_read_at_most_once_per_max_age():
    clock = FakeClock()
    reads = []

    async def read() -> StoreGauges:
        reads.append(clock.monotonic())
        return StoreGauges(queue=(), workers=())

    state = StateCollector(lambda: (), clock, event_clients=lambda: 0, store=read, max_age=2.0)
    await state.refresh()
    await state.refresh()
    clock.advance(1.9)
    await state.refresh()
    assert len(reads) == 1
    clock.advance(0.2)
    await state.refresh()
    assert len(reads) == 2


async def test_the_worker_server_answers_get_metrics_only():
    metrics = Metrics()
    metrics.deployment("d").record(0.5, error=None)
    state = StateCollector(lambda: (), FakeClock(), event_clients=lambda: 3)
    metrics.registry.register(state)
    server = await serve_metrics(metrics, state, host="127.0.0.1", port=0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            response = await client.get("/metrics")
            other = await client.get("/")
            post = await client.post("/metrics")
    finally:
        server.close()
        await server.wait_closed()
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert families["datamill_event_stream_clients"].samples[0].value == 3
    assert families["datamill_call_duration_seconds"].type == "histogram"
    assert "datamill_batches" not in families  # the store's gauges are the API servers'
    assert (other.status_code, post.status_code) == (404, 405)


async def test_a_silent_client_is_dropped():
    metrics = Metrics()
    state = StateCollector(lambda: (), FakeClock(), event_clients=lambda: 0)
    server = await serve_metrics(metrics, state, host="127.0.0.1", port=0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\n" + b"x" * 10_000)
        await writer.drain()
        assert await reader.read() == b""  # the head is over the limit: closed, no answer
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
