"""Signing the dashboard in with a key, in a real browser (Debian's Chromium, headless)
against `datamill serve` with keys: the redirect to /login and back, a wrong key, the session
cookie carrying the pages' changes (with their CSRF header), what a viewer is not shown,
signing out, and a revoked key's page sent back to sign in.

The server of this module has keys (made with the CLI before it starts), so it is not the
local-mode server of the other browser tests. The same guards hold: no request to another
host, no error in a page's console but those a test expects."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, Request, Route, expect

from tests.helpers import jsonl
from tests.web.conftest import Browsing, Dashboard, generation_spec, requests, serve_dashboard

pytestmark = pytest.mark.slow

# Chromium logs an answer of 4xx as a console error: the tests that expect one allow it.
UNAUTHORIZED = "401 (Unauthorized)"
FORBIDDEN = "403 (Forbidden)"


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """A server with a member and a viewer key of the default project (the member's is the
    helpers' key)."""
    yield from serve_dashboard(tmp_path_factory, roles=("member", "viewer"))


def key_of(dashboard: Dashboard, role: str) -> str:
    key: str = dashboard.keys[role]["key"]
    return key


def sign_in(browsing: Browsing, key: str, path: str = "/") -> Page:
    """Open ``path``, be sent to sign in, sign in with ``key`` and land back on ``path``."""
    page = browsing.open(path)
    expect(page).to_have_url(f"{browsing.watch.base}/login?next={quote(path, safe='/')}")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(browsing.watch.base + path)
    page.wait_for_load_state()  # the page's module has run: its controls work
    return page


def running_batch(dashboard: Dashboard, mock: Any, description: str) -> dict[str, Any]:
    """A batch that runs for seconds (40 requests of 400 ms, two at a time)."""
    mock.control(latency_ms=400)
    batch = dashboard.submit(requests(40), description=description)
    return dashboard.wait_for(batch["id"], "in_progress")


def test_a_page_asks_for_a_key_and_comes_back_after_signing_in(browse: Any, dashboard: Dashboard):
    browsing = browse()
    page = browsing.open("/")
    expect(page).to_have_url(f"{dashboard.url}/login?next=/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator(".nav a")).to_have_count(0)  # nothing to navigate to yet
    page.close()

    page = browsing.open("/workers")
    expect(page).to_have_url(f"{dashboard.url}/login?next=/workers")
    page.get_by_label("API key").fill("dm-not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    assert browsing.context.cookies() == []
    expect(page.locator('input[name="next"]')).to_have_value("/workers")  # kept for the retry

    page.get_by_label("API key").fill(key_of(dashboard, "member"))
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(f"{dashboard.url}/workers")
    expect(page.locator("#workers")).to_be_visible()
    who = page.locator(".who")
    expect(who).to_contain_text("default · member")
    expect(who).to_contain_text(dashboard.keys["member"]["prefix"])
    expect(who.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.get_by_role("link", name="Upload")).to_be_visible()
    [cookie] = browsing.context.cookies()
    assert cookie["name"] == "datamill_session"
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # the page's scripts cannot read the key
    assert page.locator('meta[name="csrf-token"]').get_attribute("content")


def test_a_member_uploads_creates_and_cancels_batches_through_the_page(
    browse: Any, dashboard: Dashboard, mock: Any, tmp_path: Path
):
    mock.control(latency_ms=10)
    good = tmp_path / "requests.jsonl"
    good.write_bytes(jsonl(requests(30, rejected={4})))
    browsing = browse()
    page = sign_in(browsing, key_of(dashboard, "member"), "/upload")
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    changes: list[Request] = []
    page.on("request", lambda request: changes.append(request) if request.method != "GET" else 0)

    page.set_input_files("#file", str(good))
    expect(page.locator("#validation")).to_contain_text("30 requests, no errors")
    page.click("#create")
    page.wait_for_url("**/batches/batch_*")
    expect(page.locator("#status [data-status]")).to_have_attribute(
        "data-status", "completed", timeout=60_000
    )

    batch_id = page.url.rsplit("/", 1)[1]
    finished = dashboard.batch(batch_id)  # the member's key sees it: same project
    assert finished["request_counts"] == {"total": 30, "completed": 29, "failed": 1}
    sent = {request.url.removeprefix(dashboard.url): request for request in changes}
    assert set(sent) == {"/api/files/validate", "/v1/files", "/v1/batches"}
    for request in sent.values():  # the cookie alone would be refused (csrf_failed)
        assert request.headers.get("x-csrf-token") == token, request.url
        assert "authorization" not in request.headers
    page.goto(f"{dashboard.url}/")
    expect(page.locator(f'tr[data-id="{batch_id}"]')).to_have_attribute("data-status", "completed")

    # Cancelling another, running batch from its page.
    other = running_batch(dashboard, mock, "to cancel")
    page.goto(f"{dashboard.url}/batches/{other['id']}")
    expect(page.locator("#status [data-status]")).to_have_attribute("data-status", "in_progress")
    page.click("#cancel")
    page.locator("#confirm-cancel").get_by_role("button", name="Cancel batch").click()
    expect(page.locator("#status [data-status]")).to_have_attribute(
        "data-status", "cancelled", timeout=30_000
    )
    expect(page.locator("#cancel")).to_be_hidden()
    assert dashboard.batch(other["id"])["status"] == "cancelled"
    [cancelled] = [
        r for r in changes if r.url == f"{dashboard.url}/v1/batches/{other['id']}/cancel"
    ]
    assert cancelled.headers.get("x-csrf-token") == token


def test_a_viewer_is_not_shown_what_it_may_not_do(browse: Any, dashboard: Dashboard, mock: Any):
    browsing = browse(allow=(FORBIDDEN,))
    page = sign_in(browsing, key_of(dashboard, "viewer"), "/")

    expect(page.locator(".who")).to_contain_text("default · viewer")
    expect(page.locator("#summary")).to_contain_text("batches shown")
    expect(page.get_by_role("link", name="Batches")).to_be_visible()
    expect(page.locator(".nav").get_by_role("link", name="Upload")).to_have_count(0)
    expect(page.get_by_role("link", name="New batch")).to_be_hidden()

    # A running batch: its page would offer Cancel, but not to a viewer.
    batch = running_batch(dashboard, mock, "watched by a viewer")
    page.goto(f"{dashboard.url}/batches/{batch['id']}")
    expect(page.locator("#status [data-status]")).to_have_attribute("data-status", "in_progress")
    cancel = page.locator("#cancel")
    assert cancel.evaluate("node => node.hidden") is False  # cancellable, as far as the page knows
    expect(cancel).to_be_hidden()  # and still not shown: the role hides it
    dashboard.http.post(f"/v1/batches/{batch['id']}/cancel").raise_for_status()

    answer = page.goto(f"{dashboard.url}/upload")
    assert answer is not None
    assert answer.status == 403
    expect(page.locator("main")).to_contain_text("needs the member role or above")
    expect(page.locator("main")).to_contain_text("your key is a viewer of project default")
    expect(page.locator("#file")).to_have_count(0)  # and no upload script failing to find it


def test_signing_out_returns_to_the_sign_in_page(browse: Any, dashboard: Dashboard):
    browsing = browse()
    page = sign_in(browsing, key_of(dashboard, "viewer"), "/deployments")

    page.get_by_role("button", name="Sign out").click()

    expect(page).to_have_url(f"{dashboard.url}/login")
    assert browsing.context.cookies() == []
    for path in ("/", "/deployments", "/batches/batch_any"):
        page.goto(dashboard.url + path)
        expect(page).to_have_url(f"{dashboard.url}/login?next={path}")
    page.close()

    # A bookmarked, filtered view comes back filtered.
    page = sign_in(browsing, key_of(dashboard, "viewer"), "/?status=failed&q=nightly")
    expect(page.locator("#filter-status")).to_have_value("failed")
    expect(page.locator("#filter-q")).to_have_value("nightly")


def test_a_revoked_keys_page_is_sent_to_sign_in_and_back_to_the_same_view(
    browse: Any, dashboard: Dashboard
):
    spec = generation_spec(per_cell=1, topics=1)
    job = dashboard.http.post("/api/generation/jobs", json={"spec": spec}).raise_for_status()
    view = f"/generation#{job.json()['id']}"
    made = json.loads(
        dashboard.cli("keys", "create", "--project", "default", "--role", "member", "--json")
    )
    browsing = browse(allow=(UNAUTHORIZED,))
    page = sign_in(browsing, made["key"], "/")
    # The page's event stream is held, so the page learns of the revocation from its next
    # call, not from its stream ending (the other path, tested below).
    held: list[Route] = []
    page.route(re.compile(r"/api/events\?"), lambda route: held.append(route))
    page.goto(dashboard.url + view)
    expect(page.locator("#job")).to_be_visible()

    dashboard.cli("keys", "revoke", made["id"])
    wait_until_refused(dashboard, made["key"])  # servers cache a checked key for a second
    other = browsing.open("/workers")  # a page loaded now is sent to sign in at once
    expect(other).to_have_url(f"{dashboard.url}/login?next=/workers")
    other.close()
    page.get_by_role("button", name="Preview").click()  # the page's next call: refused (401)

    expect(page).to_have_url(f"{dashboard.url}/login?next={quote(view, safe='')}")
    page.get_by_label("API key").fill(key_of(dashboard, "member"))
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(dashboard.url + view)
    expect(page.locator("#job")).to_be_visible()  # the job the page showed, selected again


def wait_until_refused(dashboard: Dashboard, key: str, timeout: float = 30) -> None:
    """Ask with ``key`` until the server refuses it (once its cached check lapses)."""
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {key}"}
    while dashboard.http.get("/v1/files", headers=headers).status_code != 401:
        assert time.monotonic() < deadline, "the revoked key still works"
        time.sleep(0.1)


def test_a_revoked_keys_page_whose_stream_ends_is_sent_to_sign_in(
    browse: Any, dashboard: Dashboard
):
    """The stream ends (a server restarting, say) and is refused on reconnecting: the page
    goes to sign in instead of showing Offline for good."""
    made = json.loads(
        dashboard.cli("keys", "create", "--project", "default", "--role", "viewer", "--json")
    )
    browsing = browse(allow=(UNAUTHORIZED,))
    page = sign_in(browsing, made["key"], "/deployments")
    held: list[Route] = []
    stream = re.compile(r"/api/events\?topic=batch$")  # the batch list's
    page.route(stream, lambda route: held.append(route), times=1)  # held for now
    page.goto(f"{dashboard.url}/")
    expect(page.locator("#summary")).to_contain_text("batches shown")
    expect(page.locator("#live")).to_have_attribute("data-state", "connecting")
    deadline = time.monotonic() + 30
    while not held:  # the page asked for its stream; the route reaches the test a bit later
        assert time.monotonic() < deadline, "the page asked for no stream"
        page.wait_for_timeout(20)
    assert [route.request.url for route in held] == [f"{dashboard.url}/api/events?topic=batch"]

    dashboard.cli("keys", "revoke", made["id"])
    wait_until_refused(dashboard, made["key"])
    # The held stream opens, then ends at once; EventSource reconnects (to the server): 401.
    held[0].fulfill(status=200, content_type="text/event-stream", body="retry: 50\n\n")

    expect(page).to_have_url(f"{dashboard.url}/login?next=%2F")
