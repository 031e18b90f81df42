"""The dashboard in a real browser (Debian's Chromium, headless) against `datamill serve` and
the mock provider: upload, watch a batch finish live, read its errors, cancel one, see a
deployment's circuit open and close, and screenshot every page at 1280 and 390 px.

Every test also fails on a request to any other host and on an error in a page's console
(the fixtures watch both)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from datamill.web.pages import PAGES
from tests.helpers import jsonl
from tests.web.conftest import WIDTHS, Dashboard, generation_spec, requests, screenshot

pytestmark = pytest.mark.slow

# The page's document must be the one first loaded: updates come without a reload.
MARK = "window.__firstDocument = true"
SAME_DOCUMENT = "window.__firstDocument === true"


def watch_progress(page: Page, until: str, timeout: float = 60) -> list[dict[str, Any]]:
    """Read the batch page's progress and figures every 50 ms until its status is ``until``."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        state = page.evaluate(
            """() => ({
                status: document.querySelector('#status [data-status]')?.dataset.status,
                done: Number(document.querySelector('#progress [role=progressbar]')
                    ?.getAttribute('aria-valuenow')),
                rate: [...document.querySelectorAll('#counts div')]
                    .find((d) => d.querySelector('dt').textContent === 'Requests/s')
                    ?.querySelector('dd').textContent,
            })"""
        )
        seen.append(state)
        if state["status"] == until:
            return seen
        assert time.monotonic() < deadline, f"no {until} after {timeout} s: {seen[-5:]}"
        page.wait_for_timeout(50)


def test_an_uploaded_file_becomes_a_batch_that_finishes_live(
    browse: Any, dashboard: Dashboard, mock: Any, tmp_path: Path
):
    mock.control(latency_ms=40)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(
        jsonl([*requests(2), "not json", {**requests(1, prefix="x")[0], "method": "GET"}])
    )
    good = tmp_path / "requests.jsonl"
    good.write_bytes(jsonl(requests(150, rejected={7, 70, 140})))
    page = browse().open("/upload")
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))

    # A bad file: its errors by line, before anything is stored; no batch can be created.
    page.set_input_files("#file", str(bad))
    errors = page.locator("#validation .line-errors tbody tr")
    expect(errors).to_have_count(2)
    assert [row.locator("td").nth(0).inner_text() for row in errors.all()] == ["3", "4"]
    expect(errors.nth(0)).to_contain_text("invalid_json_line")
    expect(errors.nth(1)).to_contain_text("invalid_method")
    expect(page.locator("#validation")).to_contain_text("2 errors in 4 lines")
    expect(page.locator("#create")).to_be_disabled()
    assert dashboard.http.get("/v1/files").json()["data"] == []  # checking stored nothing

    page.set_input_files("#file", str(good))
    expect(page.locator("#file-name")).to_have_text("requests.jsonl")
    expect(page.locator("#validation")).to_contain_text("150 requests, no errors")
    expect(page.locator("#create")).to_be_enabled()
    page.click("#create")
    page.wait_for_url("**/batches/batch_*")
    page.evaluate(MARK)
    seen = watch_progress(page, "completed")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")

    batch_id = page.url.rsplit("/", 1)[1]
    finished = dashboard.batch(batch_id)
    assert finished["request_counts"] == {"total": 150, "completed": 147, "failed": 3}
    assert page.evaluate(SAME_DOCUMENT)
    # Read, read again as the event stream opened, then pushed by the stream: not polled.
    assert sum(url.endswith(f"/v1/batches/{batch_id}") for url in fetched) == 2, fetched
    assert any(f"/api/events?topic=batch&batch_id={batch_id}" in url for url in fetched)
    moving = {state["done"] for state in seen if 0 < state["done"] < 150}
    assert len(moving) >= 2, seen  # the bar moved while the batch ran, not only at the end
    assert any(state["rate"] not in (None, "—") for state in seen if state["done"] < 150)
    expect(page.locator("#progress [role=progressbar]")).to_have_attribute("aria-valuenow", "150")
    cost = page.locator("#counts div", has=page.locator("dt", has_text="Cost")).locator("dd")
    assert float(cost.inner_text().lstrip("$")) == pytest.approx(
        finished["datamill"]["cost_usd"], rel=0.05
    )
    assert finished["datamill"]["cost_usd"] > 0
    expect(page.locator("#cancel")).to_be_hidden()

    # Its errors, grouped by category, with examples.
    group = page.locator(".error-group[data-code=bad_request]")
    expect(group).to_contain_text("3 requests")
    expect(group.locator(".examples li")).to_have_count(3)
    expect(group.locator(".examples")).to_contain_text("r7")
    group.locator("summary").focus()
    page.keyboard.press("Enter")  # closes it: the groups work from the keyboard
    expect(group.locator(".examples")).to_be_hidden()
    page.keyboard.press("Enter")
    expect(group.locator(".examples")).to_be_visible()

    # Its files: output and errors, as the API serves them.
    with page.expect_download() as download:
        page.get_by_role("link", name="Errors").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert len(lines) == 3
    output = page.get_by_role("link", name="Output")
    expect(output).to_have_attribute("href", f"/v1/files/{finished['output_file_id']}/content")


