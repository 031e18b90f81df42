"""API keys, projects and the caller, as the API and the CLI show them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from datamill.protocol.access import CallerObject, KeyObject, ProjectObject, Role
from datamill.render.timestamps import timestamp

if TYPE_CHECKING:
    from datamill.storage.keys import KeyRecord
    from datamill.storage.projects import ProjectRecord


def key_object(record: KeyRecord, *, key: str | None = None) -> KeyObject:
    """``key``: the key itself, given only when it was just created."""
    return KeyObject(
        id=record.id,
        project=record.project_name,
        project_id=record.project_id,
        role=Role(record.role),
        name=record.name,
        prefix=record.prefix,
        created_at=int(record.created_at),
        expires_at=timestamp(record.expires_at),
        revoked_at=timestamp(record.revoked_at),
        last_used_at=timestamp(record.last_used_at),
        requests_per_minute=record.requests_per_minute,
        spend_per_day=record.spend_per_day,
        key=key,
    )


def project_object(record: ProjectRecord, *, admin_key: KeyObject | None = None) -> ProjectObject:
    return ProjectObject(
        id=record.id, name=record.name, created_at=int(record.created_at), admin_key=admin_key
    )


class CallerView(Protocol):
    """A caller as `auth.service.Caller` holds it."""

    @property
    def project_id(self) -> str: ...
    @property
    def project_name(self) -> str: ...
    @property
    def role(self) -> Role: ...
    @property
    def key_id(self) -> str | None: ...
    @property
    def key_prefix(self) -> str | None: ...
    @property
    def local(self) -> bool: ...


def caller_object(caller: CallerView) -> CallerObject:
    return CallerObject(
        project=caller.project_name,
        project_id=caller.project_id,
        role=caller.role,
        key_id=caller.key_id,
        key_prefix=caller.key_prefix,
        local=caller.local,
        may=[role for role in Role if caller.role.allows(role)],
    )
