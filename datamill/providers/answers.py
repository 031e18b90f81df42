"""Reading OpenAI-format answers: what the `openai` provider and its batch API share."""

from __future__ import annotations

from typing import Any


def body_id(parsed: Any) -> str | None:
    """The answer's own ``id`` (``chatcmpl-...``), when it has one."""
    value = parsed.get("id") if isinstance(parsed, dict) else None
    return value if isinstance(value, str) and value else None
