"""Paging through an upstream's model list (Anthropic's ``after_id``, Gemini's ``pageToken``):
one loop, bounded however the upstream answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from datamill.providers.base import MAX_LISTED_MODELS, MAX_MODEL_PAGES

# A page's models (as OpenAI's Model objects) and the cursor of the next page (None: last).
Page = tuple[list[dict[str, Any]], str | None]


async def list_pages(fetch: Callable[[str | None], Awaitable[Page]]) -> list[dict[str, Any]]:
    """The models of every page ``fetch(cursor)`` gives, from cursor None on: at most
    `MAX_MODEL_PAGES` pages and `MAX_LISTED_MODELS` models. A page naming no next cursor,
    or the cursor it was fetched with, is the last (an upstream repeating a page never
    loops)."""
    models: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(MAX_MODEL_PAGES):
        listed, following = await fetch(cursor)
        models += listed
        if len(models) >= MAX_LISTED_MODELS or not following or following == cursor:
            break
        cursor = following
    return models[:MAX_LISTED_MODELS]
