"""`/v1/chat/completions` and `/v1/embeddings`: OpenAI's interactive API on every configured
provider (the gateway). `/v1/models` is in routes/models.py."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from datamill.api.deps import RuntimeDep
from datamill.api.gateway_answers import JSON_BODY, caller_request, gateway_response
from datamill.callers import MEMBER, CallerDep
from datamill.providers.base import Endpoint

router = APIRouter(tags=["gateway"])


@router.post(
    "/v1/chat/completions", dependencies=[MEMBER], openapi_extra=JSON_BODY, response_model=None
)
async def chat_completions(request: Request, runtime: RuntimeDep, caller: CallerDep) -> Response:
    """OpenAI's chat completions, streamed (server-sent events) or not. The answer's
    ``x-datamill-deployment`` header names the deployment that served it."""
    parsed = await caller_request(request, Endpoint.chat_completions, runtime, caller)
    if not parsed.stream:
        return gateway_response(await runtime.gateway.complete(parsed))
    return gateway_response(await runtime.gateway.open_stream(parsed))


@router.post("/v1/embeddings", dependencies=[MEMBER], openapi_extra=JSON_BODY, response_model=None)
async def embeddings(request: Request, runtime: RuntimeDep, caller: CallerDep) -> Response:
    """OpenAI's embeddings, from any deployment whose provider has them."""
    parsed = await caller_request(request, Endpoint.embeddings, runtime, caller)
    return gateway_response(await runtime.gateway.complete(parsed))
