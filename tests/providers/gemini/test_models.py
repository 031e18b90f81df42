"""The `gemini` provider's model list: Gemini's paginated ``GET models`` from the mock server,
as OpenAI's Model objects (only the models that generate content, without ``models/``)."""

from __future__ import annotations

import pytest

from datamill.errors import ErrorCategory, ProviderError
from tests.providers.gemini.conftest import API_KEY, make_provider, seen


async def test_models_that_generate_content_from_every_page(gemini_mock, provider):
    gemini_mock.control(
        listed_models=["gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.0-flash"],
        listed_embedding_models=["text-embedding-004"],
        models_page_size=1,
    )

    models = await provider.list_models()

    assert [model["id"] for model in models] == [
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "gemini-2.0-flash",
    ]
    assert models[0] == {
        "id": "gemini-2.5-pro",
        "object": "model",
        "created": 0,
        "owned_by": "google",
        "display_name": "Gemini 2.5 Pro",
    }
    pages = [request for request in seen(gemini_mock) if request["path"] == "/v1beta/models"]
    assert len(pages) == 4  # the last one holds only the embedding model
    # The opaque page token (base64 with "+") is escaped in the query.
    assert all("pageToken=%2B%2B%2B%2B" in page["query"] for page in pages[1:])


@pytest.mark.parametrize(
    ("switches", "api_key", "category"),
    [
        ({}, None, ErrorCategory.auth),
        ({"force_status": 503}, API_KEY, ErrorCategory.server_error),
        ({"force_status": 429}, API_KEY, ErrorCategory.rate_limited),
    ],
)
async def test_errors_are_mapped_like_every_call(gemini_mock, http, switches, api_key, category):
    gemini_mock.control(**switches)
    provider = make_provider(gemini_mock.url, http, api_key=api_key)

    with pytest.raises(ProviderError) as raised:
        await provider.list_models()

    assert raised.value.category is category
