"""`/v1/chat/completions` and `/v1/embeddings`: OpenAI's interactive API on every configured
provider (the gateway). `/v1/models` is in routes/models.py."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from datamill.api.deps import RuntimeDep
from datamill.api.gateway_answers import JSON_BODY, gateway_response
from datamill.callers import MEMBER, CallerDep
from datamill.gateway.requests import parse_request
from datamill.providers.base import Endpoint

router = APIRouter(tags=["gateway"])


@router.post(
    "/v1/chat/completions", dependencies=[MEMBER], openapi_extra=JSON_BODY, response_model=None
)
async def chat_completions(request: Request, runtime: RuntimeDep, caller: CallerDep) -> Response:
    """OpenAI's chat completions, streamed (server-sent events) or not. The answer's
    ``x-datamill-deployment`` header names the deployment that served it."""
    await runtime.auth.check_limits(caller)
    parsed = parse_request(
        await request.body(),
        Endpoint.chat_completions,
        project_id=caller.project_id,
        key_id=caller.key_id,
    )
    if not parsed.stream:
        return gateway_response(await runtime.gateway.complete(parsed))
    return gateway_response(await runtime.gateway.open_stream(parsed))


@router.post("/v1/embeddings", dependencies=[MEMBER], openapi_extra=JSON_BODY, response_model=None)
async def embeddings(request: Request, runtime: RuntimeDep, caller: CallerDep) -> Response:
    """OpenAI's embeddings, from any deployment whose provider has them."""
    await runtime.auth.check_limits(caller)
    parsed = parse_request(
        await request.body(),
        Endpoint.embeddings,
        project_id=caller.project_id,
        key_id=caller.key_id,
    )
    return gateway_response(await runtime.gateway.complete(parsed))
