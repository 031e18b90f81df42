"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from datamill.api.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers. Nothing else is checked."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """Ready when the store is reachable, its schema is current and workers are alive.
    Answers 503 naming the checks that fail."""
    supervisor = request.app.state.workers
    checks = await runtime.operations.readiness(local_workers_alive=supervisor.alive())
    ready = all(verdict == "ok" for verdict in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )
