"""API keys, roles, projects and the caller (`/api/keys`, `/api/projects`, `/api/me`).

Roles are ranked: each may do what the ones below it may. ``viewer`` reads; ``reviewer``
also reviews datasets (nothing that spends money); ``member`` also uploads, runs batches
and generation and calls the gateway; ``admin`` also manages keys and projects.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Role(StrEnum):
    viewer = "viewer"
    reviewer = "reviewer"
    member = "member"
    admin = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what ``needed`` may."""
        return self.rank >= needed.rank


_RANKS = {role: rank for rank, role in enumerate(Role)}


class KeyCreate(BaseModel):
    """`POST /api/keys`: a key of the caller's own project."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    name: str | None = Field(default=None, max_length=200)
    expires_in_days: float | None = Field(default=None, gt=0, le=36_500)
    requests_per_minute: int | None = Field(default=None, ge=1)
    spend_per_day: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class ProjectCreate(BaseModel):
    """`POST /api/projects`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)


class KeyObject(BaseModel):
    """An API key as listed: never the key itself, except once in ``key`` when created."""

    object: Literal["api_key"] = "api_key"
    id: str
    project: str  # the project's name
    project_id: str
    role: Role
    name: str | None
    prefix: str  # the key's first characters, to tell keys apart
    created_at: int
    expires_at: int | None
    revoked_at: int | None
    last_used_at: int | None
    requests_per_minute: int | None
    spend_per_day: float | None
    key: str | None = None  # only in the answer that created it


class ProjectObject(BaseModel):
    object: Literal["project"] = "project"
    id: str
    name: str
    created_at: int
    admin_key: KeyObject | None = None  # only when created through the API: its first key


class CallerObject(BaseModel):
    """`GET /api/me`: who the request's key is, and what its role may do."""

    object: Literal["caller"] = "caller"
    project: str
    project_id: str
    role: Role
    key_id: str | None  # None in local mode
    key_prefix: str | None
    local: bool  # local mode: no key exists and the server is bound to loopback
    may: list[Role]  # the roles whose actions this caller may take
