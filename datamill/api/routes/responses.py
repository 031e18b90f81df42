"""`/v1/responses`: OpenAI's Responses API on every configured provider (the gateway), and
the stored responses."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from datamill.api.deps import RuntimeDep
from datamill.api.event_stream import EventStreamResponse
from datamill.gateway.requests import parse_request
from datamill.providers.base import Endpoint

router = APIRouter(tags=["gateway"])

_OPENAPI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@router.post("/v1/responses", openapi_extra=_OPENAPI_BODY, response_model=None)
async def create_response(request: Request, runtime: RuntimeDep) -> Response:
    """A model response, streamed (Responses events) or not: passed through to upstreams
    that have the API, translated to chat completions for the others. The answer's
    ``x-datamill-deployment`` header names the deployment that served it."""
    parsed = parse_request(await request.body(), Endpoint.responses)
    if not parsed.stream:
        answer = await runtime.responses.create(parsed)
        return Response(
            answer.body,
            media_type="application/json",
            headers={
                "x-datamill-deployment": answer.deployment,
                "x-request-id": answer.request_id,
            },
        )
    stream = await runtime.responses.open_stream(parsed)
    return EventStreamResponse(
        stream.events,
        close=stream.close,
        headers={"x-datamill-deployment": stream.deployment, "x-request-id": stream.request_id},
    )


@router.get("/v1/responses/{response_id}", response_model=None)
async def retrieve_response(response_id: str, runtime: RuntimeDep) -> Response:
    """A response created here with ``store`` true (OpenAI's default); 404 otherwise."""
    body = await runtime.responses.retrieve(response_id)
    return Response(body, media_type="application/json")
