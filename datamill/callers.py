"""Who is calling, and whether they may: what API routes and dashboard pages both ask.

It sits below both `api` and `web` (the app mounts the dashboard, so the dashboard must not
import the API). A key comes as `Authorization: Bearer` (what the openai SDK sends) or, from
a signed-in dashboard, as the session cookie; a change sent with the cookie must also carry
the page's CSRF token. `runtime.auth` (`AuthService`) decides who the key is.

Every route declares who may call it with one of the policies below in its
``dependencies``: `PUBLIC`, `VIEWER`, `REVIEWER`, `MEMBER` or `ADMIN` (a role or above).
`tests/api/test_authorization.py` fails a route that declares none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam

from datamill.auth.keys import csrf_token
from datamill.auth.policy import PUBLIC as PUBLIC_POLICY
from datamill.auth.policy import Policy
from datamill.auth.service import Caller
from datamill.errors import PermissionDenied
from datamill.protocol.access import Role
from datamill.runtime import Runtime

SESSION_COOKIE = "datamill_session"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CALLER = "datamill.caller"


def presented_key(request: Request) -> tuple[str | None, bool]:
    """The key a request presents, and whether it came in the session cookie."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        return (value.strip() or None) if scheme.lower() == "bearer" else None, False
    cookie = request.cookies.get(SESSION_COOKIE)
    return (cookie, True) if cookie else (None, False)


async def get_caller(request: Request) -> Caller:
    """The caller, or `Unauthenticated` (401) / `PermissionDenied` (403, a cookie-borne
    change without its CSRF token). Worked out once per request."""
    caller: Caller | None = request.scope.get(_CALLER)
    if caller is not None:
        return caller
    runtime: Runtime = request.app.state.runtime
    key, from_cookie = presented_key(request)
    caller = await runtime.auth.authenticate(key)
    if (
        from_cookie
        and key is not None
        and not caller.local
        and request.method not in _SAFE_METHODS
        and request.headers.get(CSRF_HEADER) != csrf_token(key)
    ):
        raise PermissionDenied(
            "this change came with the dashboard's session cookie but without its CSRF "
            f"token: send the page's token in the {CSRF_HEADER} header, or use an API key",
            code="csrf_failed",
        )
    request.scope[_CALLER] = caller
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_project_id(caller: CallerDep) -> str:
    """The caller's project: every object a route reads or writes belongs to it."""
    return caller.project_id


def _allow(role: Role) -> DependsParam:
    async def check(caller: CallerDep) -> Caller:
        if not caller.role.allows(role):
            raise PermissionDenied(
                f"this needs the {role.value} role or above; the key {caller.key_prefix}… "
                f"is a {caller.role.value} of project {caller.project_name}"
            )
        return caller

    check.__name__ = f"allow_{role.value}"
    return _declare(check, Policy(role))


async def _public() -> None:
    """Anyone may call (probes, sign-in, the API's description)."""


def _declare(check: Callable[..., Awaitable[Any]], policy: Policy) -> DependsParam:
    check.policy = policy  # type: ignore[attr-defined]
    dependency: DependsParam = Depends(check)
    return dependency


def policy_of(dependency: Callable[..., Any]) -> Policy | None:
    """The policy a dependency declares, if it is one of these."""
    found = getattr(dependency, "policy", None)
    return found if isinstance(found, Policy) else None


PUBLIC = _declare(_public, PUBLIC_POLICY)
VIEWER = _allow(Role.viewer)
REVIEWER = _allow(Role.reviewer)
MEMBER = _allow(Role.member)
ADMIN = _allow(Role.admin)


def route_policies(app: Any) -> dict[tuple[str, str], list[Policy]]:
    """Every route of the app as ``(METHOD, path)`` with the policies it declares (a route
    that declares none maps to an empty list). Mounted apps (the static assets) are not
    routes: what they serve is public by nature."""
    found: dict[tuple[str, str], list[Policy]] = {}
    for route in flat_routes(app.routes):
        dependant = getattr(route, "dependant", None)
        methods = getattr(route, "methods", None)
        if dependant is None or not methods:
            continue
        policies = list(dict.fromkeys(_policies(dependant)))
        for method in methods - {"HEAD"}:
            found[(method, route.path)] = policies
    return found


def flat_routes(routes: list[Any]) -> list[Any]:
    """Routes, with those of included routers (the dashboard's pages) listed one by one."""
    flat: list[Any] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        flat += flat_routes(included.routes) if included is not None else [route]
    return flat


def _policies(dependant: Any) -> list[Policy]:
    found = [policy_of(dependant.call)] if dependant.call is not None else []
    for sub in dependant.dependencies:
        found += _policies(sub)
    return [policy for policy in found if policy is not None]
