"""FastAPI dependencies: the runtime and the caller's project."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from datamill.runtime import Runtime
from datamill.storage.schema import DEFAULT_PROJECT_ID


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_project_id() -> str:
    """The caller's project; one default project until API keys arrive."""
    return DEFAULT_PROJECT_ID


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ProjectDep = Annotated[str, Depends(get_project_id)]
