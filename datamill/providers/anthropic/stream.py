"""Anthropic's streamed events -> OpenAI ``chat.completion.chunk`` objects.

Anthropic streams ``message_start``, then for each content block ``content_block_start``,
``content_block_delta`` events and ``content_block_stop``, then ``message_delta`` (the stop
reason and the cumulative usage) and ``message_stop``; ``ping`` events may come anywhere, and
an ``error`` event is the call failing midway. The chunks are the ones OpenAI would stream: a
role chunk, content pieces, tool calls (the first piece with id, type and name, then argument
pieces, by ``index``), the finish chunk, and always the usage chunk with ``choices: []``.

Thinking blocks stream nothing (the complete answer leaves them out too); a `JSON_TOOL` call
streams its input as content pieces.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.anthropic.errors import error_from_body
from datamill.providers.anthropic.response import finish_reason, openai_usage
from datamill.providers.anthropic.table import JSON_TOOL
from datamill.providers.base import ChatChunk
from datamill.providers.sse import ServerSentEvent

_TEXT = "text"
_JSON = "json"
_CALL = "call"


class ChunkTranslator:
    """Feed it Anthropic's events in order; it returns the chunks each one makes."""

    def __init__(self, *, created: int) -> None:
        self.created = created
        self.finished = False
        self._base: dict[str, Any] = {"id": None, "object": "chat.completion.chunk"}
        self._usage: dict[str, Any] = {}
        self._opened = False
        self._blocks: dict[int, tuple[str, int]] = {}  # block index -> (kind, tool call index)
        self._calls = 0
        self._stop_reason: Any = None

    def feed(self, event: dict[str, Any]) -> list[ChatChunk]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self._base = {
                "id": message.get("id"),
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": message.get("model"),
            }
            self._usage.update(message.get("usage") or {})
            return []
        if kind == "content_block_start":
            return self._start(event.get("index"), event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._delta(event.get("index"), event.get("delta") or {})
        if kind == "message_delta":
            # Its usage figures are cumulative: they replace the ones so far.
            self._usage.update(
                {k: v for k, v in (event.get("usage") or {}).items() if v is not None}
            )
            self._stop_reason = (event.get("delta") or {}).get("stop_reason")
            return []
        if kind == "message_stop":
            self.finished = True
            chunks = self._open(content="")
            reason = finish_reason(self._stop_reason, called_tools=self._calls > 0)
            chunks.append(self._chunk([{**self._choice({}), "finish_reason": reason}]))
            chunks.append(self._chunk([], usage=openai_usage(self._usage)))
            return chunks
        if kind == "error":
            failure = error_from_body(event)
            raise ProviderError(
                failure.category,
                f"Anthropic failed midway through the stream: {failure.message}",
                status_code=failure.status_code,
                body=event,
                request_id=failure.request_id,
            )
        return []  # ping, content_block_stop, and event types added later

    def _start(self, index: Any, block: dict[str, Any]) -> list[ChatChunk]:
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = (_TEXT, -1)
            chunks = self._open(content="")
            if block.get("text"):
                chunks.append(self._content(block["text"]))
            return chunks
        if kind == "tool_use" and block.get("name") == JSON_TOOL:
            self._blocks[index] = (_JSON, -1)
            return self._open(content="")
        if kind == "tool_use":
            position = self._calls
            self._calls += 1
            self._blocks[index] = (_CALL, position)
            call = {
                "index": position,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return [*self._open(content=None), self._chunk([self._choice({"tool_calls": [call]})])]
        return self._open(content="")  # thinking: the answer has begun, nothing to show

    def _delta(self, index: Any, delta: dict[str, Any]) -> list[ChatChunk]:
        kind, position = self._blocks.get(index, ("", -1))
        if delta.get("type") == "text_delta" and kind == _TEXT and delta.get("text"):
            return [self._content(delta["text"])]
        if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
            piece = delta["partial_json"]
            if kind == _JSON:
                return [self._content(piece)]
            if kind == _CALL:
                call = {"index": position, "function": {"arguments": piece}}
                return [self._chunk([self._choice({"tool_calls": [call]})])]
        return []  # thinking_delta, signature_delta: left out

    def _open(self, *, content: str | None) -> list[ChatChunk]:
        """The role chunk, once: OpenAI opens a text answer with "" and a tool call with null."""
        if self._opened:
            return []
        self._opened = True
        return [self._chunk([self._choice({"role": "assistant", "content": content})])]

    def _content(self, text: str) -> ChatChunk:
        return self._chunk([self._choice({"content": text})])

    def _choice(self, delta: dict[str, Any]) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> ChatChunk:
        return {**self._base, "choices": choices, **extra}


async def chat_chunks(
    events: AsyncIterator[ServerSentEvent], *, created: int
) -> AsyncIterator[ChatChunk]:
    """The OpenAI chunks of an Anthropic event stream; `ProviderError` for a failure midway,
    and for a stream that ends before ``message_stop`` (the answer would be cut short)."""
    translator = ChunkTranslator(created=created)
    async for event in events:
        try:
            payload = orjson.loads(event.data) if event.data else {}
        except orjson.JSONDecodeError:
            raise ProviderError(
                ErrorCategory.server_error,
                f"Anthropic streamed an event that is not JSON: {event.data[:200]!r}",
            ) from None
        if not isinstance(payload, dict):
            continue
        for chunk in translator.feed(payload):
            yield chunk
        if translator.finished:
            return
    raise ProviderError(
        ErrorCategory.connection, "Anthropic's stream ended before its message_stop event"
    )
