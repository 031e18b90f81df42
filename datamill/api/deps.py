"""FastAPI dependencies: the runtime, the caller's project (`datamill.callers`), and the
guard every route has against NUL characters in its path and query.

They are coroutines: FastAPI runs a plain function dependency in its thread pool, a thread
hop on every request for what is an attribute read."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from datamill.callers import get_project_id
from datamill.errors import InvalidRequest
from datamill.runtime import Runtime

__all__ = ["ProjectDep", "RuntimeDep", "get_project_id", "get_runtime", "refuse_nul"]


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ProjectDep = Annotated[str, Depends(get_project_id)]


async def refuse_nul(request: Request) -> None:
    """A 400 naming the path or query parameter that holds a NUL character: no stored id or
    name has one, and PostgreSQL's text cannot even be asked about it."""
    for params in (request.path_params, request.query_params):
        for name, value in params.items():
            if isinstance(value, str) and "\x00" in value:
                raise InvalidRequest(
                    f"{name} holds a NUL character", param=name, code="invalid_value"
                )
