"""The Datasets pages without a browser: their shells, what a role is shown, the schema
registry asked for only when the server has it, and the dataset page's figure under
300 ms on a 10,000-sample dataset (the browser tests are in test_datasets_browser.py)."""

from __future__ import annotations

import re
import time

import httpx
import orjson
import pytest

from datamill.protocol.access import Role
from datamill.protocol.datasets import DatasetCreate
from datamill.runtime import Runtime
from tests.web.test_signin import make_key, sign_in


@pytest.fixture
def client(dashboard_http):
    return dashboard_http


async def test_the_datasets_page_is_listed_in_the_navigation(client):
    page = await client.get("/datasets")

    assert page.status_code == 200
    assert 'href="/datasets" aria-current="page"' in page.text
    assert 'data-page="datasets"' in page.text


async def test_a_datasets_page_is_current_under_datasets_and_escapes_its_id(client):
    page = await client.get("/datasets/ds_%3Cb%3E'x")

    assert page.status_code == 200
    assert 'href="/datasets" aria-current="page"' in page.text
    assert "<b>" not in page.text
    assert "ds_&lt;b&gt;" in page.text
    assert 'data-page="dataset"' in page.text


async def test_the_edit_controls_need_a_reviewer_and_a_viewer_is_not_given_the_role(client):
    await make_key(client, Role.admin)  # ends local mode
    viewer = await make_key(client, Role.viewer)
    signed = await sign_in(client, viewer, "/datasets/ds_abc")
    assert signed.status_code == 303

    page = await client.get("/datasets/ds_abc")

    assert page.status_code == 200
    assert 'data-may="viewer"' in page.text
    for control in ('id="edit"', 'id="editor"'):
        tag = re.search(rf"<[^>]*{control}[^>]*>", page.text)
        assert tag is not None, control
        assert 'data-needs="reviewer"' in tag.group(0), control


async def test_a_reviewer_is_given_the_role_the_edit_controls_need(client):
    await make_key(client, Role.admin)
    reviewer = await make_key(client, Role.reviewer)
    await sign_in(client, reviewer, "/datasets/ds_abc")

    page = await client.get("/datasets/ds_abc")

    may = re.search(r'data-may="([^"]*)"', page.text)
    assert may is not None
    assert "reviewer" in may.group(1).split()


def qa_lines(count: int) -> bytes:
    lines = (
        orjson.dumps(
            {
                "content": {"question": f"question {n} about rivers", "answer": "an answer " * 30},
                "topic": ("math", "science", "law")[n % 3],
                "sample_type": "qa",
                "model": "gpt-4o-mini",
            }
        )
        for n in range(count)
    )
    return b"\n".join(lines) + b"\n"


@pytest.mark.serial  # a timing bound: bench/datasets_page.py measures it through a server
async def test_a_page_of_a_10000_sample_dataset_answers_in_under_300_ms(client):
    runtime: Runtime = client.runtime

    async def chunks():
        yield qa_lines(10_000)

    view = await runtime.datasets.create(DatasetCreate(name="big"))
    dataset_id = view.record.id
    report = await runtime.datasets.import_jsonl(dataset_id, chunks())
    assert report.imported == 10_000
    api = f"/api/datasets/{dataset_id}"
    views = [
        (f"/datasets/{dataset_id}", [api, f"{api}/samples?limit=50"]),
        (f"/datasets/{dataset_id}?q=rivers", [api, f"{api}/samples?limit=50&q=rivers"]),
        (f"/datasets/{dataset_id}?topic=law", [api, f"{api}/samples?limit=50&topic=law"]),
    ]

    async def open_view(page: str, calls: list[str]) -> float:
        started = time.perf_counter()
        assert (await client.get(page)).status_code == 200
        for call in calls:
            answer: httpx.Response = await client.get(call)
            assert answer.status_code == 200, answer.text
        return time.perf_counter() - started

    for page, calls in views:
        await open_view(page, calls)  # warm
        best = min([await open_view(page, calls) for _ in range(3)])
        assert best < 0.3, (page, best)
