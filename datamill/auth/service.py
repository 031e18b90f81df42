"""`AuthService`: keys and projects made, listed and revoked, and every request's key checked.

Local mode: while no key was ever created and the server is bound to loopback, every
request is the admin of the default project, with or without a key (SDKs always send one).
The first key created ends local mode for good: revoking every key does not open the
server again. Bound to any other address with no key, every request is refused (and
`datamill serve` refuses to start).

A checked key is kept for `CACHE_SECONDS` and then refreshed beside the requests that use
it, so a key revoked by another process stops working about a second later; one revoked
through this process stops at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import re
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from datamill.auth.keys import key_hash, new_key, visible_prefix
from datamill.clock import Clock
from datamill.errors import (
    Conflict,
    InvalidRequest,
    KeyLimitExceeded,
    NotFound,
    Unauthenticated,
)
from datamill.ids import new_key_id, new_project_id
from datamill.protocol.access import Role
from datamill.storage import keys as key_store
from datamill.storage import projects as project_store
from datamill.storage.database import Database
from datamill.storage.keys import KeyRecord, KeyTaken, NewKey
from datamill.storage.projects import ProjectNameTaken, ProjectRecord
from datamill.storage.schema import DEFAULT_PROJECT_ID

log = logging.getLogger("datamill.auth")

CACHE_SECONDS = 1.0
STALE_SECONDS = 5.0  # a cached key older than CACHE_SECONDS is refreshed beside the request
TOUCH_SECONDS = 60.0  # last_used_at is written at most this often per key
SPEND_WINDOW = 86_400.0
_CACHE_LIMIT = 10_000
_PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
FIRST_KEY_HINT = "datamill keys create --project default --role admin"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: a project, a role, and the key (None in local mode)."""

    project_id: str
    role: Role
    key_id: str | None = None
    project_name: str = "default"
    key_prefix: str | None = None
    requests_per_minute: int | None = None
    spend_per_day: float | None = None
    expires_at: float | None = None

    @property
    def local(self) -> bool:
        return self.key_id is None


LOCAL_CALLER = Caller(project_id=DEFAULT_PROJECT_ID, role=Role.admin)


def is_loopback(host: str) -> bool:
    """Whether an address to bind is loopback only (``localhost`` counts)."""
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(slots=True)
class _Cached:
    record: KeyRecord
    fetched: float


