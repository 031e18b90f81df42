"""`/v1/models` and `/v1/models/{model}`: the model names the gateway and batches serve, as
OpenAI's Models API answers them (reference: OpenAI's OpenAPI document, ``ListModelsResponse``
and ``Model``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from datamill.api.deps import RuntimeDep
from datamill.callers import VIEWER
from datamill.errors import ModelNotFound

router = APIRouter(tags=["gateway"])


@router.get("/v1/models", dependencies=[VIEWER])
async def list_models(runtime: RuntimeDep) -> dict[str, Any]:
    """The model names clients may ask for: aliases, the models deployments serve, the
    pass-through deployments (called as ``<deployment>/<model>``) and the models their
    upstreams list."""
    return {"object": "list", "data": await runtime.gateway.catalog.list_models()}


# `:path`: model names may hold a slash (``<deployment>/<model>``, ``org/model``).
@router.get("/v1/models/{model:path}", dependencies=[VIEWER])
async def retrieve_model(model: str, runtime: RuntimeDep) -> dict[str, Any]:
    """One model's Model object; 404 when no deployment serves the name."""
    found = await runtime.gateway.catalog.get_model(model)
    if found is None:
        raise ModelNotFound(
            f"The model `{model}` does not exist here; GET /v1/models lists what is served"
        )
    return found
