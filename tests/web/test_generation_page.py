"""The Generation page in a real browser against `datamill serve` (its `sim` deployment):
preview a spec, start it, watch the job fill its cells live without a reload, then stop and
resume another from the page."""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml
from playwright.sync_api import expect

from tests.web.conftest import Dashboard, generation_spec

pytestmark = pytest.mark.slow

MARK = "window.__firstDocument = true"
SAME_DOCUMENT = "window.__firstDocument === true"


def test_a_spec_is_previewed_started_and_watched_to_its_targets(browse: Any, dashboard: Dashboard):
    page = browse(allow=("400 (Bad Request)",)).open("/generation")  # the bad spec's answer
    page.evaluate(MARK)
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    expect(page.locator("#empty")).to_be_visible()
    page.fill("#spec", yaml.safe_dump(generation_spec(per_cell=4)))

    page.click("#preview")
    expect(page.locator("#estimate")).to_contain_text("Estimate: 24 requests for 24 samples")
    expect(page.locator(".preview-sample")).to_have_count(2)
    expect(page.locator(".preview-sample").first).to_contain_text("qa")

    page.click("#start")
    expect(page.locator("#jobs tbody tr")).to_have_count(1)
    expect(page.locator("#job-title [data-status=completed]")).to_be_visible(timeout=60_000)
    cells = page.locator("#coverage td.cell")
    expect(cells).to_have_count(6)
    expect(page.locator("#coverage td.cell.full")).to_have_count(6)
    expect(page.locator("#jobs tbody tr [role=progressbar]")).to_have_attribute(
        "aria-valuenow", "24"
    )
    job_id = page.locator("#jobs tbody tr").get_attribute("data-id")
    job = dashboard.http.get(f"/api/generation/jobs/{job_id}").json()
    assert job["status"] == "completed"
    assert job["accepted"] == 24
    assert page.evaluate(SAME_DOCUMENT)
    # Pushed by the event stream, not polled: the job is read when chosen and at each of its
    # status events (created, its runner starting, completed).
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    assert sum(url.endswith(f"/api/generation/jobs/{job_id}") for url in fetched) <= 5, fetched

    # A bad spec: the API's message names the key, and nothing starts.
    page.fill("#spec", yaml.safe_dump({**generation_spec(), "target": {"per_cell": 0}}))
    page.click("#start")
    expect(page.locator("#start-error")).to_contain_text("spec.target.per_cell")
    expect(page.locator("#jobs tbody tr")).to_have_count(1)


def test_a_running_job_is_stopped_and_resumed_from_the_page(browse: Any, dashboard: Dashboard):
    spec = {
        **generation_spec(per_cell=150, topics=4),
        "name": "long-job",
        "loop": {"batch_size": 10},
    }
    job = dashboard.http.post("/api/generation/jobs", json={"spec": spec}).json()
    page = browse().open(f"/generation#{job['id']}")

    expect(page.locator("#stop")).to_be_visible()
    page.click("#stop")
    expect(page.locator("#job-title [data-status=stopped]")).to_be_visible()
    expect(page.locator("#resume")).to_be_visible()
    assert dashboard.http.get(f"/api/generation/jobs/{job['id']}").json()["status"] == "stopped"

    page.click("#resume")
    expect(page.locator("#job-title [data-status=running]")).to_be_visible()
    dashboard.http.post(f"/api/generation/jobs/{job['id']}/stop")
    expect(page.locator("#job-title [data-status=stopped]")).to_be_visible()  # live, by event


def test_a_job_that_stops_before_its_page_listens_is_shown_stopped(
    browse: Any, dashboard: Dashboard
):
    """The page reads the jobs, then opens the event stream: a job that stops in between
    sends its status event to nobody. The stream is held here until the job has stopped;
    the page must still come to show it stopped."""
    spec = {**generation_spec(per_cell=150, topics=4), "name": "stops-unseen"}
    job = dashboard.http.post("/api/generation/jobs", json={"spec": spec}).json()
    url = f"/api/generation/jobs/{job['id']}"
    browsing = browse()
    held: list[str] = []  # the job's status when the page asked for its stream

    def hold_until_stopped(route: Any) -> None:
        held.append(dashboard.http.get(url).json()["status"])
        assert dashboard.http.post(f"{url}/stop").status_code == 200
        deadline = time.monotonic() + 30
        while dashboard.http.get(url).json()["status"] != "stopped":
            assert time.monotonic() < deadline, "the job did not stop"
            time.sleep(0.05)
        route.continue_()

    browsing.context.route("**/api/events?*", hold_until_stopped)
    page = browsing.open(f"/generation#{job['id']}")

    expect(page.locator("#job-title [data-status=stopped]")).to_be_visible(timeout=30_000)
    assert held in (["queued"], ["running"])  # read before it stopped
