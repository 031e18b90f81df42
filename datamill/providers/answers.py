"""Reading OpenAI-format answers: what the `openai` provider and its batch API share."""

from __future__ import annotations

from typing import Any

from datamill.providers.base import Usage


def body_id(parsed: Any) -> str | None:
    """The answer's own ``id`` (``chatcmpl-...``), when it has one."""
    value = parsed.get("id") if isinstance(parsed, dict) else None
    return value if isinstance(value, str) and value else None


def usage_from_body(parsed: Any) -> Usage:
    """Token usage of an OpenAI chat completion or embeddings answer."""
    usage = parsed.get("usage") if isinstance(parsed, dict) else None
    if not isinstance(usage, dict):
        return Usage()
    prompt = usage.get("prompt_tokens") or usage.get("input_tokens") or 0
    completion = usage.get("completion_tokens") or usage.get("output_tokens") or 0
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=int(prompt),
        output_tokens=int(completion),
        cached_tokens=int(prompt_details.get("cached_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )
