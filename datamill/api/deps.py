"""FastAPI dependencies: the runtime and the caller's project (`datamill.callers`).

They are coroutines: FastAPI runs a plain function dependency in its thread pool, a thread
hop on every request for what is an attribute read."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from datamill.callers import get_project_id
from datamill.runtime import Runtime

__all__ = ["ProjectDep", "RuntimeDep", "get_project_id", "get_runtime"]


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ProjectDep = Annotated[str, Depends(get_project_id)]
