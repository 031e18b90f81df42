"""The dashboard's HTML: one route per page of `PAGES`, sign-in, the offline API docs, the
assets.

Pages are shells. The server renders the layout and the navigation; each page's ES module
fills it from the JSON API and keeps it current from the event stream. Nothing in a page is
secret, and no script is inline, so a strict Content-Security-Policy holds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from datamill.web import signin
from datamill.web.access import PageDenied, SignInRequired, Viewer, ViewerDep, page_policy
from datamill.web.pages import PAGES, Page
from datamill.web.rendering import STATIC_DIR, STATIC_PREFIX, render


def _page_route(page: Page) -> Callable[..., Awaitable[HTMLResponse]]:
    access = page_policy(page.needs)  # a default, not an annotation: a closure's names
    # are not visible to the string annotations FastAPI resolves

    async def show(request: Request, viewer: Viewer = access) -> HTMLResponse:
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
    return render(request, "api_docs.html", viewer=viewer, openapi_url="/openapi.json")


def _denied(request: Request, exc: Exception) -> HTMLResponse:
    """A page the viewer's role may not see: says which role it needs (403)."""
    assert isinstance(exc, PageDenied)
    page = next(p for p in PAGES if p.needs is exc.needs)
    return render(request, "denied.html", viewer=exc.viewer, page=page, params={}, status_code=403)


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard's pages, sign-in, ``/docs`` and the assets under ``/static``."""
    app.include_router(router)
    app.include_router(signin.router)
    app.add_exception_handler(SignInRequired, signin.sign_in_redirect)
    app.add_exception_handler(PageDenied, _denied)
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="static")
