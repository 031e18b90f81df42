"""Anthropic's model list (``GET /v1/models``, newest first, paginated by ``after_id``) as
OpenAI's Model objects."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import orjson

from datamill.clock import Clock
from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.anthropic.errors import error_from_answer
from datamill.providers.http import HttpPool
from datamill.providers.model_pages import Page, list_pages

_PAGE = 1000  # Anthropic's largest page


async def list_models(
    http: HttpPool, *, base_url: str, headers: Mapping[str, str], clock: Clock
) -> list[dict[str, Any]]:
    """Every page of the list (bounded by `list_pages`); an error answer raises its
    `ProviderError`, a body that is not Anthropic's list a ``server_error``."""

    async def fetch(after: str | None) -> Page:
        query = f"limit={_PAGE}" + (f"&after_id={quote(after, safe='')}" if after else "")
        target = http.prepare(f"{base_url}/v1/models?{query}", headers, method="GET")
        answer = await http.send(target, data=b"")
        if answer.status >= 300:
            raise error_from_answer(answer, now=clock.now())
        page = _page(answer.body)
        last = page.get("last_id")
        following = last if page.get("has_more") is True and isinstance(last, str) else None
        return [_model(item) for item in page["data"] if _named(item)], following

    return await list_pages(fetch)


def _page(body: bytes) -> dict[str, Any]:
    try:
        page = orjson.loads(body)
    except orjson.JSONDecodeError:
        page = None
    if not isinstance(page, dict) or not isinstance(page.get("data"), list):
        raise ProviderError(
            ErrorCategory.server_error, "the model list is not Anthropic's {data: [...]}"
        )
    return page


def _named(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("id"), str) and bool(item["id"])


def _model(item: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic model entry (``id``, ``display_name``, ``created_at`` as RFC 3339) as
    OpenAI's Model object; ``display_name`` is kept."""
    model: dict[str, Any] = {
        "id": item["id"],
        "object": "model",
        "created": _unix_time(item.get("created_at")),
        "owned_by": "anthropic",
    }
    if isinstance(item.get("display_name"), str):
        model["display_name"] = item["display_name"]
    return model


def _unix_time(value: Any) -> int:
    if not isinstance(value, str):
        return 0
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0
