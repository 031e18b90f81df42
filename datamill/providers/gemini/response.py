"""Gemini ``GenerateContentResponse`` objects to OpenAI ``chat.completion`` objects.

Reference: Gemini API, "Generating content" (``GenerateContentResponse``, ``Candidate``,
``FinishReason``, ``UsageMetadata``, ``LogprobsResult``). Shared by the non-streamed answer,
the stream (per event) and batch results.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import orjson

from datamill.errors import ErrorCategory, ProviderError
from datamill.ids import new_provider_request_id
from datamill.providers.base import ProviderResponse, Usage, clamp_tokens

# Candidate.finishReason -> OpenAI finish_reason; STOP becomes tool_calls when the candidate
# called functions. Reasons that mean the answer is unusable raise instead (`_FAILED`).
_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}
_FAILED = {
    # The model's function call did not parse or named no declared function: a new sample
    # may succeed, so retryable.
    "MALFORMED_FUNCTION_CALL": ErrorCategory.server_error,
    "UNEXPECTED_TOOL_CALL": ErrorCategory.server_error,
    "MALFORMED_RESPONSE": ErrorCategory.server_error,
    # The history lacks a thought signature Gemini 3 requires: the request is at fault.
    "MISSING_THOUGHT_SIGNATURE": ErrorCategory.bad_request,
}


def blocked_prompt(data: dict[str, Any]) -> ProviderError | None:
    """The `content_filter` error of a prompt Gemini refused (``promptFeedback.blockReason``)."""
    feedback = data.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if not reason or data.get("candidates"):
        return None
    return ProviderError(
        ErrorCategory.content_filter,
        f"Gemini blocked the prompt ({reason})",
        status_code=200,
        body=data,
    )


def finish_reason(reason: str | None, *, called: bool) -> str | None:
    """OpenAI's finish_reason of a Gemini finishReason (None while unfinished)."""
    if not reason:
        return None
    if reason in _FAILED:
        raise ProviderError(
            _FAILED[reason], f"Gemini could not finish the answer ({reason})", status_code=200
        )
    mapped = _FINISH.get(reason, "stop")
    return "tool_calls" if mapped == "stop" and called else mapped


def tool_call_id(index: int, position: int, call: dict[str, Any]) -> str:
    """Gemini's id for a function call, else a stable one from the call itself (so the same
    answer streamed or not carries the same ids)."""
    given = call.get("id")
    if isinstance(given, str) and given:
        return given
    key = orjson.dumps(
        [index, position, call.get("name"), call.get("args") or {}], option=orjson.OPT_SORT_KEYS
    )
    return "call_" + hashlib.sha256(key).hexdigest()[:24]


def tool_call(index: int, position: int, part: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI tool call of a ``functionCall`` part."""
    call = part["functionCall"]
    result: dict[str, Any] = {
        "id": tool_call_id(index, position, call),
        "type": "function",
        "function": {
            "name": call.get("name") or "",
            "arguments": orjson.dumps(call.get("args") or {}).decode(),
        },
    }
    if part.get("thoughtSignature"):
        # Where Google's OpenAI-compatible API puts it; request.py sends it back.
        result["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
    return result


def answer_parts(candidate: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts of a candidate that are the answer: thought summaries are not."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts or [] if isinstance(p, dict) and not p.get("thought")]


def logprobs(candidate: dict[str, Any]) -> dict[str, Any] | None:
    """OpenAI's ``logprobs`` of a candidate's ``logprobsResult``."""
    result = candidate.get("logprobsResult")
    if not isinstance(result, dict):
        return None
    chosen = result.get("chosenCandidates") or []
    tops = result.get("topCandidates") or []
    content = []
    for position, token in enumerate(chosen):
        top = tops[position].get("candidates") or [] if position < len(tops) else []
        content.append({**_token(token), "top_logprobs": [_token(t) for t in top]})
    return {"content": content, "refusal": None}


def _token(token: dict[str, Any]) -> dict[str, Any]:
    text = token.get("token") or ""
    return {
        "token": text,
        "logprob": token.get("logProbability", 0.0),
        "bytes": list(text.encode()),
    }


def usage(metadata: Any) -> tuple[dict[str, Any], Usage]:
    """OpenAI usage (and `Usage`) of ``usageMetadata``. Gemini counts thoughts apart from
    the candidates; OpenAI counts reasoning tokens inside completion_tokens, so they are
    added there, and reported as reasoning tokens too. Cached tokens are part of the prompt
    in both."""
    metadata = metadata if isinstance(metadata, dict) else {}
    prompt = clamp_tokens(metadata.get("promptTokenCount"))
    prompt = clamp_tokens(prompt + clamp_tokens(metadata.get("toolUsePromptTokenCount")))
    thoughts = clamp_tokens(metadata.get("thoughtsTokenCount"))
    completion = clamp_tokens(clamp_tokens(metadata.get("candidatesTokenCount")) + thoughts)
    cached = clamp_tokens(metadata.get("cachedContentTokenCount"))
    body = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }
    return body, Usage(
        input_tokens=prompt,
        output_tokens=completion,
        cached_tokens=cached,
        reasoning_tokens=thoughts,
    )


def completion_id(data: dict[str, Any]) -> str:
    response_id = data.get("responseId")
    return f"chatcmpl-{response_id}" if response_id else f"chatcmpl-{secrets.token_hex(12)}"


def completion(data: dict[str, Any], *, model: str, created: int) -> tuple[dict[str, Any], Usage]:
    """The ``chat.completion`` of a whole answer. A blocked prompt raises `content_filter`."""
    blocked = blocked_prompt(data)
    if blocked is not None:
        raise blocked
    choices: list[dict[str, Any]] = []
    for position, candidate in enumerate(data.get("candidates") or []):
        index = int(candidate.get("index", position))
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for part in answer_parts(candidate):
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part.get("functionCall"), dict):
                calls.append(tool_call(index, len(calls), part))
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(texts) if texts else None,
            "refusal": None,
            "annotations": [],
        }
        if calls:
            message["tool_calls"] = calls
        choices.append(
            {
                "index": index,
                "message": message,
                "logprobs": logprobs(candidate),
                "finish_reason": finish_reason(candidate.get("finishReason"), called=bool(calls))
                or "stop",
            }
        )
    if not choices:
        raise ProviderError(
            ErrorCategory.server_error, "Gemini answered without a candidate", body=data
        )
    usage_body, counted = usage(data.get("usageMetadata"))
    answer = {
        "id": completion_id(data),
        "object": "chat.completion",
        "created": created,
        "model": data.get("modelVersion") or model,
        "choices": sorted(choices, key=lambda choice: choice["index"]),
        "usage": usage_body,
    }
    return answer, counted


def provider_response(data: Any, *, model: str, created: int) -> ProviderResponse:
    """The `ProviderResponse` of a ``GenerateContentResponse`` (answers and batch results)."""
    if not isinstance(data, dict):
        raise ProviderError(ErrorCategory.server_error, "Gemini answered a non-object body")
    answer, counted = completion(data, model=model, created=created)
    return ProviderResponse(
        body=orjson.dumps(answer),
        usage=counted,
        request_id=data.get("responseId") or new_provider_request_id(),
    )
