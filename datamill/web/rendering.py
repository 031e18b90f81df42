"""Rendering the dashboard's HTML: the templates, their globals and the headers every page
carries (a strict Content-Security-Policy: no inline script, nothing from elsewhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from datamill import __version__
from datamill.web.access import Viewer
from datamill.web.pages import PAGES

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
STATIC_PREFIX = "/static"

# Only this server's own origin: the pages fetch nothing from elsewhere, and an injected
# inline script would not run.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

templates = Jinja2Templates(directory=HERE / "templates")


def static_url(path: str) -> str:
    """An asset's URL; the version in the query makes browsers fetch it anew after upgrades."""
    return f"{STATIC_PREFIX}/{path}?v={__version__}"


templates.env.globals["static"] = static_url
templates.env.globals["version"] = __version__
templates.env.globals["nav"] = [page for page in PAGES if page.nav]


def render(
    request: Request,
    template: str,
    *,
    viewer: Viewer | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    return templates.TemplateResponse(
        request, template, {"viewer": viewer, **context}, status_code=status_code, headers=_HEADERS
    )
