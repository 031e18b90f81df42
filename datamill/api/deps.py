"""FastAPI dependencies: the runtime, the caller's project (`datamill.callers`), the guard
every route has against NUL characters in its path and query, and the one that refuses a
query parameter datamill's own API (``/api/...``) does not declare.

They are coroutines: FastAPI runs a plain function dependency in its thread pool, a thread
hop on every request for what is an attribute read."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant

from datamill.callers import get_project_id
from datamill.errors import InvalidRequest
from datamill.runtime import Runtime

__all__ = [
    "ProjectDep",
    "RuntimeDep",
    "get_project_id",
    "get_runtime",
    "refuse_nul",
    "refuse_unknown_query",
]

# Routes whose unknown query parameters are refused: datamill's own API. The OpenAI-compatible
# routes (`/v1`) keep ignoring them, as OpenAI's do (clients add their own, like Azure's
# ``api-version``), and so do the dashboard's pages.
STRICT_QUERY_PREFIX = "/api/"
_declared: dict[int, frozenset[str]] = {}


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


async def refuse_unknown_query(request: Request) -> None:
    """A 400 naming the first query parameter the route does not declare, on the routes
    under `STRICT_QUERY_PREFIX`: a misspelt or unsupported filter (``?batch_id=`` where
    there is none) must not quietly answer everything."""
    route: Any = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if not request.query_params or dependant is None:
        return
    if not getattr(route, "path", "").startswith(STRICT_QUERY_PREFIX):
        return
    names = _declared.get(id(dependant))
    if names is None:
        names = _declared[id(dependant)] = frozenset(_query_names(dependant))
    for name in request.query_params:
        if name not in names:
            allowed = ", ".join(sorted(names)) or "none"
            raise InvalidRequest(
                f"unknown query parameter {name!r} (this route takes: {allowed})",
                param=name,
                code="unknown_parameter",
            )


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route's endpoint and its dependencies declare, by alias."""
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names
