"""Gemini's ``streamGenerateContent?alt=sse`` events to OpenAI ``chat.completion.chunk``s.

Each event is a whole ``GenerateContentResponse`` carrying the next piece of each candidate:
text parts are increments, function calls arrive whole, the last event of a candidate has its
``finishReason``, and ``usageMetadata`` is complete in the last event. The chunks follow
OpenAI's order: a role chunk per choice, content pieces and tool-call deltas, the finish
chunk, and always a closing usage chunk with ``choices: []``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.base import ChatChunk
from datamill.providers.gemini import response
from datamill.providers.gemini.errors import error_from_body
from datamill.providers.sse import ServerSentEvent


def parse_event(event: ServerSentEvent) -> dict[str, Any]:
    """One event's ``GenerateContentResponse``; an error object raises its `ProviderError`."""
    try:
        data = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        raise ProviderError(
            ErrorCategory.server_error,
            f"Gemini streamed an event that is not JSON: {event.data[:200]!r}",
        ) from None
    if not isinstance(data, dict):
        raise ProviderError(ErrorCategory.server_error, "Gemini streamed a non-object event")
    if data.get("error") is not None:
        error = error_from_body(None, data)
        error.message = f"Gemini failed midway through the stream: {error.message}"
        raise error
    return data


class ChunkTranslator:
    """The chunk state of one stream: which choices opened, which tool calls they made."""

    def __init__(self, *, model: str, created: int) -> None:
        self._model = model
        self._created = created
        self._id: str | None = None
        self._opened: set[int] = set()
        self._calls: dict[int, int] = {}  # choice index -> tool calls so far
        self._usage: Any = None

    def chunks(self, data: dict[str, Any]) -> list[ChatChunk]:
        """The chunks of one event."""
        blocked = response.blocked_prompt(data)
        if blocked is not None:
            raise blocked
        if self._id is None:
            self._id = response.completion_id(data)
            self._model = data.get("modelVersion") or self._model
        if data.get("usageMetadata") is not None:
            self._usage = data["usageMetadata"]
        out: list[ChatChunk] = []
        for position, candidate in enumerate(data.get("candidates") or []):
            out += self._candidate(int(candidate.get("index", position)), candidate)
        return out

    def usage_chunk(self) -> ChatChunk:
        """The closing chunk with the stream's usage."""
        usage_body, _ = response.usage(self._usage)
        return self._chunk([], usage=usage_body)

    def _candidate(self, index: int, candidate: dict[str, Any]) -> list[ChatChunk]:
        out = []
        parts = response.answer_parts(candidate)
        if index not in self._opened:
            self._opened.add(index)
            # OpenAI opens a text answer with content "" and a tool-call answer with null.
            first_is_call = bool(parts) and "functionCall" in parts[0]
            out.append(
                self._delta(index, {"role": "assistant", "content": None if first_is_call else ""})
            )
        logprobs = response.logprobs(candidate)
        for part in parts:
            if isinstance(part.get("text"), str) and part["text"]:
                out.append(self._delta(index, {"content": part["text"]}, logprobs=logprobs))
                logprobs = None  # one event's logprobs go with its first piece
            elif isinstance(part.get("functionCall"), dict):
                position = self._calls.get(index, 0)
                self._calls[index] = position + 1
                call = response.tool_call(index, position, part)
                out.append(self._delta(index, {"tool_calls": [{"index": position, **call}]}))
        reason = response.finish_reason(
            candidate.get("finishReason"), called=self._calls.get(index, 0) > 0
        )
        if reason is not None:
            finish = {"index": index, "delta": {}, "logprobs": None, "finish_reason": reason}
            out.append(self._chunk([finish]))
        return out

    def _delta(
        self, index: int, delta: dict[str, Any], *, logprobs: dict[str, Any] | None = None
    ) -> ChatChunk:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": None}
        return self._chunk([choice])

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> ChatChunk:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": choices,
            **extra,
        }


async def translate_events(
    events: AsyncIterator[ServerSentEvent], translator: ChunkTranslator
) -> AsyncIterator[ChatChunk]:
    """The chunks of the (rest of the) stream's events, then the usage chunk."""
    async for event in events:
        for chunk in translator.chunks(parse_event(event)):
            yield chunk
    yield translator.usage_chunk()
