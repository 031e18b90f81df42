"""The review page in a real browser (Debian's Chromium, headless) against `datamill serve`
with keys: a reviewer reviews samples from the keyboard only (approve with a rating and a
label, reject with a reason picked by number, edit then approve), and the API holds exactly
those reviews, states and the edit's version; a skip gives the reservation back; an API
refusal shows its message and parameter and keeps what was typed; undo shows the last review
again and re-submitting replaces it; shortcuts never fire while typing; a viewer is shown the
denied page.

The same guards as every browser test hold: no request to another host, no error in a
page's console but those a test expects."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import Browsing, Dashboard, serve_dashboard
from tests.web.test_signin_browser import key_of, sign_in

pytestmark = pytest.mark.slow

BAD_REQUEST = "400 (Bad Request)"
FORBIDDEN = "403 (Forbidden)"
SCHEMA = {
    "name": "ticket",
    "display": {
        "fields": [
            {"field": "question", "label": "Question"},
            {"field": "answer", "label": "Answer", "kind": "markdown"},
        ]
    },
    "review": {
        "questions": [
            {
                "name": "decision",
                "kind": "decision",
                "prompt": "Keep it?",
                "reasons": ["wrong answer", "off topic"],
            },
            {"name": "rating", "kind": "rating", "prompt": "Quality", "required": False},
            {
                "name": "tone",
                "kind": "labels",
                "options": ["formal", "casual", "rude"],
                "required": False,
            },
            {"name": "comment", "kind": "text", "prompt": "Comment", "required": False},
        ],
        "editable": True,
    },
}


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """A server with a member key (the helpers'), a reviewer key and a viewer key, and the
    `ticket` task schema."""
    for running in serve_dashboard(tmp_path_factory, roles=("member", "reviewer", "viewer")):
        created = running.http.post("/api/task-schemas", json=SCHEMA)
        assert created.status_code == 200, created.text
        yield running


def make_dataset(dashboard: Dashboard, name: str, count: int) -> str:
    """A dataset of ``count`` `ticket` samples, oldest first as `review/next` offers them."""
    made = dashboard.http.post("/api/datasets", json={"name": name, "task_schema": "ticket"})
    assert made.status_code == 200, made.text
    dataset_id: str = made.json()["id"]
    lines = [
        {
            "content": {
                "question": f"How do I reset device {n}?",
                "answer": f"Hold **power** {n}s.",
            },
            "sample_type": "ticket",
        }
        for n in range(count)
    ]
    data = "\n".join(json.dumps(line) for line in lines).encode()
    imported = dashboard.http.post(
        f"/api/datasets/{dataset_id}/import", files={"file": ("s.jsonl", data)}
    )
    assert imported.status_code == 200, imported.text
    return dataset_id


def reviewer_page(browse: Any, dashboard: Dashboard, dataset_id: str, **options: Any) -> Page:
    browsing: Browsing = browse(**options)
    page = sign_in(browsing, key_of(dashboard, "reviewer"), f"/datasets/{dataset_id}/review")
    expect(page.locator("#sample-body .sample-card")).to_be_visible()
    return page


def shown_id(page: Page) -> str:
    card = page.locator("#sample-body .sample-card")
    value: str = card.get_attribute("data-sample-id") or ""
    return value


def reviews_of(dashboard: Dashboard, dataset_id: str, sample_id: str) -> dict[str, Any]:
    answer = dashboard.http.get(f"/api/datasets/{dataset_id}/samples/{sample_id}/reviews")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def next_shown(page: Page, before: str) -> str:
    expect(page.locator("#sample-body .sample-card")).not_to_have_attribute(
        "data-sample-id", before
    )
    return shown_id(page)


def test_a_reviewer_reviews_three_samples_from_the_keyboard_only(browse: Any, dashboard: Dashboard):
    dataset_id = make_dataset(dashboard, "keyboard", 8)
    page = reviewer_page(browse, dashboard, dataset_id)
    reviewer = dashboard.keys["reviewer"]["id"]
    expect(page.locator("#expiry")).to_contain_text("Reserved until")
    expect(page.locator("#progress")).to_contain_text("8")
    card = page.locator("#sample-body .sample-card")
    expect(card).to_have_attribute("data-schema", "yes")
    expect(card.locator(".field h4")).to_have_text(["Question", "Answer"])

    # 1: a rating, a label (the labels question focused, then its number), approve.
    first = shown_id(page)
    page.keyboard.press("4")
    page.keyboard.press("l")
    expect(page.locator("fieldset.labels")).to_be_focused()
    outline = page.locator("fieldset.labels").evaluate(
        "node => getComputedStyle(node).outlineStyle"
    )
    assert outline == "solid"  # the focus shows
    page.keyboard.press("2")  # casual: while the labels are focused, numbers pick labels
    page.keyboard.press("Escape")
    page.keyboard.press("a")

    # 2: reject, the second reason by its number.
    second = next_shown(page, first)
    expect(page.locator("#progress div", has_text="Done").locator("dd")).to_contain_text("1")
    page.keyboard.press("r")
    expect(page.locator("#reason")).to_be_focused()
    page.keyboard.press("2")

    # 3: edit the content, Ctrl+Enter approves with the edit.
    third = next_shown(page, second)
    page.keyboard.press("e")
    editor = page.locator("#edit-json")
    expect(editor).to_be_focused()
    edited = {"question": f"How do I reset device {third}?", "answer": "Hold power for 10 s."}
    editor.fill(json.dumps(edited))
    page.keyboard.press("Control+Enter")
    fourth = next_shown(page, third)
    assert len({first, second, third, fourth}) == 4
    expect(page.locator("#progress div", has_text="Done").locator("dd")).to_contain_text("3")

    # Two samples held locally: the next five were reserved before they ran out.
    deadline = time.monotonic() + 30
    while True:
        queue = dashboard.http.get(f"/api/datasets/{dataset_id}/review/queue").json()["data"]
        held = [
            i["sample_id"] for i in queue if any(c["reviewer"] == reviewer for c in i["claims"])
        ]
        if len(held) == 5:
            break
        assert time.monotonic() < deadline, held
        time.sleep(0.05)
    assert fourth in held

    one = reviews_of(dashboard, dataset_id, first)
    assert [r["answers"] for r in one["data"]] == [
        {"decision": "approve", "rating": 4, "tone": "casual"}
    ]
    assert one["data"][0]["reviewer"] == reviewer
    two = reviews_of(dashboard, dataset_id, second)
    assert [(r["decision"], r["reason"]) for r in two["data"]] == [("reject", "off topic")]
    three = reviews_of(dashboard, dataset_id, third)
    assert [(r["decision"], r["edited"]) for r in three["data"]] == [("approve", True)]
    states = [reviews_of(dashboard, dataset_id, s)["review_state"] for s in (first, second, third)]
    assert states == ["approved", "rejected", "edited"]
    assert reviews_of(dashboard, dataset_id, fourth)["data"] == []
    sample = dashboard.http.get(f"/api/datasets/{dataset_id}/samples/{third}").json()
    assert sample["content"] == edited
    history = dashboard.http.get(f"/api/datasets/{dataset_id}/samples/{third}/history").json()
    latest = history["data"][-1]
    assert (latest["version"], latest["action"], latest["changed_by"]) == (2, "edited", reviewer)


def test_a_skip_gives_the_sample_back_and_undo_replaces_the_last_review(
    browse: Any, dashboard: Dashboard
):
    dataset_id = make_dataset(dashboard, "skips", 4)
    page = reviewer_page(browse, dashboard, dataset_id)
    reviewer = dashboard.keys["reviewer"]["id"]
    skipped = shown_id(page)

    page.keyboard.press("s")
    after_skip = next_shown(page, skipped)
    queue = dashboard.http.get(f"/api/datasets/{dataset_id}/review/queue").json()["data"]
    claims = {item["sample_id"]: item["claims"] for item in queue}
    assert claims[skipped] == []  # released
    assert [c["reviewer"] for c in claims[after_skip]] == [reviewer]

    page.keyboard.press("a")
    following = next_shown(page, after_skip)
    page.keyboard.press("u")  # the approval shows again; rejecting replaces it
    expect(page.locator("#sample-body .sample-card")).to_have_attribute(
        "data-sample-id", after_skip
    )
    page.keyboard.press("r")
    page.keyboard.type("too long")  # typed: the r of "reason" and the digits stay text
    page.keyboard.press("Enter")
    expect(page.locator("#sample-body .sample-card")).to_have_attribute("data-sample-id", following)
    current = reviews_of(dashboard, dataset_id, after_skip)["data"]
    assert [(r["decision"], r["reason"]) for r in current] == [("reject", "too long")]
    history = dashboard.http.get(
        f"/api/datasets/{dataset_id}/samples/{after_skip}/review-history"
    ).json()["data"]
    assert [(e["action"], e["review"]["decision"]) for e in history] == [
        ("submitted", "approve"),
        ("replaced", "reject"),
    ]


def test_shortcuts_do_not_fire_while_typing_and_a_refusal_keeps_what_was_typed(
    browse: Any, dashboard: Dashboard
):
    dataset_id = make_dataset(dashboard, "typing", 3)
    page = reviewer_page(browse, dashboard, dataset_id, allow=(BAD_REQUEST,))
    first = shown_id(page)

    # A comment holding every shortcut key: none fires.
    page.keyboard.press("c")
    comment = page.locator("input.text-answer")
    expect(comment).to_be_focused()
    page.keyboard.type("a r s u e l 3 ?")
    expect(comment).to_have_value("a r s u e l 3 ?")
    expect(page.locator("#keys")).to_be_hidden()
    expect(page.locator("#editor")).to_be_hidden()
    expect(page.locator("[aria-label='Rating 3']")).to_have_attribute("aria-pressed", "false")
    assert shown_id(page) == first
    assert reviews_of(dashboard, dataset_id, first)["data"] == []

    # Content the schema's edit refuses: the API's message and parameter, the text kept.
    page.keyboard.press("Escape")
    page.keyboard.press("e")
    page.locator("#edit-json").fill('{"question": ""}')
    page.keyboard.press("Escape")
    expect(page.locator("#editor")).to_be_visible()
    page.keyboard.press("e")  # back into the editor, the text as it was left
    expect(page.locator("#edit-json")).to_be_focused()
    expect(page.locator("#edit-json")).to_have_value('{"question": ""}')
    page.locator("#edit-json").fill("[1, 2]")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#error")).to_contain_text("(content)")
    expect(page.locator("#edit-json")).to_have_value("[1, 2]")
    expect(comment).to_have_value("a r s u e l 3 ?")
    assert shown_id(page) == first

    # The keys table, opened and closed from the keyboard.
    page.locator("#edit-json").fill(json.dumps({"question": "fixed?", "answer": "yes"}))
    page.keyboard.press("Escape")
    page.keyboard.press("?")
    expect(page.locator("#keys")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#keys")).to_be_hidden()
    page.keyboard.press("a")
    next_shown(page, first)
    review = reviews_of(dashboard, dataset_id, first)["data"][0]
    assert review["answers"]["comment"] == "a r s u e l 3 ?"
    assert review["edited"] is True


def test_a_viewer_gets_the_denied_page(browse: Any, dashboard: Dashboard):
    dataset_id = make_dataset(dashboard, "denied", 1)
    browsing: Browsing = browse(allow=(FORBIDDEN,))
    page = browsing.open(f"/datasets/{dataset_id}/review")
    page.get_by_label("API key").fill(key_of(dashboard, "viewer"))
    page.get_by_role("button", name="Sign in").click()

    expect(page.locator("main")).to_contain_text("needs the reviewer role")
    expect(page.locator("#review")).to_have_count(0)
    queue = dashboard.http.get(f"/api/datasets/{dataset_id}/review/queue").json()["data"]
    assert queue[0]["claims"] == []  # nothing reserved


def test_the_dataset_page_links_to_the_review_for_reviewers_only(browse: Any, dashboard: Dashboard):
    dataset_id = make_dataset(dashboard, "linked", 1)
    browsing: Browsing = browse()
    page = sign_in(browsing, key_of(dashboard, "reviewer"), f"/datasets/{dataset_id}")
    link = page.locator("#review-link")
    expect(link).to_be_visible()
    link.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{dashboard.url}/datasets/{dataset_id}/review")
    expect(page.locator("#sample-body .sample-card")).to_be_visible()


def test_a_skipped_sample_is_not_offered_again_and_the_end_is_said(
    browse: Any, dashboard: Dashboard
):
    dataset_id = make_dataset(dashboard, "the-end", 2)
    page = reviewer_page(browse, dashboard, dataset_id)
    skipped = shown_id(page)

    page.keyboard.press("s")
    other = next_shown(page, skipped)
    page.keyboard.press("a")

    expect(page.locator("#empty")).to_have_text("Nothing left for you to review in this dataset.")
    expect(page.locator("#view")).to_be_hidden()
    assert reviews_of(dashboard, dataset_id, other)["data"][0]["decision"] == "approve"
    assert reviews_of(dashboard, dataset_id, skipped)["data"] == []
    # Offered again by the last ask, the skipped sample was given back at once.
    deadline = time.monotonic() + 30
    while True:
        queue = dashboard.http.get(f"/api/datasets/{dataset_id}/review/queue").json()["data"]
        claims = {item["sample_id"]: item["claims"] for item in queue}
        if claims[skipped] == []:
            break
        assert time.monotonic() < deadline, claims
        time.sleep(0.05)
