"""`RequestGuard`: the checks every HTTP request passes before any route sees it.

- **Host.** The ``Host`` header must name this server (`GuardPolicy.allowed_hosts`): a web
  page that rebinds its own DNS name to 127.0.0.1 reaches the port, but under its own name,
  and is answered 421. The health probes (``/healthz``, ``/readyz``) answer any name: an
  orchestrator calls them by the pod's address.
- **Cross-site writes.** A state-changing request (POST, PUT, PATCH, DELETE) whose ``Origin``
  is another site's, or that a browser marks ``Sec-Fetch-Site: cross-site`` or ``same-site``,
  is answered 403. SDKs and curl send neither header.
- **Form bodies.** The bodies a browser may send anywhere without asking (``text/plain``, an
  urlencoded or a multipart form) are answered 415 on the JSON API's routes (all but the
  uploads, which take multipart). The dashboard's own form routes keep theirs.
- **Body size.** A body longer than its route's limit is answered 413: at once when its
  ``Content-Length`` says so; a chunked one is counted while it is read, and a JSON route's
  is read here (bounded) before the route sees it.

A pure ASGI middleware, a few microseconds a request: the headers are read into a dict once,
and nothing wraps the request or its answer unless its body comes without a length.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datamill.api.uploads import FORM_OVERHEAD
from datamill.errors import PayloadTooLarge
from datamill.settings import Settings

_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# What a browser sends cross-origin without a preflight, besides no Content-Type at all.
_FORM_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
_LOOPBACK = ("localhost", "127.0.0.1", "[::1]")
_ANY_ADDRESS = frozenset({"", "0.0.0.0", "::", "[::]"})
# An orchestrator's probes and scrapes name the pod's address, which no one lists; they tell
# nothing (/metrics takes an admin key where keys exist).
_PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
_HOSTS_SEEN = 1024
_GROUP_NAME = re.compile(r"\(\?P<\w+>")


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    """What `RequestGuard` allows. ``allowed_hosts`` holds lowercase names without a port
    (``[::1]`` for IPv6; ``*`` allows any); ``allowed_origins`` are ``scheme://host[:port]``
    other than the server's own. ``json``, ``uploads`` and ``gateway`` match the paths of the
    API's routes that take JSON, of those that take multipart bodies, and of the gateway's."""

    allowed_hosts: frozenset[str]
    allowed_origins: frozenset[str]
    max_body_bytes: int
    max_gateway_body_bytes: int
    max_file_bytes: int
    json: re.Pattern[str]
    uploads: re.Pattern[str]
    gateway: re.Pattern[str]


def guard_policy(settings: Settings, routes: Iterable[APIRoute]) -> GuardPolicy:
    """The policy of an app with these ``settings`` and API ``routes`` (not the dashboard's):
    those that declare a multipart body are the upload routes, the other state-changing ones
    take JSON, and those tagged ``gateway`` are the gateway's."""
    json, uploads, gateway = [], [], []
    for route in routes:
        body = (route.openapi_extra or {}).get("requestBody", {})
        if "multipart/form-data" in body.get("content", {}):
            uploads.append(route.path_regex)
        elif (route.methods or set()) & _UNSAFE:
            json.append(route.path_regex)
        if "gateway" in route.tags:
            gateway.append(route.path_regex)
    return GuardPolicy(
        allowed_hosts=allowed_hosts(settings.host, settings.allowed_hosts or ()),
        allowed_origins=frozenset(settings.allowed_origins or ()),
        max_body_bytes=settings.max_body_bytes,
        max_gateway_body_bytes=settings.max_gateway_body_bytes,
        max_file_bytes=settings.max_file_bytes,
        json=paths_pattern(json),
        uploads=paths_pattern(uploads),
        gateway=paths_pattern(gateway),
    )


def allowed_hosts(bind_host: str, configured: Iterable[str]) -> frozenset[str]:
    """The loopback names, the address the server binds (unless it is every address), and
    the ``configured`` names, lowercase and without a trailing dot."""
    names = {*_LOOPBACK, *(_host_name(name) for name in configured)}
    bind = bind_host.strip().lower()
    if bind not in _ANY_ADDRESS:
        names.add(f"[{bind}]" if ":" in bind and not bind.startswith("[") else bind)
    return frozenset(names)


def paths_pattern(regexes: Iterable[re.Pattern[str]]) -> re.Pattern[str]:
    """One pattern matching any of the routes' ``path_regex``es (none: matches nothing)."""
    # Their parameters' group names would repeat: the groups are left unnamed.
    parts = [f"(?:{_GROUP_NAME.sub('(?:', regex.pattern)})" for regex in regexes]
    return re.compile("|".join(parts) or r"(?!)")


def _host_name(host: str) -> str:
    """``Host`` without its port, lowercase, without a trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        name = host[: end + 1] if end > 0 else host
    else:
        name = host.partition(":")[0]
    return name.rstrip(".")


class RequestGuard:
    """See the module's docstring."""

    def __init__(self, app: ASGIApp, *, policy: GuardPolicy) -> None:
        self.app = app
        self.policy = policy
        self._any_host = "*" in policy.allowed_hosts
        # Host headers already found allowed, as sent (a name with its port): one set lookup
        # per request. Only allowed ones are kept, and at most _HOSTS_SEEN of them.
        self._hosts_seen: set[bytes] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"")
        path: str = scope["path"]
        if host not in self._hosts_seen and not self._host_allowed(host, path):
            await _refuse(
                send,
                421,
                f"this server does not answer to the host {host.decode('latin-1')!r}; add "
                "the name to DATAMILL_ALLOWED_HOSTS (comma-separated) if clients reach it "
                "that way",
                code="host_not_allowed",
            )
            return
        policy = self.policy
        if scope["method"] in _UNSAFE:
            origin = headers.get(b"origin")
            fetch_site = headers.get(b"sec-fetch-site")
            if origin is not None or fetch_site is not None:
                problem = self._cross_site(origin, fetch_site, host)
                if problem is not None:
                    await _refuse(send, 403, problem, code="cross_site_request")
                    return
            content_type = headers.get(b"content-type")
            if content_type is not None and content_type != b"application/json":
                media = content_type.partition(b";")[0].strip().lower().decode("latin-1")
                # The upload routes take multipart and say so themselves for anything else;
                # the dashboard's form routes take forms.
                if (
                    media in _FORM_TYPES
                    and policy.json.fullmatch(path)
                    and not policy.uploads.fullmatch(path)
                ):
                    await _refuse(
                        send,
                        415,
                        f"this route does not take {media} bodies: send JSON "
                        "(Content-Type: application/json)",
                        code="unsupported_media_type",
                    )
                    return
        length = headers.get(b"content-length")
        if length is not None:
            if length.isdigit() and len(length) < 19 and int(length) <= policy.max_body_bytes:
                await self.app(scope, receive, send)
            else:
                await self._check_length(length, path, scope, receive, send)
        elif b"transfer-encoding" in headers:
            await self._read_chunked(path, scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _host_allowed(self, host: bytes, path: str) -> bool:
        if self._any_host or path in _PROBES:
            return True
        if _host_name(host.decode("latin-1")) not in self.policy.allowed_hosts:
            return False
        if len(self._hosts_seen) < _HOSTS_SEEN:
            self._hosts_seen.add(host)
        return True

    def _cross_site(
        self, origin: bytes | None, fetch_site: bytes | None, host: bytes
    ) -> str | None:
        """Why a state-changing request is refused as cross-site, or None."""
        if origin is not None:
            text = origin.decode("latin-1").strip().lower()
            if text in self.policy.allowed_origins:
                return None
            if text.partition("://")[2] != host.decode("latin-1").lower():
                return (
                    f"a request from the web page of {text!r} may not change anything here; "
                    "use an API client, or list that origin in DATAMILL_ALLOWED_ORIGINS"
                )
        if fetch_site in (b"cross-site", b"same-site"):
            return (
                "a browser sent this request from another site; it may not change anything "
                "here (use an API client, or the dashboard of this server)"
            )
        return None

    def _limit(self, path: str) -> _Limit:
        """The body limit of the route at ``path``."""
        policy = self.policy
        if policy.uploads.fullmatch(path):
            # An upload's body holds the form's framing and fields besides the file.
            size = policy.max_file_bytes
            return _Limit(size + FORM_OVERHEAD, size, "DATAMILL_MAX_FILE_BYTES", upload=True)
        if policy.gateway.fullmatch(path):
            size = policy.max_gateway_body_bytes
            return _Limit(size, size, "DATAMILL_MAX_GATEWAY_BODY_BYTES", upload=False)
        size = policy.max_body_bytes
        return _Limit(size, size, "DATAMILL_MAX_BODY_BYTES", upload=False)

    async def _check_length(
        self, length: bytes, path: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if not length.isdigit():
            await _refuse(send, 400, "the Content-Length header is not a number", code=None)
            return
        limit = self._limit(path)
        size = int(length) if len(length) < 19 else None
        if size is None or size > limit.size:
            await _too_large(send, limit, size)
            return
        await self.app(scope, receive, send)

    async def _read_chunked(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        """A body without a length: counted as the upload routes read it; read here for
        every other route, up to its limit."""
        limit = self._limit(path)
        if limit.upload:
            await self.app(scope, _counting(receive, limit), send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before its body was sent
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit.size:
                await _too_large(send, limit, None)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replaying(b"".join(chunks), receive), send)


@dataclass(frozen=True, slots=True)
class _Limit:
    size: int  # the most bytes a body may have
    shown: int  # the limit as its setting says it
    setting: str
    upload: bool


def _counting(receive: Receive, limit: _Limit) -> Receive:
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit.size:
                # Raised inside the route's read of the form: its answer is a 413, and the
                # rest of the body is never read or spooled.
                raise PayloadTooLarge(
                    f"the upload is over the limit of {limit.shown} bytes ({limit.setting})",
                    param="file",
                    code="file_too_large",
                )
        return message

    return counted


def _replaying(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # a disconnect, for routes that watch for it

    return replay


async def _too_large(send: Send, limit: _Limit, length: int | None) -> None:
    size = f"{length} bytes" if length is not None else "longer"
    if limit.upload:
        message = f"the upload is {size}; the limit is {limit.shown} ({limit.setting})"
        await _refuse(send, 413, message, code="file_too_large", param="file")
        return
    message = f"the request body is {size}; this route takes at most {limit.shown} bytes"
    await _refuse(send, 413, f"{message} ({limit.setting})", code="request_too_large")


async def _refuse(
    send: Send, status: int, message: str, *, code: str | None, param: str | None = None
) -> None:
    """An answer in OpenAI's error shape, sent before the route (or the body) is read."""
    body = orjson.dumps(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": param,
                "code": code,
            }
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
