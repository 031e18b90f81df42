"""FastAPI dependencies: the runtime and the caller's project.

They are coroutines: FastAPI runs a plain function dependency in its thread pool, a thread
hop on every request for what is an attribute read."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from datamill.runtime import Runtime
from datamill.storage.schema import DEFAULT_PROJECT_ID


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_project_id() -> str:
    """The caller's project; one default project until API keys arrive."""
    return DEFAULT_PROJECT_ID


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ProjectDep = Annotated[str, Depends(get_project_id)]
