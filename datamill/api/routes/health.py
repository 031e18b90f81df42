"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from datamill.api.deps import RuntimeDep
from datamill.callers import PUBLIC
from datamill.readiness import CheckStatus

router = APIRouter(tags=["health"])


@router.get("/healthz", dependencies=[PUBLIC])
async def healthz() -> dict[str, str]:
    """The process answers. Nothing else is checked."""
    return {"status": "ok"}


@router.get("/readyz", dependencies=[PUBLIC])
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Ready (200) when every required check passes; else 503. Every check is listed with
    its status, level, latency and message; ``failed`` and ``warnings`` name the checks
    that failed and those that only warn."""
    readiness = await runtime.readiness.run()
    ready = readiness.ready
    body = {
        "status": "ready" if ready else "not_ready",
        "checks": {result.name: result.as_dict() for result in readiness.checks},
        "failed": readiness.names(CheckStatus.fail),
        "warnings": readiness.names(CheckStatus.warn),
    }
    return JSONResponse(body, status_code=200 if ready else 503)
