"""`/api/keys`, `/api/projects` and `/api/me`: API keys and projects, for admins.

An admin manages the keys of its own project; a key of another project answers 404. An
admin may create a project: the answer holds that project's first admin key, shown once.
"""

from __future__ import annotations

from fastapi import APIRouter

from datamill.api.deps import RuntimeDep
from datamill.callers import ADMIN, VIEWER, CallerDep
from datamill.protocol.access import (
    CallerObject,
    KeyCreate,
    KeyObject,
    ProjectCreate,
    ProjectObject,
    Role,
)
from datamill.protocol.common import ListObject
from datamill.render.access import caller_object, key_object, project_object

router = APIRouter(prefix="/api", tags=["access"])


@router.get("/me", dependencies=[VIEWER], response_model=CallerObject)
async def who_am_i(caller: CallerDep) -> CallerObject:
    """The caller: project, role, key prefix, and whether the server is in local mode."""
    return caller_object(caller)


@router.post("/keys", dependencies=[ADMIN], response_model=KeyObject)
async def create_key(body: KeyCreate, runtime: RuntimeDep, caller: CallerDep) -> KeyObject:
    """A new key of the caller's project. ``key`` holds it, this once: it is stored hashed."""
    key, record = await runtime.auth.create_key(
        caller.project_id,
        body.role,
        name=body.name,
        expires_in_days=body.expires_in_days,
        requests_per_minute=body.requests_per_minute,
        spend_per_day=body.spend_per_day,
    )
    return key_object(record, key=key)


@router.get("/keys", dependencies=[ADMIN], response_model=ListObject[KeyObject])
async def list_keys(runtime: RuntimeDep, caller: CallerDep) -> ListObject[KeyObject]:
    """The project's keys, revoked and expired ones included, oldest first."""
    records = await runtime.auth.list_keys(project_id=caller.project_id)
    return ListObject[KeyObject].page([key_object(r) for r in records], has_more=False)


@router.delete("/keys/{key_id}", dependencies=[ADMIN], response_model=KeyObject)
async def revoke_key(key_id: str, runtime: RuntimeDep, caller: CallerDep) -> KeyObject:
    """Revoke a key of the project; it stops working at once (on other processes within a
    second). Revoking it again changes nothing."""
    return key_object(await runtime.auth.revoke_key(key_id, project_id=caller.project_id))


@router.get("/projects", dependencies=[ADMIN], response_model=ListObject[ProjectObject])
async def list_projects(runtime: RuntimeDep, caller: CallerDep) -> ListObject[ProjectObject]:
    """The projects this key may see: its own (the CLI lists them all)."""
    found = await runtime.auth.list_projects(project_id=caller.project_id)
    return ListObject[ProjectObject].page([project_object(p) for p in found], has_more=False)


@router.post("/projects", dependencies=[ADMIN], response_model=ProjectObject)
async def create_project(body: ProjectCreate, runtime: RuntimeDep) -> ProjectObject:
    """A new project, with its first admin key in ``admin_key.key`` (shown once)."""
    project = await runtime.auth.create_project(body.name)
    key, record = await runtime.auth.create_key(project.id, Role.admin, name="first admin key")
    return project_object(project, admin_key=key_object(record, key=key))
