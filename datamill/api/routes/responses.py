"""`/v1/responses`: OpenAI's Responses API on every configured provider (the gateway), and
the stored responses."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from datamill.api.deps import ProjectDep, RuntimeDep
from datamill.api.gateway_answers import JSON_BODY, caller_request, gateway_response
from datamill.callers import MEMBER, VIEWER, CallerDep
from datamill.providers.base import Endpoint

router = APIRouter(tags=["gateway"])


@router.post("/v1/responses", dependencies=[MEMBER], openapi_extra=JSON_BODY, response_model=None)
async def create_response(request: Request, runtime: RuntimeDep, caller: CallerDep) -> Response:
    """A model response, streamed (Responses events) or not: passed through to upstreams
    that have the API, translated to chat completions for the others. The answer's
    ``x-datamill-deployment`` header names the deployment that served it, its
    ``x-ratelimit-*`` headers that deployment's budget."""
    parsed = await caller_request(request, Endpoint.responses, runtime, caller)
    if not parsed.stream:
        return gateway_response(await runtime.responses.create(parsed))
    return gateway_response(await runtime.responses.open_stream(parsed))


@router.get("/v1/responses/{response_id}", dependencies=[VIEWER], response_model=None)
async def retrieve_response(
    response_id: str, runtime: RuntimeDep, project_id: ProjectDep
) -> Response:
    """A response created here with ``store`` true (OpenAI's default); 404 otherwise."""
    body = await runtime.responses.retrieve(response_id, project_id=project_id)
    return Response(body, media_type="application/json")
