"""`/v1/chat/completions` and `/v1/embeddings`: OpenAI's interactive API on every configured
provider (the gateway). `/v1/models` is in routes/models.py."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from datamill.api.deps import RuntimeDep
from datamill.api.event_stream import EventStreamResponse
from datamill.gateway.requests import parse_request
from datamill.gateway.service import GatewayAnswer
from datamill.providers.base import Endpoint

router = APIRouter(tags=["gateway"])

_OPENAPI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@router.post("/v1/chat/completions", openapi_extra=_OPENAPI_BODY, response_model=None)
async def chat_completions(request: Request, runtime: RuntimeDep) -> Response:
    """OpenAI's chat completions, streamed (server-sent events) or not. The answer's
    ``x-datamill-deployment`` header names the deployment that served it."""
    parsed = parse_request(await request.body(), Endpoint.chat_completions)
    if not parsed.stream:
        return _answer(await runtime.gateway.complete(parsed))
    stream = await runtime.gateway.open_stream(parsed)
    return EventStreamResponse(
        stream.events,
        close=stream.close,
        headers={
            **stream.rate_limits,
            "x-datamill-deployment": stream.deployment,
            "x-request-id": stream.request_id,
        },
    )


@router.post("/v1/embeddings", openapi_extra=_OPENAPI_BODY, response_model=None)
async def embeddings(request: Request, runtime: RuntimeDep) -> Response:
    """OpenAI's embeddings, from any deployment whose provider has them."""
    parsed = parse_request(await request.body(), Endpoint.embeddings)
    return _answer(await runtime.gateway.complete(parsed))


def _answer(answer: GatewayAnswer) -> Response:
    return Response(
        answer.body,
        media_type="application/json",
        headers={
            **answer.rate_limits,
            "x-datamill-deployment": answer.deployment,
            "x-request-id": answer.request_id,
        },
    )
