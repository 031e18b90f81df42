"""Prometheus metrics: the process's registry and what fills it.

- `calls`: the registry (`Metrics`, one per `Runtime`, never the client's global default)
  and the figures moved on the hot path, plain numbers per deployment
  (`DeploymentMetrics`, held by each deployment's gate), exposed when scraped.
- `state`: the gauges read at scrape time (deployments' gates, event-stream clients, and
  the store's queue depth and worker heartbeats, cached for a moment).
- `exposition`: the text format, and the small HTTP server `datamill worker
  --metrics-port` runs.

`calls` depends on nothing of datamill's but errors, so the scheduler can import it.
"""

from datamill.metrics.calls import DeploymentMetrics, Metrics

__all__ = ["DeploymentMetrics", "Metrics"]
