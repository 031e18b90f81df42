"""The Datasets pages in a real browser (Debian's Chromium, headless) against `datamill serve`
with keys: open a dataset from the list, page through its samples, search and filter (the
view in the address, back and forward), walk the table from the keyboard, open a sample,
edit it as a reviewer (the cookie and the CSRF header), see the new version in its history
and restore the old one; a viewer is shown no edit control; a sample holding markup shows
it as text and runs nothing.

The same guards as every browser test hold: no request to another host, no error in a
page's console but those a test expects."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import Browsing, Dashboard, serve_dashboard
from tests.web.test_signin_browser import key_of, sign_in

pytestmark = pytest.mark.slow

# Chromium logs an answer of 4xx as a console error: the tests that expect one allow it.
BAD_REQUEST = "400 (Bad Request)"
NOT_FOUND = "404 (Not Found)"
CONFLICT = "409 (Conflict)"
ANSWERS = ("Restart the router.", "Clear the cache.", "Restart the app.", "Call support.")
XSS = {
    "question": "<script>window.__xss = 1</script>Is this <b>bold</b>?",
    "answer": '<img src="x" onerror="window.__xss = 2"> & "quotes"',
}


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """A server with a member key (the helpers'), a reviewer key and a viewer key."""
    yield from serve_dashboard(tmp_path_factory, roles=("member", "reviewer", "viewer"))


@pytest.fixture(scope="module")
def dataset(dashboard: Dashboard) -> dict[str, Any]:
    """A dataset of 120 samples (40 per topic, two sample types), the newest holding markup."""
    created = dashboard.http.post(
        "/api/datasets", json={"name": "support-faq", "description": "billing and shipping"}
    )
    assert created.status_code == 200, created.text
    found: dict[str, Any] = created.json()
    lines = [
        {
            "content": {"question": f"How do I fix case {n}?", "answer": ANSWERS[n % 4]},
            "topic": ("billing", "shipping", "returns")[n % 3],
            "sample_type": ("qa", "troubleshooting")[n % 2],
            "model": "gpt-4o-mini",
            "metadata": {"n": n},
        }
        for n in range(120)
    ]
    lines.append({"content": XSS, "topic": "billing", "sample_type": "qa"})
    data = "\n".join(json.dumps(line) for line in lines).encode()
    imported = dashboard.http.post(
        f"/api/datasets/{found['id']}/import", files={"file": ("s.jsonl", data)}
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["imported"] == 121
    return found


def samples(dashboard: Dashboard, dataset_id: str, **query: Any) -> list[dict[str, Any]]:
    answer = dashboard.http.get(f"/api/datasets/{dataset_id}/samples", params=query)
    assert answer.status_code == 200, answer.text
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


def row_ids(page: Page) -> list[str]:
    return list(
        page.locator("#samples tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    )


def signed_in(browse: Any, dashboard: Dashboard, role: str, path: str, **options: Any) -> Page:
    browsing: Browsing = browse(**options)
    return sign_in(browsing, key_of(dashboard, role), path)


def test_a_dataset_is_opened_paged_searched_and_filtered_with_the_view_in_the_address(
    browse: Any, dashboard: Dashboard, dataset: dict[str, Any]
):
    page = signed_in(browse, dashboard, "viewer", "/datasets")
    link = page.get_by_role("link", name="support-faq")
    expect(page.locator("#datasets tbody tr")).to_contain_text(["121"])
    link.click()

    expect(page).to_have_url(f"{dashboard.url}/datasets/{dataset['id']}")
    expect(page.locator("h1")).to_have_text("support-faq")
    expect(page.locator("#stats")).to_contain_text("121")
    figures = {"Topics": "3", "Sample types": "2", "Models": "1"}  # a sample has no model
    for name, value in figures.items():
        expect(page.locator("#stats div", has_text=name).locator("dd")).to_have_text(value)
    newest = [s["id"] for s in samples(dashboard, dataset["id"], limit=50)]
    expect(page.locator("#samples tbody tr")).to_have_count(50)
    assert row_ids(page) == newest
    expect(page.locator("#newer")).to_be_hidden()

    # The next page, by the API's cursor; back and forward walk the pages.
    page.click("#older")
    expect(page).to_have_url(f"{dashboard.url}/datasets/{dataset['id']}?after={newest[-1]}")
    second = [s["id"] for s in samples(dashboard, dataset["id"], limit=50, after=newest[-1])]
    expect(page.locator("#samples tbody tr").first).to_have_attribute("data-id", second[0])
    assert row_ids(page) == second
    page.click("#newer")
    expect(page.locator("#samples tbody tr").first).to_have_attribute("data-id", newest[0])
    assert row_ids(page) == newest
    page.go_back()
    expect(page.locator("#samples tbody tr").first).to_have_attribute("data-id", second[0])
    page.go_back()
    expect(page.locator("#samples tbody tr").first).to_have_attribute("data-id", newest[0])
    expect(page.locator("#newer")).to_be_hidden()

    # A search, in the API's syntax: a word, and an excluded one.
    page.fill("#filter-q", "restart -router")
    page.press("#filter-q", "Enter")
    expect(page).to_have_url(f"{dashboard.url}/datasets/{dataset['id']}?q=restart+-router")
    expect(page.locator("#samples tbody tr")).to_have_count(30)
    found = samples(dashboard, dataset["id"], q="restart -router", limit=50)
    assert row_ids(page) == [s["id"] for s in found]
    assert {s["content"]["answer"] for s in found} == {"Restart the app."}

    # A filter, with the search kept; its choices come from the dataset's counts.
    expect(page.locator("#filter-topic option[value=shipping]")).to_have_text("shipping (40)")
    page.select_option("#filter-topic", "shipping")
    expect(page).to_have_url(
        f"{dashboard.url}/datasets/{dataset['id']}?q=restart+-router&topic=shipping"
    )
    both = samples(dashboard, dataset["id"], q="restart -router", topic="shipping", limit=50)
    assert len(both) == 10
    expect(page.locator("#samples tbody tr")).to_have_count(10)
    assert row_ids(page) == [s["id"] for s in both]
    expect(page.locator("#samples tbody tr td[data-label=Topic]")).to_have_text(["shipping"] * 10)

    # A typed-in filter (a batch no sample came from) matches nothing.
    page.fill("#filter-batch_id", "batch_nothing")
    page.press("#filter-batch_id", "Enter")
    expect(page.locator("#empty")).to_be_visible()

    # Back: the search and the filter again; a link to the view reopens it as it was.
    page.go_back()
    expect(page.locator("#samples tbody tr")).to_have_count(10)
    expect(page.locator("#filter-topic")).to_have_value("shipping")
    page.go_back()
    expect(page.locator("#samples tbody tr")).to_have_count(30)
    expect(page.locator("#filter-topic")).to_have_value("")
    expect(page.locator("#filter-q")).to_have_value("restart -router")
    reopened = page.context.new_page()
    reopened.goto(f"{dashboard.url}/datasets/{dataset['id']}?q=restart+-router&topic=shipping")
    expect(reopened.locator("#samples tbody tr")).to_have_count(10)
    expect(reopened.locator("#filter-q")).to_have_value("restart -router")
    expect(reopened.locator("#filter-topic")).to_have_value("shipping")


def test_a_refused_search_and_a_missing_dataset_say_why(
    browse: Any, dashboard: Dashboard, dataset: dict[str, Any]
):
    page = signed_in(
        browse, dashboard, "viewer", f"/datasets/{dataset['id']}", allow=(BAD_REQUEST, NOT_FOUND)
    )
    expect(page.locator("#samples tbody tr")).to_have_count(50)

    page.fill("#filter-q", "-router")  # exclusions only: the API refuses it
    page.press("#filter-q", "Enter")
    expect(page.locator("#notice")).to_contain_text("(q)")
    expect(page.locator("#samples tbody tr")).to_have_count(0)
    page.fill("#filter-q", "router")
    page.press("#filter-q", "Enter")
    expect(page.locator("#samples tbody tr")).to_have_count(30)
    expect(page.locator("#notice")).to_be_hidden()

    page.goto(f"{dashboard.url}/datasets/ds_missing")
    expect(page.locator("#notice")).to_contain_text("No such dataset: ds_missing")
    expect(page.locator("#view")).to_be_hidden()


def test_the_table_is_walked_from_the_keyboard(
    browse: Any, dashboard: Dashboard, dataset: dict[str, Any]
):
    page = signed_in(browse, dashboard, "viewer", f"/datasets/{dataset['id']}")
    expect(page.locator("#samples tbody tr")).to_have_count(50)
    ids = row_ids(page)

    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("k")
    expect(page.locator("#samples tbody tr.selected")).to_have_attribute("data-id", ids[1])
    page.keyboard.press("Enter")

    expect(page).to_have_url(f"{dashboard.url}/datasets/{dataset['id']}?sample={ids[1]}")
    expect(page.locator("#sample-title")).to_contain_text(ids[1])
    # With a sample open, moving opens the next one in its place.
    page.keyboard.press("j")
    expect(page.locator("#sample-title")).to_contain_text(ids[2])
    expect(page).to_have_url(f"{dashboard.url}/datasets/{dataset['id']}?sample={ids[2]}")
    page.keyboard.press("Escape")
    expect(page.locator("#sample")).to_be_hidden()
    expect(page).to_have_url(f"{dashboard.url}/datasets/{dataset['id']}")
    page.go_back()  # back to the open sample
    expect(page.locator("#sample-title")).to_contain_text(ids[2])
    expect(page.locator("#samples tbody tr[aria-current=true]")).to_have_attribute(
        "data-id", ids[2]
    )
    # A click anywhere on a row opens its sample too.
    page.locator(f"#samples tbody tr[data-id={ids[5]}] td[data-label=Topic]").click()
    expect(page.locator("#sample-title")).to_contain_text(ids[5])


def test_a_reviewer_edits_a_sample_and_restores_its_first_version(
    browse: Any, dashboard: Dashboard, dataset: dict[str, Any]
):
    target = samples(dashboard, dataset["id"], topic="returns", limit=1)[0]
    path = f"/datasets/{dataset['id']}?sample={target['id']}"
    page = signed_in(browse, dashboard, "reviewer", path, allow=(BAD_REQUEST,))
    sent: list[dict[str, str]] = []
    page.on("request", lambda r: sent.append(r.headers) if r.method == "PATCH" else None)
    expect(page.locator("#sample-body")).to_contain_text(target["content"]["question"])
    expect(page.locator("#sample-body")).to_contain_text("returns")
    expect(page.locator("#history .version")).to_have_count(1)

    page.click("#edit")
    editor = page.locator("#edit-json")
    expect(editor).to_be_focused()
    assert json.loads(editor.input_value()) == {
        "content": target["content"],
        "topic": "returns",
        "sample_type": target["sample_type"],
        "metadata": target["metadata"],
    }

    # Not JSON: said so, and nothing is sent.
    editor.fill('{"content": {"question": "unfinished"')
    page.click("#save")
    expect(page.locator("#edit-error")).to_contain_text("Invalid JSON")
    assert sent == []

    # The API refuses it (an empty content): its message and the parameter at fault.
    editor.fill(json.dumps({"content": {}}))
    page.click("#save")
    expect(page.locator("#edit-error")).to_contain_text("must be a non-empty JSON object")
    expect(page.locator("#edit-error")).to_contain_text("(content)")

    edited = {**target["content"], "answer": "Open the returns page, then choose a label."}
    editor.fill(json.dumps({"content": edited, "topic": "returns-v2"}))
    page.click("#save")
    expect(page.locator("#editor")).to_be_hidden()
    expect(page.locator("#sample-body")).to_contain_text("choose a label")
    expect(page.locator("#history .version")).to_have_count(2)
    latest = page.locator("#history .version").first
    expect(latest).to_contain_text("v2 edited content, topic")
    expect(latest).to_contain_text(f"by {dashboard.keys['reviewer']['id']}")
    # The change went with the session cookie and the page's CSRF token.
    assert sent
    assert all(h.get("x-csrf-token") for h in sent)
    stored = dashboard.http.get(f"/api/datasets/{dataset['id']}/samples/{target['id']}").json()
    assert stored["content"] == edited
    assert stored["topic"] == "returns-v2"
    row = page.locator(f"#samples tbody tr[data-id={target['id']}]")
    expect(row.locator("td[data-label=Topic]")).to_have_text("returns-v2")

    page.get_by_role("button", name="Restore version 1").click()
    expect(page.locator("#history .version")).to_have_count(3)
    expect(page.locator("#history .version").first).to_contain_text("v3 restored version 1")
    expect(page.locator("#sample-body")).not_to_contain_text("choose a label")
    restored = dashboard.http.get(f"/api/datasets/{dataset['id']}/samples/{target['id']}").json()
    assert restored["content"] == target["content"]
    assert restored["topic"] == "returns"
    history = dashboard.http.get(
        f"/api/datasets/{dataset['id']}/samples/{target['id']}/history"
    ).json()["data"]
    reviewer = dashboard.keys["reviewer"]["id"]
    assert [(v["action"], v["changed_by"]) for v in history] == [
        ("created", None),
        ("edited", reviewer),
        ("restored", reviewer),
    ]


def test_a_restore_the_api_refuses_says_why_beside_the_sample(browse: Any, dashboard: Dashboard):
    created = dashboard.http.post("/api/datasets", json={"name": "restore-refused"})
    assert created.status_code == 200, created.text
    dataset = created.json()
    api = f"/api/datasets/{dataset['id']}/samples"
    first, second = (
        dashboard.http.post(api, json={"content": {"question": q, "answer": "yes"}}).json()
        for q in ("one?", "two?")
    )
    moved = {"content": {"question": "moved away", "answer": "elsewhere"}}
    assert dashboard.http.patch(f"{api}/{first['id']}", json=moved).status_code == 200
    taken = {"content": first["content"]}  # the second now holds the first's old content
    assert dashboard.http.patch(f"{api}/{second['id']}", json=taken).status_code == 200
    path = f"/datasets/{dataset['id']}?sample={first['id']}"
    page = signed_in(browse, dashboard, "reviewer", path, allow=(CONFLICT,))

    page.get_by_role("button", name="Restore version 1").click()

    expect(page.locator("#sample-error")).to_contain_text(f"live sample {second['id']}")
    expect(page.locator("#sample-error")).to_contain_text("(content)")
    expect(page.locator("#history .version")).to_have_count(2)
    assert dashboard.http.get(f"{api}/{first['id']}").json()["content"] == moved["content"]


def test_a_viewer_is_shown_no_edit_control(
    browse: Any, dashboard: Dashboard, dataset: dict[str, Any]
):
    target = samples(dashboard, dataset["id"], topic="shipping", limit=1)[0]
    edited = dashboard.http.patch(
        f"/api/datasets/{dataset['id']}/samples/{target['id']}", json={"metadata": {"n": -1}}
    )
    assert edited.status_code == 200, edited.text  # a version a reviewer could restore
    page = signed_in(
        browse, dashboard, "viewer", f"/datasets/{dataset['id']}?sample={target['id']}"
    )
    expect(page.locator("#history .version").first).to_contain_text("edited metadata")
    expect(page.locator("#history .restore")).not_to_have_count(0)  # in the page, not shown

    expect(page.get_by_role("button", name=re.compile("Restore"))).to_have_count(0)
    expect(page.get_by_role("button", name="Edit")).to_have_count(0)
    expect(page.locator("#editor")).to_be_hidden()
    expect(page.get_by_role("button", name="Close")).to_be_visible()


def test_a_sample_holding_markup_shows_it_as_text_and_runs_nothing(
    browse: Any, dashboard: Dashboard, dataset: dict[str, Any]
):
    marked = samples(dashboard, dataset["id"], q='"window.__xss"', limit=5)
    assert len(marked) == 1
    page = signed_in(browse, dashboard, "viewer", f"/datasets/{dataset['id']}")
    row = page.locator(f"#samples tbody tr[data-id={marked[0]['id']}]")
    expect(row).to_contain_text("<script>window.__xss = 1</script>Is this <b>bold</b>?")
    row.get_by_role("link").click()

    body = page.locator("#sample-body")
    expect(body).to_contain_text('<img src=\\"x\\" onerror=\\"window.__xss = 2\\"> & \\"quotes\\"')
    expect(body).to_contain_text("<script>window.__xss = 1</script>")
    assert page.locator("#main script, #main img, #main b").count() == 0
    assert page.evaluate("window.__xss") is None


def test_a_sample_is_shown_by_its_schemas_display_fields_as_text(
    browse: Any, dashboard: Dashboard, dataset: dict[str, Any]
):
    """The one renderer every sample page uses (`static/js/sample-view.js`), given a
    schema's display: fields in order, with their labels and kinds, markup kept as text."""
    page = signed_in(browse, dashboard, "viewer", f"/datasets/{dataset['id']}")
    expect(page.locator("#samples tbody tr")).to_have_count(50)
    shown = page.evaluate(
        """async () => {
            const { renderSample } = await import('/static/js/sample-view.js');
            const sample = {
                id: 'smp_x', topic: 't', sample_type: 'chatty', status: 'accepted',
                created_at: 1, metadata: null, provenance: null,
                content: {
                    reply: {text: '<img src=x onerror="window.__xss = 3">'},
                    messages: [
                        {role: 'user', content: 'hi <b>'},
                        {role: 'assistant', content: 'hello'},
                    ],
                    code: 'print(1)',
                },
            };
            const display = {fields: [
                {field: 'messages', kind: 'chat', label: 'Conversation'},
                {field: 'reply.text', kind: 'markdown'},
                {field: 'code', kind: 'code'},
                {field: 'missing', kind: 'text'},
            ], css: 'h4 { text-transform: uppercase; }'};
            const card = renderSample(sample, display);
            document.querySelector('#main').append(card);
            return {
                labels: [...card.querySelectorAll('.field h4')].map((e) => e.textContent),
                roles: [...card.querySelectorAll('.message')].map((e) => e.dataset.role),
                markdown: card.querySelector('.kind-markdown .text').textContent,
                code: card.querySelector('.kind-code code').textContent,
                missing: card.querySelector('[data-field=missing]').textContent,
                elements: card.querySelectorAll('img, b, script').length,
                styled: getComputedStyle(card.querySelector('.field h4')).textTransform,
                outside: getComputedStyle(
                    document.querySelector('#main').appendChild(document.createElement('h4'))
                ).textTransform,
            };
        }"""
    )

    assert shown["labels"] == ["Conversation", "reply.text", "code", "missing"]
    assert shown["roles"] == ["user", "assistant"]
    assert shown["markdown"] == '<img src=x onerror="window.__xss = 3">'
    assert shown["code"] == "print(1)"
    assert "not in this sample" in shown["missing"]
    assert shown["elements"] == 0
    assert shown["styled"] == "uppercase"  # the schema's CSS, in its card only
    assert shown["outside"] == "none"
    assert page.evaluate("window.__xss") is None


def test_a_sample_follows_the_schema_named_by_its_type_and_the_datasets_default(
    browse: Any, dashboard: Dashboard
):
    """Through the registry: a schema named like the sample's type shows its display fields;
    a sample of another type follows the dataset's default schema."""
    for name, label in (("faq", "The question"), ("fallback", "Asked")):
        schema = {
            "name": name,
            "display": {"fields": [{"field": "question", "label": label}]},
        }
        created = dashboard.http.post("/api/task-schemas", json=schema)
        assert created.status_code == 200, created.text
    made = dashboard.http.post(
        "/api/datasets", json={"name": "schema-shown", "task_schema": "fallback"}
    )
    assert made.status_code == 200, made.text
    dataset_id = made.json()["id"]
    ids = {}
    for sample_type in ("faq", "other"):
        added = dashboard.http.post(
            f"/api/datasets/{dataset_id}/samples",
            json={"content": {"question": f"a {sample_type}?", "x": 1}, "sample_type": sample_type},
        )
        assert added.status_code == 200, added.text
        ids[sample_type] = added.json()["id"]

    for sample_type, label in (("faq", "The question"), ("other", "Asked")):
        page = signed_in(
            browse, dashboard, "viewer", f"/datasets/{dataset_id}?sample={ids[sample_type]}"
        )
        card = page.locator("#sample-body .sample-card")
        expect(card).to_have_attribute("data-schema", "yes")
        expect(card.locator(".field h4")).to_have_text([label])


def test_the_review_state_filter_for_a_member_and_refused_to_a_blind_reviewer(
    browse: Any, dashboard: Dashboard, dataset: dict[str, Any]
):
    """Samples by review state (the review's filter): none is reviewed yet, so `unreviewed`
    is every sample and `approved` none; on a blind review a reviewer is told why not."""
    page = signed_in(browse, dashboard, "member", f"/datasets/{dataset['id']}")
    page.select_option("#filter-review_state", "approved")
    expect(page).to_have_url(f"{dashboard.url}/datasets/{dataset['id']}?review_state=approved")
    expect(page.locator("#empty")).to_be_visible()
    page.select_option("#filter-review_state", "unreviewed")
    expect(page.locator("#samples tbody tr")).to_have_count(50)

    blind = signed_in(
        browse,
        dashboard,
        "reviewer",
        f"/datasets/{dataset['id']}?review_state=unreviewed",
        allow=("status of 403",),
    )
    expect(blind.locator("#notice")).to_contain_text("blind")
