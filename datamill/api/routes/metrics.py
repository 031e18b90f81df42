"""`GET /metrics`: the process's metrics in Prometheus' text format."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from datamill.api.deps import RuntimeDep
from datamill.callers import ADMIN
from datamill.metrics.exposition import CONTENT_TYPE, scrape

router = APIRouter(tags=["health"])


@router.get("/metrics", dependencies=[ADMIN], response_class=Response)
async def metrics(runtime: RuntimeDep) -> Response:
    """Calls, latencies, tokens and cost by deployment, the deployments' gates, the event
    stream's clients, and the store's queue depth and worker heartbeats (docs/operations.md).
    They are the whole server's, every project's: admin keys only."""
    body = await scrape(runtime.metrics, runtime.metrics_state)
    return Response(body, media_type=CONTENT_TYPE)
