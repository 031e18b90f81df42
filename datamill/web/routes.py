"""The dashboard's HTML: one route per page of `PAGES`, the offline API docs, the assets.

Pages are shells. The server renders the layout and the navigation; each page's ES module
fills it from the JSON API and keeps it current from the event stream. Nothing in a page is
secret, and no script is inline, so a strict Content-Security-Policy holds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from datamill import __version__
from datamill.web.access import Viewer, ViewerDep
from datamill.web.pages import PAGES, Page

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


def render(request: Request, template: str, *, viewer: Viewer, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(
        request, template, {"viewer": viewer, **context}, headers=_HEADERS
    )


def _page_route(page: Page) -> Callable[..., Awaitable[HTMLResponse]]:
    async def show(request: Request, viewer: ViewerDep) -> HTMLResponse:
        return render(
            request, page.template, viewer=viewer, page=page, params=dict(request.path_params)
        )

    show.__name__ = f"page_{page.name}"
    show.__doc__ = f"The dashboard's {page.title} page."
    return show


router = APIRouter(tags=["dashboard"], include_in_schema=False)
for _page in PAGES:
    router.add_api_route(
        _page.path,
        _page_route(_page),
        methods=["GET"],
        response_class=HTMLResponse,
        name=f"page:{_page.name}",
    )


@router.get("/docs", response_class=HTMLResponse)
async def api_docs(request: Request, viewer: ViewerDep) -> HTMLResponse:
    """The interactive API reference (Swagger UI), from vendored assets: works offline."""
    return render(request, "api_docs.html", viewer=viewer, openapi_url=request.app.openapi_url)


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard's pages, ``/docs`` and the assets under ``/static``."""
    app.include_router(router)
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="static")
