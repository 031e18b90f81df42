"""`/v1/chat/completions` and `/v1/embeddings`: OpenAI's interactive API on every configured
provider (the gateway). `/v1/models` is in routes/models.py."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from datamill.api.deps import RuntimeDep
from datamill.api.gateway_answers import JSON_BODY, gateway_response
from datamill.gateway.requests import parse_request
from datamill.providers.base import Endpoint

router = APIRouter(tags=["gateway"])


@router.post("/v1/chat/completions", openapi_extra=JSON_BODY, response_model=None)
async def chat_completions(request: Request, runtime: RuntimeDep) -> Response:
    """OpenAI's chat completions, streamed (server-sent events) or not. The answer's
    ``x-datamill-deployment`` header names the deployment that served it."""
    parsed = parse_request(await request.body(), Endpoint.chat_completions)
    if not parsed.stream:
        return gateway_response(await runtime.gateway.complete(parsed))
    return gateway_response(await runtime.gateway.open_stream(parsed))


@router.post("/v1/embeddings", openapi_extra=JSON_BODY, response_model=None)
async def embeddings(request: Request, runtime: RuntimeDep) -> Response:
    """OpenAI's embeddings, from any deployment whose provider has them."""
    parsed = parse_request(await request.body(), Endpoint.embeddings)
    return gateway_response(await runtime.gateway.complete(parsed))
