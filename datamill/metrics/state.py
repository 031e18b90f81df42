"""The gauges read at scrape time, not kept up on the hot path.

`StateCollector` reads each deployment's gate snapshot (circuit state, learned rates, concurrency,
calls out and waiting, 429s, circuit openings), the event hub's clients, and, in the API
server, the store: unfinished batches and their requests left per status, and the running
workers' heartbeats. The store is read by `refresh()` (awaited by whoever serves the scrape,
as `collect()` cannot await) at most once per ``max_age`` seconds, however often Prometheus
scrapes and however many scrape.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from datamill.clock import Clock

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

# A circuit's states (`scheduler.breaker.BreakerState`), one series each.
CIRCUIT_STATES = ("closed", "open", "half_open")


@dataclass(frozen=True, slots=True)
class QueueDepth:
    status: str  # an unfinished batch status
    batches: int
    remaining: int  # requests without a result yet


@dataclass(frozen=True, slots=True)
class WorkerBeat:
    id: str
    kind: str
    host: str
    heartbeat_at: float  # wall clock
    in_flight: int


@dataclass(frozen=True, slots=True)
class StoreGauges:
    """What the store says (`storage.gauges.read_store_gauges`)."""

    queue: tuple[QueueDepth, ...]
    workers: tuple[WorkerBeat, ...]


# Each deployment's name and its gate's `DeploymentGate.snapshot()`.
GateSnapshots = Callable[[], Iterable[tuple[str, Mapping[str, Any]]]]
StoreReader = Callable[[], Awaitable[StoreGauges]]


class StateCollector(Collector):
    def __init__(
        self,
        gates: GateSnapshots,
        clock: Clock,
        *,
        event_clients: Callable[[], int],
        store: StoreReader | None = None,
        max_age: float = 2.0,
    ) -> None:
        self._gates = gates
        self._clock = clock
        self._event_clients = event_clients
        self._store = store
        self.max_age = max_age
        self._gauges: StoreGauges | None = None
        self._read_at = -math.inf

    async def refresh(self) -> None:
        """Read the store's gauges unless read within ``max_age`` seconds."""
        if self._store is None:
            return
        now = self._clock.monotonic()
        if now - self._read_at < self.max_age:
            return
        self._gauges = await self._store()
        self._read_at = self._clock.monotonic()

    def collect(self) -> Iterable[Metric]:
        yield from self._deployments()
        clients = GaugeMetricFamily(
            "datamill_event_stream_clients", "Clients of this process's event stream."
        )
        clients.add_metric([], self._event_clients())
        yield clients
        if self._store is not None:
            yield from _store_families(self._gauges)

    def _deployments(self) -> Iterable[Metric]:
        circuit = GaugeMetricFamily(
            "datamill_deployment_circuit_state",
            "1 for the deployment's circuit state (closed, open, half_open), 0 for the others.",
            labels=["deployment", "state"],
        )
        opens = CounterMetricFamily(
            "datamill_deployment_circuit_opens",
            "Times the deployment's circuit opened.",
            labels=["deployment"],
        )
        limited = CounterMetricFamily(
            "datamill_deployment_rate_limited",
            "Calls the deployment answered with a 429.",
            labels=["deployment"],
        )
        rpm = GaugeMetricFamily(
            "datamill_deployment_admitted_requests_per_minute",
            "The request rate the gate admits (configured, announced or learned from 429s); "
            "absent while nothing paces the deployment.",
            labels=["deployment", "source"],
        )
        tpm = GaugeMetricFamily(
            "datamill_deployment_admitted_tokens_per_minute",
            "The token budget the gate paces at (configured or announced); absent without one.",
            labels=["deployment"],
        )
        limit = GaugeMetricFamily(
            "datamill_deployment_concurrency_limit",
            "Calls the gate lets out at once (learned from latency unless configured).",
            labels=["deployment"],
        )
        out = GaugeMetricFamily(
            "datamill_deployment_in_flight",
            "Calls out at the deployment now.",
            labels=["deployment"],
        )
        waiting = GaugeMetricFamily(
            "datamill_deployment_waiting",
            "Calls waiting in the deployment's line for their turn.",
            labels=["deployment"],
        )
        for name, gate in self._gates():
            state = gate["circuit"]
            for each in CIRCUIT_STATES:
                circuit.add_metric([name, each], 1.0 if each == state else 0.0)
            opens.add_metric([name], gate["breaker_opens"])
            limited.add_metric([name], gate["rate_limited"])
            if gate["admitted_rpm"] is not None:
                rpm.add_metric([name, gate["rpm_source"] or ""], gate["admitted_rpm"])
            if gate["admitted_tpm"] is not None:
                tpm.add_metric([name], gate["admitted_tpm"])
            limit.add_metric([name], gate["concurrency_limit"])
            out.add_metric([name], gate["in_flight"])
            waiting.add_metric([name], gate["waiting"])
        yield from (circuit, opens, limited, rpm, tpm, limit, out, waiting)


def _store_families(gauges: StoreGauges | None) -> Iterable[Metric]:
    batches = GaugeMetricFamily(
        "datamill_batches",
        "Unfinished batches by status (validating, in_progress, finalizing, cancelling).",
        labels=["status"],
    )
    remaining = GaugeMetricFamily(
        "datamill_batch_requests_remaining",
        "Requests of unfinished batches without a result yet, by batch status.",
        labels=["status"],
    )
    workers = GaugeMetricFamily(
        "datamill_workers", "Workers registered as running, by kind.", labels=["kind"]
    )
    heartbeat = GaugeMetricFamily(
        "datamill_worker_heartbeat_timestamp_seconds",
        "When each running worker last sent its heartbeat (Unix time).",
        labels=["worker", "kind", "host"],
    )
    in_flight = GaugeMetricFamily(
        "datamill_worker_in_flight",
        "Requests each running worker held at its last heartbeat.",
        labels=["worker"],
    )
    if gauges is not None:
        for depth in gauges.queue:
            batches.add_metric([depth.status], depth.batches)
            remaining.add_metric([depth.status], depth.remaining)
        kinds: dict[str, int] = {}
        for beat in gauges.workers:
            kinds[beat.kind] = kinds.get(beat.kind, 0) + 1
            heartbeat.add_metric([beat.id, beat.kind, beat.host], beat.heartbeat_at)
            in_flight.add_metric([beat.id], beat.in_flight)
        for kind, count in sorted(kinds.items()):
            workers.add_metric([kind], count)
    yield from (batches, remaining, workers, heartbeat, in_flight)
