"""Signing the dashboard in and out with an API key.

``POST /login`` checks the key and keeps it in an HttpOnly, SameSite=Strict cookie (Secure
over HTTPS), which the pages' requests and the event stream then carry. Changes sent with
the cookie need the page's CSRF token too (`datamill.callers`). The sign-in form itself is
refused from another origin by the request guard (`api.guard`), like every change, so no
site can sign a visitor in with a key of its own.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from datamill.callers import PUBLIC, SESSION_COOKIE
from datamill.errors import Unauthenticated
from datamill.runtime import Runtime
from datamill.web.access import SignInRequired
from datamill.web.pages import Page
from datamill.web.rendering import render

LOGIN = Page("login", "Sign in", "/login", nav=False)
_MAX_AGE = 7 * 86_400  # a week, or less when the key expires sooner
_FORM_LIMIT = 16_384

router = APIRouter(tags=["dashboard"], include_in_schema=False)


def safe_next(path: str | None) -> str:
    """Where to go after signing in: a path on this server, never another site."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    parts = urlsplit(path)
    return path if not parts.scheme and not parts.netloc else "/"


async def _form(request: Request) -> dict[str, Any]:
    if int(request.headers.get("content-length") or 0) > _FORM_LIMIT:
        return {}
    form = await request.form(max_files=0, max_fields=8)
    return {name: value for name, value in form.items() if isinstance(value, str)}


def _render(request: Request, *, next_path: str, error: str | None, status: int) -> HTMLResponse:
    return render(
        request,
        LOGIN.template,
        viewer=None,
        page=LOGIN,
        params={},
        next_path=next_path,
        error=error,
        status_code=status,
    )


@router.get("/login", dependencies=[PUBLIC], response_class=HTMLResponse)
async def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    """The sign-in form."""
    return _render(request, next_path=safe_next(next), error=None, status=200)


@router.post("/login", dependencies=[PUBLIC], response_model=None)
async def login(request: Request) -> Response:
    """Check the key; keep it in the session cookie and go on, or show the form again."""
    form = await _form(request)
    next_path = safe_next(form.get("next"))
    runtime: Runtime = request.app.state.runtime
    if await runtime.auth.local_mode():
        return RedirectResponse(next_path, status_code=303)
    key = (form.get("key") or "").strip()
    try:
        caller = await runtime.auth.authenticate(key or None)
    except Unauthenticated as error:
        return _render(request, next_path=next_path, error=error.message, status=200)
    answer = RedirectResponse(next_path, status_code=303)
    expires = caller.expires_at
    max_age = _MAX_AGE
    if expires is not None:
        max_age = max(1, min(max_age, int(expires - runtime.clock.now())))
    answer.set_cookie(
        SESSION_COOKIE,
        key,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return answer


@router.post("/logout", dependencies=[PUBLIC], response_model=None)
async def logout(request: Request) -> Response:
    """Forget the session cookie."""
    answer = RedirectResponse("/login", status_code=303)
    answer.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return answer


def sign_in_redirect(request: Request, exc: Exception) -> Response:
    """A page asked without a key: to the sign-in form, then back (with its query: a
    bookmarked, filtered view stays filtered)."""
    assert isinstance(exc, SignInRequired)
    target = f"{exc.path}?{request.url.query}" if request.url.query else exc.path
    return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)
