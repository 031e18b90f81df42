"""The process's metric registry, and the metrics moved as calls are answered.

A call's way out of its deployment's gate (`DeploymentGate.release`, which
`Dispatcher.call_deployment` and the gateway's stream relay end with) calls
`DeploymentMetrics.record`: a few increments of label children made once per deployment,
no label lookup and no string formatting per call.
"""

from __future__ import annotations

from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector

from datamill.errors import ErrorCategory


class Usage(Protocol):
    """The token counts of an answer (`providers.types.Usage`)."""

    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...


# Seconds: LLM answers take from tens of milliseconds (embeddings) to minutes (long outputs).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
OK = "ok"
ERROR = "error"
NO_CATEGORY = "none"  # the category label of a successful call


class Metrics:
    """The metrics of one process (one `Runtime`): a registry of its own, so that tests may
    open many runtimes side by side."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        # The client's standard process_* metrics (CPU, memory, open files; Linux only).
        ProcessCollector(registry=registry)
        self.calls = Counter(
            "datamill_calls",
            "Calls answered by a deployment (or failed), by outcome and error category.",
            ["deployment", "outcome", "category"],
            registry=registry,
        )
        self.call_duration = Histogram(
            "datamill_call_duration_seconds",
            "Seconds from sending a call to its answer, successful calls.",
            ["deployment"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.first_token = Histogram(
            "datamill_gateway_time_to_first_token_seconds",
            "Seconds from a streamed gateway request to its first chunk.",
            ["deployment"],
            buckets=FIRST_TOKEN_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "datamill_tokens",
            "Tokens the providers reported, by deployment and kind (input, output).",
            ["deployment", "kind"],
            registry=registry,
        )
        self.cost = Counter(
            "datamill_cost_usd",
            "US dollars spent at a deployment's prices.",
            ["deployment"],
            registry=registry,
        )
        self._deployments: dict[str, DeploymentMetrics] = {}

    def deployment(self, name: str) -> DeploymentMetrics:
        """The children of deployment ``name``'s metrics (made once)."""
        found = self._deployments.get(name)
        if found is None:
            found = self._deployments[name] = DeploymentMetrics(self, name)
        return found

    def observe_first_token(self, deployment: str, seconds: float) -> None:
        self.deployment(deployment).first_token.observe(seconds)

    def names(self) -> set[str]:
        """Every metric name the registry exposes (counters with their ``_total``)."""
        return {
            family.name + ("_total" if family.type == "counter" else "")
            for family in self.registry.collect()
        }


class DeploymentMetrics:
    """One deployment's label children, made when its gate is built."""

    __slots__ = ("_cost", "_errors", "_input", "_latency", "_ok", "_output", "first_token")

    def __init__(self, metrics: Metrics, name: str) -> None:
        calls = metrics.calls
        self._ok = calls.labels(name, OK, NO_CATEGORY)
        self._errors = {
            category: calls.labels(name, ERROR, category.value) for category in ErrorCategory
        }
        self._latency = metrics.call_duration.labels(name)
        self._input = metrics.tokens.labels(name, "input")
        self._output = metrics.tokens.labels(name, "output")
        self._cost = metrics.cost.labels(name)
        self.first_token: Histogram = metrics.first_token.labels(name)

    def record(
        self,
        latency: float,
        *,
        error: ErrorCategory | None,
        usage: Usage | None = None,
        cost: float = 0.0,
    ) -> None:
        """One answered call: its latency (seconds, successes only), its error category (None
        for a success), the usage the provider reported and its cost."""
        if error is None:
            self._ok.inc()
            self._latency.observe(latency)
        else:
            self._errors[error].inc()
        if usage is not None:
            if usage.input_tokens:
                self._input.inc(usage.input_tokens)
            if usage.output_tokens:
                self._output.inc(usage.output_tokens)
        if cost > 0.0:
            self._cost.inc(cost)
