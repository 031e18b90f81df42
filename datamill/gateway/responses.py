"""The gateway's Responses API: create a response (through `GatewayService`, like every
gateway call), keep it when ``store`` is true (OpenAI's default), and read it back by id.

A streamed response is kept once its stream ends with the final response object
(``response.completed`` or ``response.incomplete``). A response that could not be stored is
still answered (and logged): only a later GET /v1/responses/{id} misses it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import orjson

from datamill.clock import Clock
from datamill.errors import NotFound
from datamill.gateway.requests import GatewayRequest
from datamill.gateway.service import GatewayAnswer, GatewayService, GatewayStream
from datamill.protocol.responses import FINAL_EVENTS
from datamill.storage.database import Database
from datamill.storage.responses import StoredResponse, get_response, save_response
from datamill.storage.schema import DEFAULT_PROJECT_ID

log = logging.getLogger("datamill.gateway")

_FINAL_PREFIXES = tuple(f"event: {name}\n".encode() for name in FINAL_EVENTS)


class ResponsesService:
    def __init__(self, gateway: GatewayService, database: Database, clock: Clock) -> None:
        self._gateway = gateway
        self._database = database
        self._clock = clock

    async def create(self, request: GatewayRequest) -> GatewayAnswer:
        """A response (not streamed), kept when the request asks for it."""
        answer = await self._gateway.complete(request)
        if _stored(request):
            await self._keep(request, answer.body, answer.deployment)
        return answer

    async def open_stream(self, request: GatewayRequest) -> GatewayStream:
        """A streamed response (Responses events), kept once it ends."""
        stream = await self._gateway.open_stream(request)
        if not _stored(request):
            return stream
        events = self._keeping(request, stream)
        return GatewayStream(events, stream.deployment, stream.request_id)

    async def retrieve(self, response_id: str) -> bytes:
        """The stored response object, or `NotFound` in OpenAI's error shape."""
        body = await get_response(self._database, response_id, project_id=DEFAULT_PROJECT_ID)
        if body is None:
            raise NotFound(
                f"No response with id '{response_id}' found (only responses created here "
                "with store true are kept).",
                param="response_id",
            )
        return body

    async def _keeping(
        self, request: GatewayRequest, stream: GatewayStream
    ) -> AsyncIterator[bytes]:
        try:
            async for event in stream.events:
                if event.startswith(_FINAL_PREFIXES):
                    data = event.split(b"\ndata: ", 1)[1]
                    final = orjson.loads(data).get("response")
                    if isinstance(final, dict):
                        await self._keep(request, orjson.dumps(final), stream.deployment)
                yield event
        finally:
            await stream.close()

    async def _keep(self, request: GatewayRequest, body: bytes, deployment: str) -> None:
        try:
            response_id = orjson.loads(body).get("id")
            if not isinstance(response_id, str) or not response_id:
                return
            await save_response(
                self._database,
                StoredResponse(
                    id=response_id,
                    project_id=DEFAULT_PROJECT_ID,
                    model=request.model,
                    deployment=deployment,
                    body=body,
                    created_at=self._clock.now(),
                ),
            )
        except Exception:
            log.exception("could not keep a response; GET /v1/responses/{id} will not find it")


def _stored(request: GatewayRequest) -> bool:
    return request.body.get("store") is not False
