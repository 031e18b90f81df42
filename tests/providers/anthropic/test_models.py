"""The `anthropic` provider's model list: Anthropic's paginated ``GET /v1/models`` from the mock
server, as OpenAI's Model objects."""

from __future__ import annotations

import pytest

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.base import MAX_MODEL_PAGES
from tests.providers.anthropic.conftest import API_KEY, make_provider, seen_requests


async def test_every_page_is_read_with_the_key_and_version(anthropic, provider):
    names = [f"claude-{n}" for n in range(5)]
    anthropic.control(listed_models=names, models_page_size=2)

    models = await provider.list_models()

    assert [model["id"] for model in models] == names
    assert models[0] == {
        "id": "claude-0",
        "object": "model",
        "created": 1_740_000_000,  # created_at 2025-02-19T21:20:00Z
        "owned_by": "anthropic",
        "display_name": "Claude 0",
    }
    pages = seen_requests(anthropic)
    assert [page["path"] for page in pages] == ["/v1/models"] * 3
    assert all(page["headers"]["x-api-key"] == API_KEY for page in pages)
    assert all("anthropic-version" in page["headers"] for page in pages)


async def test_an_endless_list_is_read_for_a_bounded_number_of_pages(anthropic, provider):
    anthropic.control(listed_models=[f"m-{n}" for n in range(MAX_MODEL_PAGES + 5)])
    anthropic.control(models_page_size=1)

    models = await provider.list_models()

    assert len(models) == MAX_MODEL_PAGES
    assert len(seen_requests(anthropic)) == MAX_MODEL_PAGES


@pytest.mark.parametrize(
    ("switches", "api_key", "category"),
    [
        ({}, None, ErrorCategory.auth),
        ({"force_status": 529}, API_KEY, ErrorCategory.server_error),
        ({"force_status": 429}, API_KEY, ErrorCategory.rate_limited),
    ],
)
async def test_errors_are_mapped_like_every_call(anthropic, http, switches, api_key, category):
    anthropic.control(**switches)
    provider = make_provider(http, anthropic.url, api_key=api_key)

    with pytest.raises(ProviderError) as raised:
        await provider.list_models()

    assert raised.value.category is category
