"""Gemini's model list (``GET models``, paginated by ``pageToken``) as OpenAI's Model
objects: only the models that generate content (``supportedGenerationMethods``), named as
datamill calls them (``gemini-2.0-flash``, not ``models/gemini-2.0-flash``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.gemini.client import GeminiClient
from datamill.providers.model_pages import Page, list_pages

_PAGE = 1000  # Gemini's largest page
_PREFIX = "models/"


async def list_models(client: GeminiClient) -> list[dict[str, Any]]:
    """Every page of the list (bounded by `list_pages`); an error answer raises its
    `ProviderError`, a body that is not Gemini's list a ``server_error``."""

    async def fetch(token: str | None) -> Page:
        query = f"pageSize={_PAGE}" + (f"&pageToken={quote(token, safe='')}" if token else "")
        page = await client.get(f"models?{query}")
        listed = page.get("models", []) if isinstance(page, dict) else None
        if not isinstance(listed, list):
            raise ProviderError(
                ErrorCategory.server_error, "the model list is not Gemini's {models: [...]}"
            )
        following = page.get("nextPageToken")
        models = [_model(item) for item in listed if _generates(item)]
        return models, following if isinstance(following, str) else None

    return await list_pages(fetch)


def _generates(item: Any) -> bool:
    """A named model that answers ``generateContent`` (not an embedding-only one)."""
    if not isinstance(item, dict):
        return False
    name, methods = item.get("name"), item.get("supportedGenerationMethods")
    return (
        isinstance(name, str)
        and len(name) > len(_PREFIX)
        and name.startswith(_PREFIX)
        and isinstance(methods, list)
        and "generateContent" in methods
    )


def _model(item: dict[str, Any]) -> dict[str, Any]:
    """A Gemini model entry as OpenAI's Model object (Gemini gives no creation time: 0);
    ``displayName`` is kept as ``display_name``."""
    model: dict[str, Any] = {
        "id": item["name"].removeprefix(_PREFIX),
        "object": "model",
        "created": 0,
        "owned_by": "google",
    }
    if isinstance(item.get("displayName"), str):
        model["display_name"] = item["displayName"]
    return model
