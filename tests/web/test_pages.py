"""The dashboard's routes without a browser: every page renders its shell through the one
access dependency, assets are served from the package, and nothing points off this server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import HTTPException

from datamill.web.access import page_access
from datamill.web.pages import PAGES
from datamill.web.rendering import STATIC_DIR, templates

PAGE_URLS = {page.name: re.sub(r"\{(\w+?)_id\}", r"\1_abc", page.path) for page in PAGES}
TEMPLATES = Path(templates.env.loader.searchpath[0])  # type: ignore[union-attr]


@pytest.fixture
def client(dashboard_http):
    return dashboard_http


def local_urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


@pytest.mark.parametrize("name", sorted(PAGE_URLS))
async def test_every_page_renders_its_shell_with_navigation_and_a_strict_policy(client, name):
    response = await client.get(PAGE_URLS[name])

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "unsafe-inline" not in policy
    html = response.text
    assert f'data-page="{name}"' in html
    for page in PAGES:
        assert (f'href="{page.path}"' in html) is page.nav, page.name
    assert "<script>" not in html  # scripts are files, so the policy can forbid inline ones
    for url in local_urls(html):
        assert url.startswith(("/", "#")), url  # nothing from another host


async def test_a_page_gets_its_path_parameters_escaped(client):
    response = await client.get("/batches/batch_%3Cb%3E'x")

    assert response.status_code == 200
    assert "<b>" not in response.text
    assert "batch_&lt;b&gt;" in response.text


async def test_every_page_and_the_api_docs_go_through_the_access_dependency(client):
    def refuse() -> None:
        raise HTTPException(status_code=403, detail="not for you")

    client.app.dependency_overrides[page_access] = refuse

    for url in [*PAGE_URLS.values(), "/docs"]:
        response = await client.get(url)
        assert response.status_code == 403, url
    assert (await client.get("/healthz")).status_code == 200  # only pages go through it


async def test_each_page_has_its_template_and_script():
    for page in PAGES:
        assert (TEMPLATES / page.template).is_file(), page.template
        assert (STATIC_DIR / page.script).is_file(), page.script
        assert '{% extends "base.html" %}' in (TEMPLATES / page.template).read_text()


async def test_assets_are_served_with_their_types(client):
    cases = {
        "/static/js/pages/batches.js": "text/javascript",
        "/static/css/dashboard.css": "text/css",
        "/static/vendor/uplot/uPlot.esm.js": "text/javascript",
        "/static/vendor/swagger-ui/swagger-ui-bundle.js": "text/javascript",
        "/static/favicon.svg": "image/svg+xml",
    }
    for url, kind in cases.items():
        response = await client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"].split(";")[0] in {kind, "application/javascript"}
    assert (await client.get("/static/../settings.py")).status_code == 404


async def test_the_api_docs_load_swagger_ui_from_this_server(client):
    response = await client.get("/docs")

    assert response.status_code == 200
    urls = local_urls(response.text)
    assert any(url.startswith("/static/vendor/swagger-ui/swagger-ui-bundle.js") for url in urls)
    assert all(url.startswith("/") for url in urls), urls
    assert 'data-openapi-url="/openapi.json"' in response.text


def test_vendored_libraries_keep_their_licenses():
    vendor = STATIC_DIR / "vendor"
    for library in ("uplot", "swagger-ui"):
        assert (vendor / library / "LICENSE").is_file(), library
    readme = (vendor / "README.md").read_text()
    assert "uplot" in readme
    assert "swagger-ui-dist" in readme


def test_the_dashboard_doc_shows_every_page_at_both_widths():
    from tests.web.conftest import ROOT, WIDTHS

    text = (ROOT / "docs" / "dashboard.md").read_text()
    shown = set(re.findall(r"\]\((images/dashboard-[a-z_]+-\d+\.png)\)", text))

    expected = {f"images/dashboard-{page.name}-{width}.png" for page in PAGES for width in WIDTHS}
    assert shown == expected
    for image in shown:
        assert (ROOT / "docs" / image).stat().st_size > 10_000, image


def test_no_script_reaches_another_host():
    """Scripts only talk to this server (relative URLs); any absolute URL is a mistake."""
    for script in (STATIC_DIR / "js").rglob("*.js"):
        text = script.read_text()
        assert not re.search(r"https?://", text), script.name
