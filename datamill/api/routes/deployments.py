"""`GET /api/deployments`: every deployment's configuration and live state, for the
dashboard."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from datamill.api.deps import RuntimeDep
from datamill.callers import VIEWER

router = APIRouter(prefix="/api", tags=["deployments"])


@router.get("/deployments", dependencies=[VIEWER])
async def deployments(runtime: RuntimeDep) -> dict[str, Any]:
    """Each deployment's configuration (never its key), its live gate state and call
    figures in this process, and its state in the other processes calling it."""
    return {"object": "list", "data": await runtime.deployments.describe()}
