"""Who may see the dashboard: the one dependency every page route goes through.

Until API keys and roles exist, everyone who can reach the server is the operator of the
default project. The auth work replaces `page_access` (a session cookie or key, a role that
may read pages) without touching a page: no page decides access on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from datamill.callers import get_project_id


@dataclass(frozen=True, slots=True)
class Viewer:
    """The person looking at a page. Nothing here is secret: templates may show it."""

    project_id: str
    name: str = "local operator"


async def page_access(request: Request) -> Viewer:
    """Let the request see dashboard pages, or refuse it (the auth work raises here)."""
    return Viewer(project_id=await get_project_id())


ViewerDep = Annotated[Viewer, Depends(page_access)]
