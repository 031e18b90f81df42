"""Chat completion chunks: OpenAI's streaming objects, built from a whole completion.

Used where an answer exists whole before it is streamed (the `sim` provider, an adapter whose
upstream cannot stream a given request), so that every streaming client sees the same chunk
sequence as from OpenAI: a role chunk, content pieces, tool calls, the finish chunk, and the
usage chunk with ``choices: []``.
"""

from __future__ import annotations

import re
from typing import Any

from datamill.providers.base import ChatChunk

# Content is cut after each run of spaces, like a tokenizer's words: "a b" -> "a ", "b".
_PIECES = re.compile(r"\S+\s*|\s+")


def chunks_from_completion(completion: dict[str, Any]) -> list[ChatChunk]:
    """The chunks an OpenAI stream of ``completion`` would carry, usage last."""
    base = {
        "id": completion.get("id"),
        "object": "chat.completion.chunk",
        "created": completion.get("created"),
        "model": completion.get("model"),
    }
    if completion.get("system_fingerprint") is not None:
        base["system_fingerprint"] = completion["system_fingerprint"]

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> ChatChunk:
        return {**base, "choices": choices, **extra}

    chunks: list[ChatChunk] = []
    for choice in completion.get("choices") or []:
        index = choice.get("index", 0)
        message = choice.get("message") or {}

        def delta(fields: dict[str, Any], index: int = index) -> dict[str, Any]:
            return {"index": index, "delta": fields, "logprobs": None, "finish_reason": None}

        content = message.get("content")
        # OpenAI opens a text answer with content "" and a tool-call answer with null.
        opening = "" if isinstance(content, str) else None
        chunks.append(
            chunk([delta({"role": message.get("role", "assistant"), "content": opening})])
        )
        if isinstance(content, str):
            chunks += [chunk([delta({"content": piece})]) for piece in _PIECES.findall(content)]
        if message.get("refusal"):
            chunks.append(chunk([delta({"refusal": message["refusal"]})]))
        for position, call in enumerate(message.get("tool_calls") or []):
            chunks.append(chunk([delta({"tool_calls": [{"index": position, **call}]})]))
        finish = {"index": index, "delta": {}, "logprobs": None}
        chunks.append(chunk([{**finish, "finish_reason": choice.get("finish_reason")}]))
    if completion.get("usage") is not None:
        chunks.append(chunk([], usage=completion["usage"]))
    return chunks


def completion_from_chunks(chunks: list[ChatChunk]) -> dict[str, Any]:
    """The ``chat.completion`` a stream of chunks adds up to (as the openai SDK assembles
    it): content and refusals concatenated, tool-call arguments joined by index."""
    completion: dict[str, Any] = {"object": "chat.completion", "choices": []}
    choices: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for key in ("id", "created", "model", "system_fingerprint"):
            if chunk.get(key) is not None:
                completion[key] = chunk[key]
        if chunk.get("usage") is not None:
            completion["usage"] = chunk["usage"]
        for choice in chunk.get("choices") or []:
            index = choice.get("index", 0)
            merged = choices.setdefault(
                index,
                {
                    "index": index,
                    "message": {"role": "assistant", "content": None, "refusal": None},
                    "logprobs": None,
                    "finish_reason": None,
                },
            )
            _merge_delta(merged["message"], choice.get("delta") or {})
            if choice.get("finish_reason") is not None:
                merged["finish_reason"] = choice["finish_reason"]
    completion["choices"] = [choices[index] for index in sorted(choices)]
    return completion


def _merge_delta(message: dict[str, Any], delta: dict[str, Any]) -> None:
    if delta.get("role"):
        message["role"] = delta["role"]
    for key in ("content", "refusal"):
        if delta.get(key) is not None:
            message[key] = (message.get(key) or "") + delta[key]
    for call in delta.get("tool_calls") or []:
        calls = message.setdefault("tool_calls", [])
        position = call.get("index", len(calls))
        while len(calls) <= position:
            calls.append(
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
            )
        target = calls[position]
        if call.get("id"):
            target["id"] = call["id"]
        if call.get("type"):
            target["type"] = call["type"]
        function = call.get("function") or {}
        if function.get("name"):
            target["function"]["name"] += function["name"]
        if function.get("arguments"):
            target["function"]["arguments"] += function["arguments"]
