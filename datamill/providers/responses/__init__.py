"""OpenAI's Responses API (``/v1/responses``) on every provider.

A provider whose upstream has the API (``capabilities.responses``: an `openai` deployment
configured so) gets the call as it is. Every other one gets it translated: the request to a
chat completion (`request.to_chat`, refusing what chat cannot express), the answer back to a
response object (`answer.to_response`), a stream's chunks to Responses events
(`events.ResponseEvents`). The gateway and the batch executor call `respond` and
`stream_response` for every ``Endpoint.responses`` call.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

import orjson

from datamill.errors import ProviderError
from datamill.providers.base import (
    ChatChunk,
    Endpoint,
    Provider,
    ProviderCall,
    ProviderResponse,
    ProviderStream,
)
from datamill.providers.responses.answer import to_response
from datamill.providers.responses.events import ResponseEvents
from datamill.providers.responses.request import RESPONSE_FIELDS, refused, to_chat

__all__ = ["RESPONSE_FIELDS", "refused", "respond", "stream_response"]

Answer = TypeVar("Answer", ProviderResponse, ProviderStream)

# Chat fields a provider may refuse, by the Responses field the client set.
_RESPONSE_NAMES = {
    "max_completion_tokens": "max_output_tokens",
    "reasoning_effort": "reasoning.effort",
    "response_format": "text.format",
    "verbosity": "text.verbosity",
    "messages": "input",
    "messages[].system": "instructions",
    "messages[].image_url": "input[].content[].image_url",
    "messages[].file": "input[].content[].file_data",
    "messages[].tool_calls": "input[].function_call",
    "messages[].tool": "input[].function_call_output",
}


async def respond(provider: Provider, call: ProviderCall) -> ProviderResponse:
    """A (not streamed) Responses call: passed through, or translated to chat and back."""
    if provider.capabilities.responses:
        return await provider.complete(call)
    answer = await _as_chat(provider.complete, call)
    completion = orjson.loads(answer.body)
    body = orjson.dumps(to_response(completion, call.body).wire())
    return replace(answer, body=body)


async def stream_response(provider: Provider, call: ProviderCall) -> ProviderStream:
    """A streamed Responses call: its ``chunks`` are Responses events (dicts with ``type``)."""
    if provider.capabilities.responses:
        return await provider.stream(call)
    stream = await _as_chat(provider.stream, call)
    builder = ResponseEvents(call.body, created_at=time.time())
    return replace(stream, chunks=_events(stream.chunks, builder))


async def _as_chat(send: Callable[[ProviderCall], Awaitable[Answer]], call: ProviderCall) -> Answer:
    """``call`` translated to a chat completion and sent; a chat field the provider refuses
    is named as the Responses field the client set."""
    try:
        return await send(ProviderCall(Endpoint.chat_completions, to_chat(call.body), call.timeout))
    except ProviderError as exc:
        raise _renamed(exc) from None


async def _events(chunks: AsyncIterator[ChatChunk], builder: ResponseEvents) -> AsyncIterator[Any]:
    async for chunk in chunks:
        for event in builder.feed(chunk):
            yield event
    for event in builder.finish():
        yield event


def _renamed(exc: ProviderError) -> ProviderError:
    """A provider's refusal of a chat field, named as the Responses field the client set."""
    name = _RESPONSE_NAMES.get(exc.param or "")
    if name is None or exc.status_code is not None:  # the upstream's own answer stays as is
        return exc
    message = exc.message.replace(f"`{exc.param}`", f"`{name}`")
    body = {"error": {"message": message, "type": "invalid_request_error", "param": name}}
    return ProviderError(exc.category, message, body=body, param=name)
