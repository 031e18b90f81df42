"""The review page without a browser: its shell for a reviewer, the denied page (403) for a
viewer, its id escaped, and the dataset page's link to it shown to reviewers only (the
browser tests are in test_review_browser.py)."""

from __future__ import annotations

import re

from datamill.protocol.access import Role
from tests.web.test_signin import make_key, sign_in


async def test_a_reviewer_gets_the_review_page_under_datasets(dashboard_http):
    client = dashboard_http
    await make_key(client, Role.admin)  # ends local mode
    reviewer = await make_key(client, Role.reviewer)
    await sign_in(client, reviewer, "/datasets/ds_abc/review")

    page = await client.get("/datasets/ds_abc/review")

    assert page.status_code == 200
    assert 'data-page="review"' in page.text
    assert 'href="/datasets" aria-current="page"' in page.text
    assert 'data-schemas="/api/task-schemas"' in page.text
    for control in ('id="review"', 'id="edit-json"', 'id="keys"', 'id="progress"'):
        assert control in page.text, control


async def test_a_viewer_is_denied_the_review_page(dashboard_http):
    client = dashboard_http
    await make_key(client, Role.admin)
    viewer = await make_key(client, Role.viewer)
    await sign_in(client, viewer, "/datasets/ds_abc/review")

    page = await client.get("/datasets/ds_abc/review")

    assert page.status_code == 403
    assert "needs the <strong>reviewer</strong> role" in page.text
    assert "js/pages/review.js" not in page.text  # no script: nothing is reserved


async def test_the_review_page_escapes_its_dataset_id(dashboard_http):
    page = await dashboard_http.get("/datasets/ds_%3Cb%3E'x/review")

    assert page.status_code == 200
    assert "<b>" not in page.text
    assert "ds_&lt;b&gt;" in page.text
    assert 'href="/datasets/ds_%3Cb%3E%27x"' in page.text


async def test_the_dataset_page_links_to_its_review_for_reviewers(dashboard_http):
    page = await dashboard_http.get("/datasets/ds_abc")

    link = re.search(r'<a[^>]*id="review-link"[^>]*>', page.text)
    assert link is not None
    assert 'href="/datasets/ds_abc/review"' in link.group(0)
    assert 'data-needs="reviewer"' in link.group(0)