def test_the_batch_list_shows_new_batches_and_their_progress_live(
    browse: Any, dashboard: Dashboard, mock: Any
):
    mock.control(latency_ms=20)
    page = browse().open("/")
    page.evaluate(MARK)
    expect(page.locator("#summary")).to_contain_text("batches shown")

    batch = dashboard.submit(requests(60), description="from the API")
    row = page.locator(f'tr[data-id="{batch["id"]}"]')
    expect(row).to_contain_text("from the API")
    expect(row).to_have_attribute("data-status", "completed", timeout=30_000)
    expect(row.locator("[role=progressbar]")).to_have_attribute("aria-valuenow", "60")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    assert page.evaluate(SAME_DOCUMENT)

    # Filters narrow the list without asking the server again.
    page.select_option("#filter-status", "failed")
    expect(row).to_have_count(0)
    page.select_option("#filter-status", "")
    page.fill("#filter-q", batch["id"][-8:])
    expect(page.locator("#batches tbody tr")).to_have_count(1)
    assert "q=" in page.url  # a filtered view can be bookmarked


def test_a_running_batch_is_cancelled_from_the_keyboard(
    browse: Any, dashboard: Dashboard, mock: Any
):
    mock.control(latency_ms=400)
    batch = dashboard.submit(requests(40), description="to cancel")
    page = browse().open(f"/batches/{batch['id']}")
    page.evaluate(MARK)
    expect(page.locator("#status [data-status]")).to_have_attribute("data-status", "in_progress")

    page.focus("#cancel")
    page.keyboard.press("Enter")
    dialog = page.locator("#confirm-cancel")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Keep running")).to_be_focused()  # the safe one
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Cancel batch")).to_be_focused()
    page.keyboard.press("Enter")

    expect(page.locator("#status [data-status]")).to_have_attribute(
        "data-status", "cancelled", timeout=30_000
    )
    expect(page.locator("#cancel")).to_be_hidden()
    cancelled = dashboard.batch(batch["id"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["request_counts"]["completed"] < 40
    assert page.evaluate(SAME_DOCUMENT)


def test_a_batch_that_finishes_before_its_page_listens_is_shown_finished(
    browse: Any, dashboard: Dashboard, mock: Any
):
    """A batch page reads the batch, then opens the event stream: a batch that finishes in
    between sends its last event to nobody. The stream is held here until the batch has
    finished, as a loaded machine may hold it; the page must still come to show it."""
    mock.control(latency_ms=400)
    batch = dashboard.submit(requests(40), description="finishes unseen")  # seconds long
    dashboard.wait_for(batch["id"], "in_progress")
    browsing = browse()
    held: list[str] = []  # the batch's status when the page asked for its stream

    def hold_until_finished(route: Any) -> None:
        held.append(dashboard.batch(batch["id"])["status"])
        dashboard.wait_for(batch["id"], "completed")
        route.continue_()

    browsing.context.route("**/api/events?*", hold_until_finished)
    page = browsing.open(f"/batches/{batch['id']}")
    page.evaluate(MARK)

    expect(page.locator("#status [data-status]")).to_have_attribute(
        "data-status", "completed", timeout=30_000
    )
    # The page had read the batch running (it reads before it listens), and its stream
    # started only once the batch had finished.
    assert held == ["in_progress"]
    assert page.evaluate(SAME_DOCUMENT)


def test_an_older_picture_of_a_batch_never_replaces_a_newer_one(browse: Any):
    """A page's read of a batch can answer after a later event of it (the read on the
    stream's opening): the pages keep the newer picture (`stale` in batch-view.js)."""
    page = browse().open("/")
    verdicts = page.evaluate(
        """async () => {
            const { stale } = await import("/static/js/batch-view.js");
            const at = (status, completed, failed = 0) =>
                ({ status, request_counts: { total: 10, completed, failed } });
            return [
                stale(undefined, at("in_progress", 1)),
                stale(at("completed", 10), at("in_progress", 9)),
                stale(at("finalizing", 10), at("in_progress", 10)),
                stale(at("in_progress", 5), at("in_progress", 4, 0)),
                stale(at("in_progress", 5), at("in_progress", 4, 2)),
                stale(at("in_progress", 5), at("finalizing", 10)),
                stale(at("cancelling", 3), at("cancelled", 3)),
                stale(at("completed", 10), at("completed", 10)),
            ];
        }"""
    )
    assert verdicts == [False, True, True, True, False, False, False, False]


def test_the_deployments_page_shows_a_circuit_open_and_close(
    browse: Any, dashboard: Dashboard, mock: Any
):
    page = browse().open("/deployments")
    page.evaluate(MARK)
    card = page.locator('.deployment[data-name="mock"]')
    expect(card).to_contain_text(dashboard.mock.base_url)

    mock.control(force_status=500)
    batch = dashboard.submit(requests(20), description="during an outage")
    expect(card).to_have_attribute("data-circuit", "open", timeout=30_000)
    expect(card.locator(".circuit")).to_have_text("circuit open")

    mock.control(force_status=None)
    expect(card).to_have_attribute("data-circuit", "closed", timeout=30_000)
    expect(card.locator(".circuit")).to_have_text("circuit closed")
    opens = card.locator("div", has=page.locator("dt", has_text="Circuit opens")).locator("dd")
    assert int(opens.inner_text()) >= 1
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    assert page.evaluate(SAME_DOCUMENT)
    dashboard.wait_for(batch["id"], "completed")


def test_an_unknown_batch_says_so(browse: Any):
    page = browse(allow=("404 (Not Found)",)).open("/batches/batch_nope")

    expect(page.locator("#notice")).to_have_text("No such batch: batch_nope")
    expect(page.locator("#chart-title")).to_be_hidden()
    expect(page.locator("#cancel")).to_be_hidden()


def test_the_api_reference_works_offline(browse: Any):
    page = browse().open("/docs")

    expect(page.locator(".opblock").first).to_be_visible()
    expect(page.locator("#swagger-ui")).to_contain_text("/v1/batches/{batch_id}/cancel")


RECEIVED: list[str] = []  # the webhook-id of each message the receiver got


@pytest.fixture(scope="module")
def receiver_url() -> Iterator[str]:
    """A webhook receiver on loopback that answers 204 to every POST."""

    class Accept(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            RECEIVED.append(self.headers.get("webhook-id", ""))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/datamill"
    server.shutdown()
    server.server_close()


def webhook_endpoint(dashboard: Dashboard, url: str) -> dict[str, Any]:
    """The one endpoint the screenshots show (made by the first width's run)."""
    found = dashboard.http.get("/api/webhooks").json()["data"]
    if found:
        return dict(found[0])
    body = {"url": url, "event_types": ["batch.completed"], "description": "results to CI"}
    created = dashboard.http.post("/api/webhooks", json=body)
    assert created.status_code == 200, created.text
    return dict(created.json())


def wait_delivered(dashboard: Dashboard, endpoint_id: str, event_type: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        log = dashboard.http.get(f"/api/webhooks/{endpoint_id}/deliveries").json()["data"]
        if any(d["event_type"] == event_type and d["status"] == "delivered" for d in log):
            return
        assert time.monotonic() < deadline, log
        time.sleep(0.1)


def sample_dataset(dashboard: Dashboard) -> dict[str, Any]:
    """The dataset the screenshots show (made by the first width's run), with the id of the
    sample they open: a chat sample, edited once."""
    found = dashboard.http.get("/api/datasets").json()["data"]
    named = [d for d in found if d["name"] == "support-chats"]
    if named:
        api = f"/api/datasets/{named[0]['id']}"
        newest = dashboard.http.get(f"{api}/samples", params={"limit": 1}).json()["data"][0]
        return {**named[0], "sample": newest["id"]}
    created = dashboard.http.post(
        "/api/datasets",
        json={"name": "support-chats", "description": "Support answers for fine-tuning"},
    )
    assert created.status_code == 200, created.text
    api = f"/api/datasets/{created.json()['id']}"
    questions = [
        ("billing", "How do I update the card on my account?"),
        ("shipping", "My parcel shows delivered but never arrived."),
        ("returns", "Can I return an opened item after 30 days?"),
    ]
    sample = None
    for n in range(9):
        topic, question = questions[n % 3]
        body = {
            "content": {
                "messages": [
                    {"role": "user", "content": f"{question} (ticket {1000 + n})"},
                    {
                        "role": "assistant",
                        "content": "Open Settings, then Billing: it takes a minute.",
                    },
                ]
            },
            "topic": topic,
            "sample_type": ("chat", "escalation")[n % 2],
            "metadata": {"ticket": 1000 + n, "locale": "en-GB"},
        }
        added = dashboard.http.post(f"{api}/samples", json=body)
        assert added.status_code == 200, added.text
        sample = added.json()
    assert sample is not None
    edit = {"metadata": {**sample["metadata"], "reviewed": True}}
    assert dashboard.http.patch(f"{api}/samples/{sample['id']}", json=edit).status_code == 200
    return {**created.json(), "sample": sample["id"]}


def review_dataset(dashboard: Dashboard) -> dict[str, Any]:
    """The dataset the review page's screenshots show (made by the first width's run): chat
    samples under a schema with reject reasons, a rating, labels and a comment."""
    found = dashboard.http.get("/api/datasets").json()["data"]
    named = [d for d in found if d["name"] == "support-review"]
    if named:
        return dict(named[0])
    schema = {
        "name": "support-reply",
        "display": {"fields": [{"field": "messages", "label": "Conversation", "kind": "chat"}]},
        "review": {
            "questions": [
                {
                    "name": "decision",
                    "kind": "decision",
                    "prompt": "Keep this reply?",
                    "reasons": ["wrong answer", "unsafe advice", "off topic"],
                },
                {"name": "rating", "kind": "rating", "prompt": "Quality", "required": False},
                {
                    "name": "tone",
                    "kind": "labels",
                    "prompt": "Tone",
                    "options": ["friendly", "neutral", "curt"],
                    "required": False,
                },
                {"name": "comment", "kind": "text", "prompt": "Comment", "required": False},
            ]
        },
    }
    assert dashboard.http.post("/api/task-schemas", json=schema).status_code == 200
    created = dashboard.http.post(
        "/api/datasets",
        json={
            "name": "support-review",
            "description": "Replies to review",
            "task_schema": schema["name"],
        },
    )
    assert created.status_code == 200, created.text
    api = f"/api/datasets/{created.json()['id']}"
    for n, question in enumerate(
        ["How do I change my delivery address?", "Why was I charged twice?", "Where is my refund?"]
    ):
        messages = [
            {"role": "user", "content": f"{question} (ticket {2000 + n})"},
            {"role": "assistant", "content": "Open Orders, choose the order, then Edit address."},
        ]
        body = {"content": {"messages": messages}, "sample_type": schema["name"], "topic": "orders"}
        assert dashboard.http.post(f"{api}/samples", json=body).status_code == 200
    return dict(created.json())


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_fits_the_width_and_is_screenshotted(
    browse: Any, dashboard: Dashboard, mock: Any, width: int, tmp_path: Path, receiver_url: str
):
    hook = webhook_endpoint(dashboard, receiver_url)
    batch = dashboard.submit(requests(30, rejected={3, 11}), description="nightly eval")
    dashboard.wait_for(batch["id"], "completed")
    wait_delivered(dashboard, hook["id"], "batch.completed")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(
        jsonl([*requests(2), "not json", {**requests(1, prefix="x")[0], "url": "/v1/x"}])
    )
    job = dashboard.http.post("/api/generation/jobs", json={"spec": generation_spec()}).json()
    deadline = time.monotonic() + 60
    while dashboard.http.get(f"/api/generation/jobs/{job['id']}").json()["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    dataset = sample_dataset(dashboard)
    to_review = review_dataset(dashboard)
    browsing = browse(width=width)

    shots = {
        "batches": "/",
        "batch": f"/batches/{batch['id']}",
        "upload": "/upload",
        "deployments": "/deployments",
        "workers": "/workers",
        "generation": f"/generation#{job['id']}",
        "webhooks": "/webhooks",
        "datasets": "/datasets",
        "dataset": f"/datasets/{dataset['id']}?sample={dataset['sample']}",
        "review": f"/datasets/{to_review['id']}/review",
    }
    assert set(shots) == {page.name for page in PAGES}  # a new page is screenshotted too
    for name, path in shots.items():
        page = browsing.open(path)
        ready = {
            "batches": "#batches tbody tr",
            "batch": ".error-group",
            "upload": "#create",
            "deployments": ".deployment",
            "workers": "#workers tbody tr",
            "generation": "#coverage td.cell.full",
            "webhooks": "#webhooks .delivery",
            "datasets": "#datasets tbody tr",
            "dataset": "#history .version",
            "review": "#sample-body .sample-card",
        }[name]
        expect(page.locator(ready).first).to_be_visible()
        if name == "review":  # a rating given, and the reject reasons on show
            page.keyboard.press("4")
            page.keyboard.press("r")
            expect(page.locator("#reasons")).to_be_visible()
        if name == "upload":
            page.set_input_files("#file", str(bad))
            expect(page.locator("#validation .line-errors tbody tr")).to_have_count(2)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} is {overflow} px wider than {width} px"
        assert screenshot(page, name, width).stat().st_size > 10_000
        page.close()


def test_the_theme_follows_the_system(browse: Any):
    backgrounds = {}
    for scheme in ("light", "dark"):
        page = browse(scheme=scheme).open("/workers")
        backgrounds[scheme] = page.evaluate("getComputedStyle(document.body).backgroundColor")

    assert backgrounds["light"] == "rgb(246, 247, 249)"
    assert backgrounds["dark"] == "rgb(16, 19, 23)"


def test_the_pages_can_be_walked_with_the_keyboard(browse: Any):
    page = browse().open("/deployments")

    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")  # the brand, then the navigation
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Batches")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url("**/upload")
    expect(page.get_by_role("link", name="Upload")).to_have_attribute("aria-current", "page")


def test_a_webhook_delivery_is_replayed_from_its_page(
    browse: Any, dashboard: Dashboard, receiver_url: str
):
    hook = webhook_endpoint(dashboard, receiver_url)
    sent = dashboard.http.post(f"/api/webhooks/{hook['id']}/test")
    assert sent.status_code == 200, sent.text
    message = sent.json()["id"]
    wait_delivered(dashboard, hook["id"], "webhook.test")
    page = browse().open("/webhooks")

    page.get_by_role("button", name=f"Replay {message}").click()

    deadline = time.monotonic() + 60
    while RECEIVED.count(message) < 2:
        assert time.monotonic() < deadline, RECEIVED
        time.sleep(0.05)
