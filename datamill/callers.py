"""Who is calling: what the API routes and the dashboard pages both ask of a request.

It sits below both `api` and `web` (the app mounts the dashboard, so the dashboard must not
import the API). Until API keys and roles exist, every caller belongs to the default
project; the auth work answers here, once, for routes and pages alike.
"""

from __future__ import annotations

from datamill.storage.schema import DEFAULT_PROJECT_ID


async def get_project_id() -> str:
    """The caller's project; one default project until API keys arrive.

    A coroutine: FastAPI runs a plain function dependency in its thread pool, a thread hop
    on every request for what is a constant."""
    return DEFAULT_PROJECT_ID
