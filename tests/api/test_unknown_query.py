"""Unknown query parameters on datamill's own API (`/api/...`) are a 400 naming them, on
both stores; the OpenAI-compatible routes (`/v1/...`) keep ignoring them, as OpenAI's do."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api, assert_error


@pytest.fixture
async def api(make_api) -> Api:
    return await make_api()


async def test_an_unknown_query_parameter_is_a_400_naming_it(api: Api):
    created = await api.client.post("/api/datasets", json={"name": "faq"})
    dataset_id = created.json()["id"]
    for path in (
        "/api/datasets",
        f"/api/datasets/{dataset_id}",
        f"/api/datasets/{dataset_id}/samples",
        f"/api/datasets/{dataset_id}/export",
        "/api/generation/jobs",
    ):
        response = await api.client.get(path, params={"bacth_id": "b"})
        error = assert_error(response, 400, param="bacth_id", code="unknown_parameter")
        assert "bacth_id" in error["message"], error
    # The declared ones (a dependency's too: the sample filters) still pass.
    listed = await api.client.get(
        f"/api/datasets/{dataset_id}/samples", params={"topic": "math", "limit": 5}
    )
    assert listed.status_code == 200, listed.text
    # A body route is checked as well.
    posted = await api.client.post("/api/datasets", params={"force": "1"}, json={"name": "x"})
    assert_error(posted, 400, param="force", code="unknown_parameter")


async def test_the_openai_routes_ignore_unknown_query_parameters(api: Api):
    response = await api.client.get("/v1/batches", params={"api-version": "2024-10-21"})
    assert response.status_code == 200, response.text
