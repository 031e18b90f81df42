"""The request guard (datamill/api/guard.py) through HTTP: a web page of another site cannot
change anything (whatever it sends, to every state-changing route of the route table), the
server answers only to its own names (no DNS rebinding), and its own pages and API clients
pass."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from tests.api.conftest import Api, assert_error
from tests.helpers import chat_line, jsonl

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
UPLOADS = {
    ("POST", "/v1/files"),
    ("POST", "/api/files/validate"),
    ("POST", "/api/datasets/x1/import"),
    ("POST", "/api/datasets/x1/import-label-studio"),
}
EVIL = "http://evil.example"


def _routes(routes: list[Any]) -> Iterator[Any]:
    for route in routes:
        included = getattr(route, "original_router", None)
        yield from _routes(included.routes) if included is not None else [route]


def state_changing_routes(api: Api) -> list[tuple[str, str]]:
    """``(method, path)`` of every state-changing route of the app, path parameters filled."""
    found = [
        (method, re.sub(r"\{[^}]+\}", "x1", route.path))
        for route in _routes(api.app.routes)
        if isinstance(route, APIRoute)
        for method in sorted(route.methods & UNSAFE)
    ]
    return sorted(set(found))


def multipart() -> tuple[bytes, str]:
    request = httpx.Request(
        "POST",
        "http://localhost/",
        files={"file": ("in.jsonl", jsonl([chat_line("a")]))},
        data={"purpose": "batch", "endpoint": "/v1/chat/completions"},
    )
    return request.read(), request.headers["content-type"]


async def nothing_stored(api: Api) -> None:
    for path in ("/v1/files", "/v1/batches", "/api/datasets", "/api/generation/jobs"):
        listed = await api.client.get(path)
        assert listed.status_code == 200, listed.text
        assert listed.json()["data"] == [], path


async def test_a_cross_site_form_or_text_post_to_every_state_changing_route_is_refused(
    make_api, mock
):
    api = await make_api([{"name": "m", "provider": "openai", "base_url": mock.base_url}])
    routes = state_changing_routes(api)
    # The ones the probe named are among them.
    for route in [
        ("POST", "/v1/chat/completions"),
        ("POST", "/api/generation/jobs"),
        ("POST", "/v1/files"),
        ("POST", "/v1/batches/x1/cancel"),
    ]:
        assert route in routes
    assert len(routes) >= 20
    form, form_type = multipart()
    chat = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
    bodies = [
        (b"spec: {}", "text/plain"),
        (chat, "text/plain;charset=UTF-8"),
        (b"model=m&messages=hi", "application/x-www-form-urlencoded"),
        (form, form_type),
    ]

    for method, path in routes:
        for body, content_type in bodies:
            # A page of another site: its origin is not ours.
            headers = {"content-type": content_type, "origin": EVIL}
            response = await api.client.request(method, path, content=body, headers=headers)
            assert_error(response, 403, param=None, code="cross_site_request")
            assert "DATAMILL_ALLOWED_ORIGINS" in response.json()["error"]["message"]
            # A browser that sends no Origin but says where the request came from.
            for site in ("cross-site", "same-site"):
                headers = {"content-type": content_type, "sec-fetch-site": site}
                response = await api.client.request(method, path, content=body, headers=headers)
                assert_error(response, 403, param=None, code="cross_site_request")
            # Neither header (an old browser): a form body is no JSON route's body; the
            # upload routes take only multipart, and it must be well formed. (The dashboard's
            # own form routes, outside /v1 and /api, check their forms themselves.)
            if content_type != form_type and path.startswith(("/v1/", "/api/")):
                headers = {"content-type": content_type}
                response = await api.client.request(method, path, content=body, headers=headers)
                assert 400 <= response.status_code < 500, (method, path, response.text)
                if (method, path) not in UPLOADS:
                    assert_error(response, 415, param=None, code="unsupported_media_type")

    await nothing_stored(api)
    assert mock.stats()["total"] == 0


async def test_the_servers_own_pages_and_api_clients_pass(make_api):
    api = await make_api()
    same = {"origin": "http://localhost", "sec-fetch-site": "same-origin"}
    form, form_type = multipart()

    # The dashboard's upload page: multipart from its own origin.
    checked = await api.client.post(
        "/api/files/validate", content=form, headers={**same, "content-type": form_type}
    )
    uploaded = await api.client.post(
        "/v1/files", content=form, headers={**same, "content-type": form_type}
    )
    assert checked.status_code == 200, checked.text
    assert uploaded.status_code == 200, uploaded.text
    # Its JSON posts, then an SDK's (no Origin, no Sec-Fetch-Site).
    body = {"input_file_id": uploaded.json()["id"], "endpoint": "/v1/chat/completions"}
    created = await api.client.post(
        "/v1/batches", json={**body, "completion_window": "24h"}, headers=same
    )
    assert created.status_code == 200, created.text
    cancelled = await api.client.post(f"/v1/batches/{created.json()['id']}/cancel", json={})
    assert cancelled.status_code == 200, cancelled.text
    # A GET is never refused for its origin: a page may link to the server.
    listed = await api.client.get("/v1/batches", headers={"origin": EVIL})
    assert listed.status_code == 200


async def test_dashboard_form_routes_keep_their_forms(make_api):
    api = await make_api()

    @api.app.post("/form-test")
    async def form_route() -> dict[str, bool]:
        return {"ok": True}

    form = {"content-type": "application/x-www-form-urlencoded"}
    own = await api.client.post("/form-test", content=b"a=1", headers=form)
    same = {**form, "origin": "http://localhost", "sec-fetch-site": "same-origin"}
    from_page = await api.client.post("/form-test", content=b"a=1", headers=same)
    cross = await api.client.post("/form-test", content=b"a=1", headers={**form, "origin": EVIL})

    assert own.json() == from_page.json() == {"ok": True}
    assert_error(cross, 403, param=None, code="cross_site_request")


async def test_an_allowed_origin_may_change_things(make_api):
    api = await make_api(allowed_origins="https://app.example.com, http://other.example:8080")

    for name, origin in [("a", "https://app.example.com"), ("b", "HTTP://other.example:8080")]:
        headers = {"origin": origin, "sec-fetch-site": "cross-site"}
        created = await api.client.post("/api/datasets", json={"name": name}, headers=headers)
        assert created.status_code == 200, created.text
    refused = await api.client.post(
        "/api/datasets", json={"name": "c"}, headers={"origin": "https://app.example.com:444"}
    )
    assert_error(refused, 403, param=None, code="cross_site_request")
    # A sandboxed frame or a file:// page sends "null": never this server's origin.
    null = await api.client.post("/api/datasets", json={"name": "d"}, headers={"origin": "null"})
    assert_error(null, 403, param=None, code="cross_site_request")


@pytest.mark.parametrize(
    ("host", "settings", "status"),
    [
        ("localhost:8000", {}, 200),
        ("LOCALHOST.", {}, 200),
        ("127.0.0.1:9", {}, 200),
        ("[::1]:8000", {}, 200),
        ("rebind.evil.example:8000", {}, 421),
        ("", {}, 421),
        # Past the Host check, a server bound beyond loopback with no key asks for one.
        ("10.1.2.3:8000", {"host": "10.1.2.3"}, 401),
        ("0.0.0.0:8000", {"host": "0.0.0.0"}, 421),
        ("[fd00::1]:8000", {"host": "fd00::1"}, 401),
        ("datamill.example.com", {"allowed_hosts": "datamill.example.com,10.0.0.5"}, 200),
        ("10.0.0.5:8000", {"allowed_hosts": "datamill.example.com,10.0.0.5"}, 200),
        ("evil.example", {"allowed_hosts": "datamill.example.com"}, 421),
        ("anything.example", {"allowed_hosts": "*"}, 200),
    ],
)
async def test_the_server_answers_only_to_its_names(make_api, host, settings, status):
    api = await make_api(**settings)

    response = await api.client.get("/v1/batches", headers={"host": host})

    if status == 421:
        assert_error(response, 421, param=None, code="host_not_allowed")
        assert "DATAMILL_ALLOWED_HOSTS" in response.json()["error"]["message"]
    else:
        assert response.status_code == status, response.text


async def test_the_health_probes_answer_any_name(make_api):
    api = await make_api()

    for path in ("/healthz", "/readyz"):
        response = await api.client.get(path, headers={"host": "10.244.1.7:8000"})
        assert response.status_code in (200, 503), response.text  # not 421


async def test_a_rebound_name_cannot_read_a_real_server(make_api, serve):
    served = await serve(await make_api())

    async with served.client() as client:
        own = await client.get("/v1/batches")
        rebound = await client.get("/v1/batches", headers={"host": "attacker.example:8000"})

    assert own.status_code == 200
    assert_error(rebound, 421, param=None, code="host_not_allowed")


async def test_generation_takes_yaml_but_not_text_plain(make_api):
    api = await make_api()
    spec = "name: x\n"

    as_text = await api.client.post(
        "/api/generation/describe", content=spec, headers={"content-type": "text/plain"}
    )
    as_yaml = await api.client.post(
        "/api/generation/describe", content=spec, headers={"content-type": "application/yaml"}
    )

    assert_error(as_text, 415, param=None, code="unsupported_media_type")
    assert as_yaml.status_code != 415
