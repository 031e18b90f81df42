"""Signing the dashboard in with a key: the cookie's flags, pages and the API through it,
the CSRF token its changes need, cross-origin sign-in refused, and what each role sees."""

from __future__ import annotations

import re

import httpx
import pytest

from datamill.protocol.access import Role
from datamill.runtime import Runtime


@pytest.fixture
def dashboard(dashboard_http):
    return dashboard_http


async def make_key(client: httpx.AsyncClient, role: Role) -> str:
    runtime: Runtime = client.runtime  # type: ignore[attr-defined]
    key, _ = await runtime.auth.create_key("proj_default", role)
    return key


async def sign_in(client: httpx.AsyncClient, key: str, next_path: str = "/") -> httpx.Response:
    return await client.post(
        "/login",
        data={"key": key, "next": next_path},
        headers={"Origin": "http://localhost"},
    )


def csrf_of(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]*)">', html)
    assert found is not None
    return found.group(1)


async def test_pages_send_the_browser_to_sign_in_once_keys_exist(dashboard):
    assert (await dashboard.get("/")).status_code == 200  # local mode: no key asked for
    await make_key(dashboard, Role.admin)

    page = await dashboard.get("/batches/batch_abc")

    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/batches/batch_abc"
    form = await dashboard.get(page.headers["location"])
    assert form.status_code == 200
    assert 'name="key"' in form.text
    assert 'value="/batches/batch_abc"' in form.text


async def test_a_bookmarked_view_keeps_its_query_through_sign_in(dashboard):
    key = await make_key(dashboard, Role.viewer)

    page = await dashboard.get("/?status=failed&q=a b")

    assert page.headers["location"] == "/login?next=/%3Fstatus%3Dfailed%26q%3Da%2520b"
    form = await dashboard.get(page.headers["location"])
    assert 'value="/?status=failed&amp;q=a%20b"' in form.text
    answer = await sign_in(dashboard, key, "/?status=failed&q=a%20b")
    assert answer.headers["location"] == "/?status=failed&q=a%20b"


async def test_signing_in_sets_a_strict_httponly_cookie_and_goes_back(dashboard):
    key = await make_key(dashboard, Role.member)

    answer = await sign_in(dashboard, key, "/generation")

    assert answer.status_code == 303
    assert answer.headers["location"] == "/generation"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("datamill_session=")
    for flag in ("HttpOnly", "SameSite=strict", "Path=/", "Max-Age=604800"):
        assert flag.lower() in cookie.lower(), cookie
    page = await dashboard.get("/generation")
    assert page.status_code == 200
    assert "default · member" in page.text
    assert 'data-may="viewer reviewer member"' in page.text
    assert (await dashboard.get("/v1/files")).status_code == 200  # the API through the cookie


async def test_a_bad_key_shows_the_form_again_and_sets_nothing(dashboard):
    await make_key(dashboard, Role.admin)

    answer = await sign_in(dashboard, "dm-not-a-key")

    assert answer.status_code == 200
    assert "not valid" in answer.text
    assert "set-cookie" not in answer.headers


@pytest.mark.parametrize("target", ["https://evil.test/", "//evil.test/x", "/\\evil.test"])
async def test_sign_in_never_sends_the_browser_elsewhere(dashboard, target):
    key = await make_key(dashboard, Role.viewer)

    answer = await sign_in(dashboard, key, target)

    assert answer.headers["location"] == "/"


async def test_sign_in_from_another_origin_is_refused(dashboard):
    key = await make_key(dashboard, Role.admin)

    answer = await dashboard.post(
        "/login", data={"key": key}, headers={"Origin": "https://evil.test"}
    )

    assert answer.status_code == 403
    assert "set-cookie" not in answer.headers


async def test_changes_through_the_cookie_need_the_pages_csrf_token(dashboard):
    key = await make_key(dashboard, Role.member)
    await sign_in(dashboard, key)
    token = csrf_of((await dashboard.get("/")).text)
    assert token

    refused = await dashboard.post("/api/datasets", json={"name": "faq"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "csrf_failed"
    wrong = await dashboard.post(
        "/api/datasets", json={"name": "faq"}, headers={"X-CSRF-Token": "0" * 32}
    )
    assert wrong.status_code == 403
    made = await dashboard.post(
        "/api/datasets", json={"name": "faq"}, headers={"X-CSRF-Token": token}
    )
    assert made.status_code == 200, made.text
    # A key in the Authorization header needs no token: no browser sends one by itself.
    dashboard.cookies.clear()
    direct = await dashboard.post(
        "/api/datasets", json={"name": "faq2"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert direct.status_code == 200


async def test_a_viewer_sees_no_action_it_may_not_take(dashboard):
    key = await make_key(dashboard, Role.viewer)
    await sign_in(dashboard, key)

    batches = await dashboard.get("/")
    assert 'data-may="viewer"' in batches.text
    assert 'href="/upload"' not in batches.text.split("<main")[0]  # not in the navigation
    upload = await dashboard.get("/upload")
    assert upload.status_code == 403
    assert "needs the <strong>member</strong> role" in upload.text
    assert "js/pages/upload.js" not in upload.text  # it would look for the form that is not there


async def test_signing_out_forgets_the_cookie(dashboard):
    key = await make_key(dashboard, Role.viewer)
    await sign_in(dashboard, key)

    out = await dashboard.post("/logout", headers={"Origin": "http://localhost"})

    assert out.status_code == 303
    assert (
        'datamill_session=""' in out.headers["set-cookie"]
        or "Max-Age=0" in out.headers["set-cookie"]
    )
    dashboard.cookies.clear()
    assert (await dashboard.get("/")).status_code == 303


async def test_a_revoked_keys_session_ends(dashboard):
    key = await make_key(dashboard, Role.viewer)
    await sign_in(dashboard, key)
    runtime: Runtime = dashboard.runtime  # type: ignore[attr-defined]
    [record] = await runtime.auth.list_keys()

    await runtime.auth.revoke_key(record.id)

    assert (await dashboard.get("/")).status_code == 303
    assert (await dashboard.get("/v1/files")).status_code == 401
