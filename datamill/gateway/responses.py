"""The gateway's Responses API: create a response (through `GatewayService`, like every
gateway call), keep it when ``store`` is true (OpenAI's default), and read it back by id.

A streamed response is kept once its stream ends with the final response object
(``response.completed`` or ``response.incomplete``). A response that could not be stored is
still answered (and logged): only a later GET /v1/responses/{id} misses it.

A request whose ``previous_response_id`` names a response kept here continues it: the
earlier turns (that response's input items, its own earlier turns included, and its
output) are put before the request's ``input``, so any deployment can answer it, translated
or not. An id not kept here goes on as it is: an upstream with the API may know it, and
translation refuses it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import orjson

from datamill.clock import Clock
from datamill.errors import InvalidRequest, NotFound
from datamill.gateway.requests import GatewayRequest
from datamill.gateway.service import GatewayAnswer, GatewayService, GatewayStream
from datamill.protocol.responses import FINAL_EVENTS, continue_response, input_items
from datamill.storage.database import Database
from datamill.storage.responses import StoredResponse, get_response, save_response

log = logging.getLogger("datamill.gateway")

_FINAL_PREFIXES = tuple(f"event: {name}\n".encode() for name in FINAL_EVENTS)


class ResponsesService:
    def __init__(self, gateway: GatewayService, database: Database, clock: Clock) -> None:
        self._gateway = gateway
        self._database = database
        self._clock = clock

    async def create(self, request: GatewayRequest) -> GatewayAnswer:
        """A response (not streamed), kept when the request asks for it."""
        request, turns = await self._continued(request)
        answer = await self._gateway.complete(request)
        if _stored(request):
            await self._keep(request, turns, answer.body, answer.deployment)
        return answer

    async def open_stream(self, request: GatewayRequest) -> GatewayStream:
        """A streamed response (Responses events), kept once it ends."""
        request, turns = await self._continued(request)
        stream = await self._gateway.open_stream(request)
        if not _stored(request):
            return stream
        return replace(stream, events=self._keeping(request, turns, stream))

    async def retrieve(self, response_id: str, *, project_id: str) -> bytes:
        """The project's stored response object, or `NotFound` in OpenAI's error shape."""
        stored = await get_response(self._database, response_id, project_id=project_id)
        if stored is None:
            raise NotFound(
                f"No response with id '{response_id}' found (only responses created here "
                "with store true are kept).",
                param="response_id",
            )
        return stored.body

    async def _continued(self, request: GatewayRequest) -> tuple[GatewayRequest, list[Any]]:
        """The request with the turns of the response it continues put before its input
        (when that response is kept here), and its input items from the first turn on."""
        body = request.body
        previous = body.get("previous_response_id")
        if not isinstance(previous, str) or not previous:
            return request, input_items(body["input"])
        if "\x00" in previous:  # no id has one, and PostgreSQL's text cannot hold it
            raise InvalidRequest(
                "previous_response_id holds a NUL character",
                param="previous_response_id",
                code="invalid_value",
            )
        stored = await get_response(self._database, previous, project_id=request.project_id)
        if stored is None:
            return request, input_items(body["input"])
        body = continue_response(
            body,
            earlier_input=orjson.loads(stored.input),
            earlier_response=orjson.loads(stored.body),
        )
        return replace(request, body=body, raw=orjson.dumps(body)), body["input"]

    async def _keeping(
        self, request: GatewayRequest, turns: list[Any], stream: GatewayStream
    ) -> AsyncIterator[bytes]:
        try:
            async for event in stream.events:
                if event.startswith(_FINAL_PREFIXES):
                    data = event.split(b"\ndata: ", 1)[1]
                    final = orjson.loads(data).get("response")
                    if isinstance(final, dict):
                        await self._keep(request, turns, orjson.dumps(final), stream.deployment)
                yield event
        finally:
            await stream.close()

    async def _keep(
        self, request: GatewayRequest, turns: list[Any], body: bytes, deployment: str
    ) -> None:
        try:
            response_id = orjson.loads(body).get("id")
            if not isinstance(response_id, str) or not response_id:
                return
            await save_response(
                self._database,
                StoredResponse(
                    id=response_id,
                    project_id=request.project_id,
                    model=request.model,
                    deployment=deployment,
                    body=body,
                    input=orjson.dumps(turns),
                    created_at=self._clock.now(),
                ),
            )
        except Exception:
            log.exception("could not keep a response; GET /v1/responses/{id} will not find it")


def _stored(request: GatewayRequest) -> bool:
    return request.body.get("store") is not False
