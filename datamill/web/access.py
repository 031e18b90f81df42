"""Who may see the dashboard: the one dependency every page route goes through.

A page needs a key of at least the page's role, from the session cookie the sign-in page
sets (or an `Authorization` header). Without one, the browser is sent to ``/login``; in
local mode (no key exists, bound to loopback) everyone is the local admin. No page decides
access on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

from fastapi import Depends, Request

from datamill.auth.keys import csrf_token
from datamill.auth.policy import Policy
from datamill.callers import get_caller, presented_key
from datamill.errors import Unauthenticated
from datamill.protocol.access import Role


class SignInRequired(Exception):
    """The page needs a key the request does not carry: sign in, then come back."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Viewer:
    """The person looking at a page. Templates may show all of it: the CSRF token is for
    this person's own page to send back, and is useless without the cookie."""

    project_id: str
    project: str
    role: Role
    local: bool
    key_prefix: str | None = None
    csrf: str = ""

    @property
    def name(self) -> str:
        return "local operator" if self.local else f"{self.key_prefix}…"

    def may(self) -> list[str]:
        return [role.value for role in Role if self.role.allows(role)]


async def page_access(request: Request) -> Viewer:
    """Let the request see dashboard pages, or send it to sign in."""
    try:
        caller = await get_caller(request)
    except Unauthenticated as error:
        raise SignInRequired(request.url.path, error.message) from None
    key, from_cookie = presented_key(request)
    return Viewer(
        project_id=caller.project_id,
        project=caller.project_name,
        role=caller.role,
        local=caller.local,
        key_prefix=caller.key_prefix,
        csrf=csrf_token(key) if key and from_cookie and not caller.local else "",
    )


class PageDenied(Exception):
    """The viewer's role is below the page's: the page says so (403) instead of showing."""

    def __init__(self, viewer: Viewer, needs: Role) -> None:
        super().__init__(needs.value)
        self.viewer = viewer
        self.needs = needs


@cache
def page_policy(needs: Role) -> Any:
    """The dependency a page route declares: a viewer of at least ``needs``."""

    async def allow(viewer: Annotated[Viewer, Depends(page_access)]) -> Viewer:
        if not viewer.role.allows(needs):
            raise PageDenied(viewer, needs)
        return viewer

    allow.__name__ = f"page_{needs.value}"
    allow.policy = Policy(needs)  # type: ignore[attr-defined]
    return Depends(allow)


ViewerDep = Annotated[Viewer, page_policy(Role.viewer)]
