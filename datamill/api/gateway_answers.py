"""How the gateway's routes take a body and answer: one place for ``/v1/chat/completions``,
``/v1/embeddings`` and ``/v1/responses`` alike, so every answer, streamed or not, carries the
same headers: the deployment that served it, the request id and the ``x-ratelimit-*`` budget
of that deployment (gateway/ratelimits.py)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from datamill.api.event_stream import EventStreamResponse
from datamill.auth.service import Caller
from datamill.gateway.requests import GatewayRequest, parse_request
from datamill.gateway.service import GatewayAnswer, GatewayStream
from datamill.providers.base import Endpoint
from datamill.runtime import Runtime

# The body is read raw and checked by gateway/requests.py; OpenAPI only says it is JSON.
JSON_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


async def caller_request(
    request: Request, endpoint: Endpoint, runtime: Runtime, caller: Caller
) -> GatewayRequest:
    """The caller's request, checked: its key's limits (429), then its body (400); it
    carries the caller's project and key for the accounting."""
    await runtime.auth.check_limits(caller)
    return parse_request(
        await request.body(), endpoint, project_id=caller.project_id, key_id=caller.key_id
    )


def gateway_response(answer: GatewayAnswer | GatewayStream) -> Response:
    """The HTTP answer: JSON, or server-sent events closed however the client leaves."""
    headers = {
        **answer.rate_limits,
        "x-datamill-deployment": answer.deployment,
        "x-request-id": answer.request_id,
    }
    if isinstance(answer, GatewayStream):
        return EventStreamResponse(answer.events, close=answer.close, headers=headers)
    return Response(answer.body, media_type="application/json", headers=headers)
