"""Anthropic message -> OpenAI ``chat.completion``, and Anthropic usage -> OpenAI usage.

- Text blocks are the message ``content`` (concatenated); ``tool_use`` blocks are
  ``tool_calls`` with the input as a JSON string; a call of `JSON_TOOL` (how a
  ``response_format`` was asked) is the content itself, as JSON text.
- Thinking blocks are left out, as OpenAI leaves reasoning out of its answers; their tokens
  are counted as ``completion_tokens_details.reasoning_tokens`` when Anthropic reports them.
- Blocks of server tools and citations never come back: datamill asks for neither.
- ``prompt_tokens`` counts every input token: uncached, read from the cache and written to it;
  ``prompt_tokens_details.cached_tokens`` the ones read from the cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.anthropic.table import JSON_TOOL
from datamill.providers.base import ProviderResponse, RateLimitHints, Usage, clamp_tokens

# Anthropic's stop reasons as OpenAI finish reasons. ``tool_use`` depends on the calls (a
# JSON answer is content, not a call) and unknown reasons end the answer normally.
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",  # only server tools pause, and datamill sends none
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: Any, *, called_tools: bool) -> str:
    if stop_reason == "tool_use":
        return "tool_calls" if called_tools else "stop"
    return _FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def chat_completion(message: Mapping[str, Any], *, created: int) -> dict[str, Any]:
    """The OpenAI ``chat.completion`` of an Anthropic ``message`` object."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "tool_use" and block.get("name") == JSON_TOOL:
            texts.append(orjson.dumps(block.get("input")).decode())
        elif kind == "tool_use":
            calls.append(tool_call(block["id"], block["name"], block.get("input")))
    reply: dict[str, Any] = {
        "role": "assistant",
        # OpenAI's content is null for an answer that only calls tools.
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,  # required in OpenAI's ChatCompletionResponseMessage
    }
    if calls:
        reply["tool_calls"] = calls
    usage = message.get("usage")
    return {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": created,
        "model": message.get("model"),
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": finish_reason(
                    message.get("stop_reason"), called_tools=bool(calls)
                ),
            }
        ],
        "usage": openai_usage(usage if isinstance(usage, Mapping) else {}),
    }


def tool_call(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": orjson.dumps(arguments or {}).decode()},
    }


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return clamp_tokens(value) if isinstance(value, int | float) else 0


def thinking_tokens(usage: Mapping[str, Any]) -> int:
    details = usage.get("output_tokens_details")
    return _count(details, "thinking_tokens") if isinstance(details, Mapping) else 0


def openai_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI's ``usage`` object for Anthropic's."""
    cached = _count(usage, "cache_read_input_tokens")
    prompt = _count(usage, "input_tokens") + cached + _count(usage, "cache_creation_input_tokens")
    completion = _count(usage, "output_tokens")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": thinking_tokens(usage)},
    }


def usage_of(openai: Mapping[str, Any]) -> Usage:
    """The `Usage` of an OpenAI usage object made by `openai_usage`."""
    return Usage(
        input_tokens=openai["prompt_tokens"],
        output_tokens=openai["completion_tokens"],
        cached_tokens=openai["prompt_tokens_details"]["cached_tokens"],
        reasoning_tokens=openai["completion_tokens_details"]["reasoning_tokens"],
    )


def completion_response(
    message: Any,
    *,
    created: int,
    request_id: str,
    status_code: int = 200,
    rate_limits: RateLimitHints | None = None,
) -> ProviderResponse:
    """The `ProviderResponse` of an Anthropic message: its OpenAI ``chat.completion`` on one
    line. A message that is not one is the upstream failing (`server_error`)."""
    try:
        if not isinstance(message, dict) or message.get("type") != "message":
            raise TypeError("not a message object")
        completion = chat_completion(message, created=created)
    except (KeyError, TypeError, AttributeError, orjson.JSONEncodeError) as exc:
        raise ProviderError(
            ErrorCategory.server_error,
            f"Anthropic answered 2xx with something that is not a message ({exc})",
            status_code=status_code,
            body={"error": {"message": repr(message)[:500]}},
            request_id=request_id,
        ) from None
    return ProviderResponse(
        body=orjson.dumps(completion),
        usage=usage_of(completion["usage"]),
        request_id=request_id,
        status_code=status_code,
        rate_limits=rate_limits,
    )