class AuthService:
    def __init__(self, database: Database, clock: Clock, *, loopback: bool) -> None:
        self._database = database
        self._clock = clock
        self.loopback = loopback
        self._keys_exist = False
        self._keys_checked = -math.inf
        self._cache: dict[str, _Cached] = {}
        self._refreshing: dict[str, asyncio.Task[KeyRecord | None]] = {}
        self._epoch = 0  # moved by a revocation: a read begun before it is not cached
        self._touched: dict[str, float] = {}
        self._requests: dict[str, deque[float]] = {}
        # key id -> (spent, when the oldest of it was spent, when read)
        self._spend: dict[str, tuple[float, float | None, float]] = {}

    # -- modes -------------------------------------------------------------------------

    async def keys_exist(self) -> bool:
        """Whether any key was ever created (checked at most once per `CACHE_SECONDS`)."""
        if self._keys_exist:
            return True
        now = self._clock.monotonic()
        if now - self._keys_checked >= CACHE_SECONDS:
            self._keys_checked = now
            self._keys_exist = await key_store.any_keys(self._database)
        return self._keys_exist

    async def local_mode(self) -> bool:
        return self.loopback and not await self.keys_exist()

    # -- checking a request ------------------------------------------------------------

    async def authenticate(self, key: str | None) -> Caller:
        """The caller a request's key (or its absence) makes, or `Unauthenticated`."""
        if not await self.keys_exist():
            if self.loopback:
                return LOCAL_CALLER
            raise Unauthenticated(
                "no API key exists yet and this server is not bound to loopback: create the "
                f"first admin key with `{FIRST_KEY_HINT}`",
                code="no_api_keys",
            )
        if not key:
            raise Unauthenticated(
                "this server needs an API key: send it as `Authorization: Bearer <key>` "
                "(the openai SDK's api_key); an admin creates keys with `datamill keys create`",
                code="missing_api_key",
            )
        record = await self._lookup(key)
        if record is None:
            raise Unauthenticated(
                "the API key is not valid: check it was copied whole (keys are shown once, "
                "when created)"
            )
        now = self._clock.now()
        if record.revoked_at is not None:
            raise Unauthenticated(
                f"the API key {record.prefix}… was revoked: ask an admin for a new one",
                code="revoked_api_key",
            )
        if record.expires_at is not None and record.expires_at <= now:
            raise Unauthenticated(
                f"the API key {record.prefix}… expired at {_iso(record.expires_at)}: ask an "
                "admin for a new one",
                code="expired_api_key",
            )
        if now - self._touched.get(record.id, -math.inf) >= TOUCH_SECONDS:
            self._touched[record.id] = now
            await key_store.touch_key(self._database, record.id, now=now)
        return Caller(
            project_id=record.project_id,
            role=Role(record.role),
            key_id=record.id,
            project_name=record.project_name,
            key_prefix=record.prefix,
            requests_per_minute=record.requests_per_minute,
            spend_per_day=record.spend_per_day,
            expires_at=record.expires_at,
        )

    async def still_valid(self, key: str | None) -> bool:
        """Whether ``key`` would still be let in (for what outlives its request: a stream)."""
        try:
            await self.authenticate(key)
        except Unauthenticated:
            return False
        return True

    async def _lookup(self, key: str) -> KeyRecord | None:
        """The key's record: from the cache while under `CACHE_SECONDS` old; a little older
        (under `STALE_SECONDS`), from the cache too while one refresh reads the store beside
        the request (a read on the request path put milliseconds on the gateway's p99 once a
        second); else read now."""
        digest = key_hash(key)
        cached = self._cache.get(digest)
        if cached is not None:
            age = self._clock.monotonic() - cached.fetched
            if age < CACHE_SECONDS:
                return cached.record
            if age < STALE_SECONDS:
                self._refresh_soon(digest)
                return cached.record
        return await self._fetch(digest)

    def _refresh_soon(self, digest: str) -> None:
        if digest in self._refreshing:
            return
        task = asyncio.get_running_loop().create_task(self._fetch(digest), name="key-refresh")
        self._refreshing[digest] = task
        task.add_done_callback(lambda done: self._refreshed(digest, done))

    def _refreshed(self, digest: str, done: asyncio.Task[KeyRecord | None]) -> None:
        self._refreshing.pop(digest, None)
        if not done.cancelled() and done.exception() is not None:
            # The next request past STALE_SECONDS reads the store itself, and says so.
            log.debug("could not refresh an API key: %s", done.exception())

    async def _fetch(self, digest: str) -> KeyRecord | None:
        epoch = self._epoch
        record = await key_store.find_key(self._database, digest)
        if epoch != self._epoch:  # a key was revoked here meanwhile: keep nothing read before
            return record
        if record is None:
            self._cache.pop(digest, None)
            return None
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[digest] = _Cached(record, self._clock.monotonic())
        return record

    # -- limits --------------------------------------------------------------------------

    async def check_limits(self, caller: Caller) -> None:
        """`KeyLimitExceeded` when the caller's key is over its request or spend limit.
        Called by what spends: gateway calls and batch creation."""
        if caller.key_id is None:
            return
        now = self._clock.now()
        if caller.requests_per_minute is not None:
            self._count_request(caller.key_id, caller.requests_per_minute, now)
        if caller.spend_per_day is not None:
            await self._check_spend(caller.key_id, caller.spend_per_day, now)

    def _count_request(self, key_id: str, limit: int, now: float) -> None:
        window = self._requests.setdefault(key_id, deque())
        while window and window[0] <= now - 60.0:
            window.popleft()
        if len(window) >= limit:
            raise KeyLimitExceeded(
                f"this API key may make {limit} requests per minute; try again in a moment",
                code="key_requests_per_minute",
                retry_after=window[0] + 60.0 - now,
            )
        window.append(now)

    async def _check_spend(self, key_id: str, limit: float, now: float) -> None:
        spent, earliest, read_at = self._spend.get(key_id, (0.0, None, -math.inf))
        if now - read_at >= CACHE_SECONDS:
            spent, earliest = await key_store.key_spend(
                self._database, key_id, since=now - SPEND_WINDOW
            )
            self._spend[key_id] = (spent, earliest, now)
        if spent < limit:
            return
        wait = (earliest + SPEND_WINDOW - now) if earliest is not None else 60.0
        raise KeyLimitExceeded(
            f"this API key spent ${spent:.4f} of its ${limit:g} per 24 hours; spending "
            "resumes as older spend leaves the window",
            code="key_spend_per_day",
            retry_after=max(1.0, wait),
        )

    # -- projects ------------------------------------------------------------------------

    async def create_project(self, name: str) -> ProjectRecord:
        if not _PROJECT_NAME.match(name):
            raise InvalidRequest(
                "a project name is 1-64 letters, digits, '.', '_' or '-', starting with a "
                "letter or digit",
                param="name",
                code="invalid_value",
            )
        try:
            return await project_store.create_project(
                self._database, id=new_project_id(), name=name, now=self._clock.now()
            )
        except ProjectNameTaken:
            raise Conflict(
                f"a project named '{name}' exists", param="name", code="project_exists"
            ) from None

    async def list_projects(self, *, project_id: str | None = None) -> list[ProjectRecord]:
        found = await project_store.list_projects(self._database)
        return [p for p in found if project_id is None or p.id == project_id]

    async def find_project(self, name_or_id: str) -> ProjectRecord:
        project = await project_store.get_project(
            self._database, name=name_or_id
        ) or await project_store.get_project(self._database, id=name_or_id)
        if project is None:
            raise NotFound(
                f"no project '{name_or_id}': list them with `datamill projects list`",
                param="project",
            )
        return project

    # -- keys ------------------------------------------------------------------------------

    async def bootstrap(self, key: str) -> bool:
        """Store ``key`` as the default project's first admin key, if no key exists yet (a
        container's first start, the key from a Secret); whether it was stored now."""
        if await self.keys_exist():
            return False
        try:
            await self.create_key(
                DEFAULT_PROJECT_ID, Role.admin, name="bootstrap admin key", given=key
            )
        except KeyTaken:  # another server stored the same key first
            return False
        return True

    async def create_key(
        self,
        project_id: str,
        role: Role,
        *,
        name: str | None = None,
        expires_in_days: float | None = None,
        requests_per_minute: int | None = None,
        spend_per_day: float | None = None,
        given: str | None = None,
    ) -> tuple[str, KeyRecord]:
        """A new key (the string, shown once) and what is stored of it. ``given``: store
        that key instead of making one (the bootstrap key)."""
        if expires_in_days is not None and not (0 < expires_in_days <= 36_500):
            raise InvalidRequest(
                "expires_in_days must be more than 0 and at most 36500",
                param="expires_in_days",
                code="invalid_value",
            )
        if requests_per_minute is not None and requests_per_minute < 1:
            raise InvalidRequest(
                "requests_per_minute must be at least 1",
                param="requests_per_minute",
                code="invalid_value",
            )
        if spend_per_day is not None and not (spend_per_day >= 0 and math.isfinite(spend_per_day)):
            raise InvalidRequest(
                "spend_per_day must be a number of USD, 0 or more",
                param="spend_per_day",
                code="invalid_value",
            )
        key = given or new_key()
        now = self._clock.now()
        record = await key_store.create_key(
            self._database,
            NewKey(
                id=new_key_id(),
                project_id=project_id,
                role=role.value,
                name=name,
                prefix=visible_prefix(key),
                sha256=key_hash(key),
                created_at=now,
                expires_at=now + expires_in_days * 86_400 if expires_in_days else None,
                requests_per_minute=requests_per_minute,
                spend_per_day=spend_per_day,
            ),
        )
        self._keys_exist = True
        return key, record

    async def list_keys(self, *, project_id: str | None = None) -> list[KeyRecord]:
        return await key_store.list_keys(self._database, project_id=project_id)

    async def revoke_key(self, key_id: str, *, project_id: str | None = None) -> KeyRecord:
        """Revoke a key (of this project only, if given); it stops working at once here."""
        found = await key_store.get_key(self._database, key_id)
        if found is None or (project_id is not None and found.project_id != project_id):
            raise NotFound(f"no API key '{key_id}'", param="key_id")
        record = await key_store.revoke_key(self._database, key_id, now=self._clock.now())
        assert record is not None
        self._epoch += 1
        self._cache = {d: c for d, c in self._cache.items() if c.record.id != key_id}
        return record


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")
