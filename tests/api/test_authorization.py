"""The authorization matrix, generated from the app's own route table: every route x every
role x own and foreign project x no, unknown, expired and revoked key, on both stores.

- A route that declares no policy (or more than one) fails.
- Without a valid key: 401 on every route that is not public.
- A role below the route's policy: 403; at or above it: never 401 or 403, never a 5xx.
- Another project's object answers 404 to every role on every route that names one (403
  where the role may not call the route at all), also under an object of the caller's own,
  and is left as it was; no answer to any role of one project (its lists included) ever
  holds an id of the other's objects.
- The event stream carries no event of another project's objects, to any role.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from datamill.auth.keys import key_hash, new_key, visible_prefix
from datamill.callers import route_policies
from datamill.ids import new_key_id
from datamill.protocol.access import Role
from datamill.storage import keys as key_store
from datamill.storage.keys import NewKey
from datamill.storage.schema import DEFAULT_PROJECT_ID
from datamill.web.pages import PAGES as DASHBOARD_PAGES
from tests.api.conftest import Api
from tests.api.sse import SseReader
from tests.api.test_generation import spec
from tests.helpers import chat_line, jsonl

SIM = [{"name": "sim", "provider": "sim", "model": "sim-model"}]
HOOK = "http://127.0.0.1:9/hook"  # never called: no worker runs here
ROLES = list(Role)
STREAMS = {("GET", "/api/events")}  # never ends by itself: tested on its own below
PARAMS = re.compile(r"\{(\w+)(?::path)?\}")
PAGES = {page.path for page in DASHBOARD_PAGES} | {"/docs"}  # HTML: they sign in, not 401
SHARED = {"model", "version"}  # path parameters the same in every project: no object of one


@dataclass
class Project:
    """One project's keys and objects, made through the API with its own keys."""

    id: str
    keys: dict[Role, str] = field(default_factory=dict)
    objects: dict[str, str] = field(default_factory=dict)  # path parameter -> an object id

    def headers(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


async def make_key(api: Api, project_id: str, role: Role, **fields: Any) -> tuple[str, str]:
    """A key stored as the service stores one (with any stored field set, e.g. a past
    ``expires_at``); returns (key, id)."""
    key = new_key()
    record = await key_store.create_key(
        api.runtime.database,
        NewKey(
            id=new_key_id(),
            project_id=project_id,
            role=role.value,
            name=None,
            prefix=visible_prefix(key),
            sha256=key_hash(key),
            created_at=api.runtime.clock.now(),
            expires_at=fields.get("expires_at"),
            requests_per_minute=None,
            spend_per_day=None,
        ),
    )
    return key, record.id


async def populate(api: Api, project: Project) -> None:
    """A file, a batch, a dataset with a sample, a generation job and a stored response."""
    client, headers = api.client, project.headers(Role.member)
    upload = await client.post(
        "/v1/files",
        files={"file": ("in.jsonl", jsonl([chat_line("a", model="sim-model")]))},
        data={"purpose": "batch"},
        headers=headers,
    )
    assert upload.status_code == 200, upload.text
    file_id = upload.json()["id"]
    batch = await client.post(
        "/v1/batches",
        json={
            "input_file_id": file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
        headers=headers,
    )
    assert batch.status_code == 200, batch.text
    dataset = await client.post("/api/datasets", json={"name": "faq"}, headers=headers)
    assert dataset.status_code == 200, dataset.text
    dataset_id = dataset.json()["id"]
    rows = jsonl([{"content": {"question": f"q of {project.id}?", "answer": "a"}}])
    imported = await client.post(
        f"/api/datasets/{dataset_id}/import", files={"file": ("s.jsonl", rows)}, headers=headers
    )
    assert imported.status_code == 200, imported.text
    listed = await client.get(f"/api/datasets/{dataset_id}/samples", headers=headers)
    job = await client.post("/api/generation/jobs", json={"spec": spec()}, headers=headers)
    assert job.status_code == 200, job.text
    answer = await client.post(
        "/v1/responses", json={"model": "sim-model", "input": "hi"}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    schema = await client.post(
        "/api/task-schemas", json={"name": f"qa-{project.id}"}, headers=headers
    )
    assert schema.status_code == 200, schema.text
    _, spare_key = await make_key(api, project.id, Role.viewer)
    admin = project.headers(Role.admin)
    webhook = await client.post("/api/webhooks", json={"url": HOOK}, headers=admin)
    assert webhook.status_code == 200, webhook.text
    ping = await client.post(f"/api/webhooks/{webhook.json()['id']}/test", headers=admin)
    assert ping.status_code == 200, ping.text
    project.objects = {
        "file_id": file_id,
        "batch_id": batch.json()["id"],
        "dataset_id": dataset_id,
        "sample_id": listed.json()["data"][0]["id"],
        "job_id": job.json()["id"],
        "response_id": answer.json()["id"],
        "key_id": spare_key,
        "model": "sim-model",
        "webhook_id": webhook.json()["id"],
        "delivery_id": ping.json()["id"],
        "version": "1",
        "name": schema.json()["name"],
    }


@dataclass
class World:
    api: Api
    own: Project
    foreign: Project
    expired: str
    revoked: str


@pytest.fixture
async def world(make_api) -> World:
    api = await make_api(SIM, webhooks_allow_private=True)
    beta = await api.runtime.auth.create_project("beta")
    own, foreign = Project(DEFAULT_PROJECT_ID), Project(beta.id)
    for project in (own, foreign):
        for role in ROLES:
            project.keys[role], _ = await make_key(api, project.id, role)
    for project in (own, foreign):
        await populate(api, project)
    expired, _ = await make_key(api, own.id, Role.admin, expires_at=api.runtime.clock.now() - 1)
    revoked, revoked_id = await make_key(api, own.id, Role.admin)
    await api.runtime.auth.revoke_key(revoked_id)
    return World(api, own, foreign, expired, revoked)


def routes(app: Any) -> list[tuple[str, str, Role | None]]:
    """(method, path, the role it needs; None: public) for every route but the stream."""
    found = []
    for (method, path), policies in sorted(route_policies(app).items()):
        assert len(policies) == 1, f"{method} {path} declares {policies or 'no policy'}"
        if (method, path) not in STREAMS:
            found.append((method, path, policies[0].role))
    return found


def server_error(response: httpx.Response, path: str) -> bool:
    """A 5xx, except /readyz's 503: no worker runs here, so it is rightly not ready."""
    return response.status_code >= 500 and not (path == "/readyz" and response.status_code == 503)


def url(path: str, objects: dict[str, str]) -> str:
    return PARAMS.sub(lambda m: objects[m.group(1)], path)


# Bodies a route accepts, so that what answers is the object lookup, not the body's check.
VALID_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/datasets/{dataset_id}/import"): {
        "files": {"file": ("s.jsonl", jsonl([{"content": {"q": "x"}}]))}
    },
    ("POST", "/api/datasets/{dataset_id}/import-label-studio"): {
        "files": {"file": ("ls.json", b"[]")}
    },
    ("POST", "/api/datasets/{dataset_id}/samples/delete"): {"json": {"all": True}},
    ("POST", "/api/datasets/{dataset_id}/samples/restore"): {"json": {"all": True}},
    ("PATCH", "/api/datasets/{dataset_id}"): {"json": {"description": "changed"}},
    ("POST", "/api/webhooks"): {"json": {"url": "http://127.0.0.1:9/hook"}},
    ("POST", "/api/task-schemas"): {"json": {"name": "added"}},
    ("PUT", "/api/task-schemas/{name}"): {"json": {"name": "renamed"}},
    ("PATCH", "/api/webhooks/{webhook_id}"): {"json": {"description": "changed"}},
    ("POST", "/api/datasets/{dataset_id}/samples"): {"json": {"content": {"q": "added"}}},
    ("POST", "/api/datasets/{dataset_id}/import-batch"): {"json": {"batch_id": "batch_nope"}},
    ("PATCH", "/api/datasets/{dataset_id}/samples/{sample_id}"): {"json": {"topic": "edited"}},
    ("PUT", "/api/datasets/{dataset_id}/review"): {"json": {"overlap": 1}},
    ("POST", "/api/datasets/{dataset_id}/review/assign"): {
        "json": {"reviewer": "local", "all": True}
    },
    ("POST", "/api/datasets/{dataset_id}/samples/{sample_id}/reviews"): {
        "json": {"answers": {"decision": "approve"}}
    },
    ("PUT", "/api/datasets/{dataset_id}/samples/{sample_id}/gold"): {
        "json": {"answers": {"decision": "approve"}}
    },
}


async def call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
    objects: dict[str, str],
) -> httpx.Response:
    body = VALID_BODIES.get((method, path)) or ({"json": {}} if method in {"POST", "PATCH"} else {})
    return await client.request(method, url(path, objects), headers=headers, **body)


def test_every_route_declares_exactly_one_policy(world: World):
    policies = route_policies(world.api.app)
    assert len(policies) >= 70
    for route, declared in policies.items():
        assert len(declared) == 1, f"{route}: {declared or 'no policy'}"


def test_a_route_without_a_policy_fails_the_check(world: World):
    app = world.api.app

    @app.get("/api/undeclared")
    async def undeclared() -> dict[str, str]:
        return {}

    with pytest.raises(AssertionError, match="GET /api/undeclared declares no policy"):
        routes(app)


async def test_no_valid_key_is_401_on_every_route_but_public_ones(world: World):
    client, objects = world.api.client, world.own.objects
    for method, path, needs in routes(world.api.app):
        for label, headers in {
            "no key": {},
            "unknown key": {"Authorization": f"Bearer {new_key()}"},
            "expired key": {"Authorization": f"Bearer {world.expired}"},
            "revoked key": {"Authorization": f"Bearer {world.revoked}"},
            "another scheme": {"Authorization": f"Basic {world.own.keys[Role.admin]}"},
        }.items():
            response = await call(client, method, path, headers, objects)
            where = f"{method} {path} with {label}"
            if needs is None:
                assert response.status_code not in (401, 403), where
                assert not server_error(response, path), where
            elif path in PAGES:  # a dashboard page sends the browser to sign in first
                assert response.status_code == 303, where
                assert response.headers["location"].startswith("/login?next="), where
            else:
                assert response.status_code == 401, (where, response.text)
                assert response.headers["www-authenticate"].startswith("Bearer"), where
                assert response.json()["error"]["code"].endswith("api_key"), where


async def test_each_role_may_call_exactly_what_its_policy_allows(world: World):
    client, own, foreign = world.api.client, world.own, world.foreign
    secrets = {v for k, v in foreign.objects.items() if k not in SHARED} | {foreign.id}
    # Roles from the lowest up, so that what the higher ones change (deletes, revocations)
    # comes after the lower ones were refused.
    for role in ROLES:
        for method, path, needs in routes(world.api.app):
            response = await call(client, method, path, own.headers(role), own.objects)
            where = f"{method} {path} as {role.value}"
            assert not server_error(response, path), (where, response.text)
            if needs is not None and not role.allows(needs):
                assert response.status_code == 403, (where, response.text)
                if path in PAGES:  # the page says which role it needs
                    assert f"needs the <strong>{needs.value}</strong> role" in response.text
                else:
                    assert response.json()["error"]["code"] == "insufficient_role", where
            else:
                assert response.status_code not in (401, 403), (where, response.text)
            leaked = [secret for secret in secrets if secret in response.text]
            assert not leaked, (where, leaked)


async def test_another_projects_objects_are_404_to_each_of_its_roles_and_left_alone(
    world: World,
):
    client, own, foreign = world.api.client, world.own, world.foreign
    before = await snapshot(client, foreign)
    secrets = {v for k, v in foreign.objects.items() if k not in SHARED} | {foreign.id}
    # Pages are shells that only echo their URL: the data they show comes from the API.
    named = [
        r
        for r in routes(world.api.app)
        if set(PARAMS.findall(r[1])) - SHARED and r[2] is not None and r[1] not in PAGES
    ]
    assert len(named) >= 60
    # Roles from the lowest up, as above: a change an admin wrongly made would come last.
    for role in ROLES:
        for method, path, needs in named:
            for objects in foreign_addresses(path, own.objects, foreign.objects):
                response = await call(client, method, path, own.headers(role), objects)
                where = f"{method} {url(path, objects)} as {role.value} of another project"
                assert needs is not None
                if role.allows(needs):
                    assert response.status_code == 404, (where, response.text)
                else:  # refused before any lookup, as in its own project
                    assert response.status_code == 403, (where, response.text)
                    assert response.json()["error"]["code"] == "insufficient_role", where
                assert set(response.json()) == {"error"}, (where, response.text)
                named_ids = [objects[n] for n in PARAMS.findall(path) if n not in SHARED]
                text = unasked(response, named_ids)
                leaked = [secret for secret in secrets if secret in text]
                assert not leaked, (where, leaked)
    assert await snapshot(client, foreign) == before


def unasked(response: httpx.Response, named: list[str]) -> str:
    """The response's text without what the request's path named: an error may echo it."""
    text = response.text
    for asked in sorted(named, key=len, reverse=True):
        text = text.replace(asked, "")
    return text


def foreign_addresses(
    path: str, own: dict[str, str], foreign: dict[str, str]
) -> list[dict[str, str]]:
    """The ways ``path`` can address another project's object: every object of that project,
    and, where the path names several, one of them under an object of the caller's own (a
    sample of theirs under a dataset of ours)."""
    named = [name for name in PARAMS.findall(path) if name not in SHARED]
    addresses = [{**own, **{name: foreign[name] for name in named}}]
    if len(named) > 1:
        addresses += [{**own, name: foreign[name]} for name in named]
    return addresses


async def snapshot(client: httpx.AsyncClient, project: Project) -> dict[str, Any]:
    """What the project's own admin sees of its objects (ignoring times that move)."""
    objects, headers = project.objects, project.headers(Role.admin)
    seen = {}
    for path in (
        "/v1/files/{file_id}",
        "/v1/batches/{batch_id}",
        "/api/datasets/{dataset_id}",
        "/api/datasets/{dataset_id}/samples/{sample_id}",
        "/api/generation/jobs/{job_id}",
        "/v1/responses/{response_id}",
    ):
        response = await client.get(url(path, objects), headers=headers)
        assert response.status_code == 200, (path, response.text)
        body = response.json()
        seen[path] = {k: body.get(k) for k in ("id", "status", "deleted_at", "bytes", "name")}
    keys = await client.get("/api/keys", headers=headers)
    seen["keys"] = sorted((k["id"], k["revoked_at"]) for k in keys.json()["data"])
    return seen


async def test_the_event_stream_carries_no_event_of_another_project(world: World, serve):
    client, own, foreign = world.api.client, world.own, world.foreign
    served = await serve(world.api)
    # Events so far: both projects' batches and jobs. Then one more batch of the own project,
    # the last event its stream must reach: a leak would show among those replayed before.
    last = await client.post(
        "/v1/batches",
        json={
            "input_file_id": await upload(client, own),
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
        headers=own.headers(Role.member),
    )
    last_id = last.json()["id"]
    await world.api.runtime.events.flush()
    theirs = {v for k, v in foreign.objects.items() if k not in SHARED} | {foreign.id}
    mine = {v for k, v in own.objects.items() if k not in SHARED} | {own.id, last_id}
    for role in ROLES:  # the stream is every role's: each sees its own project's alone
        ours = await replay(served, own.headers(role), until=last_id)
        assert any(own.objects["batch_id"] in str(e.data) for e in ours), role
        assert any(own.objects["job_id"] in str(e.data) for e in ours), role
        assert not [e for e in ours if any(secret in str(e.data) for secret in theirs)], role
        # The other project's sees its own and none of ours.
        others = await replay(served, foreign.headers(role), until=foreign.objects["job_id"])
        assert any(foreign.objects["batch_id"] in str(e.data) for e in others), role
        assert not [e for e in others if any(secret in str(e.data) for secret in mine)], role


async def replay(served: Any, headers: dict[str, str], *, until: str) -> list[Any]:
    """Every event the stream replays from the start, up to the first naming ``until``."""
    async with (
        served.client() as client,
        client.stream("GET", "/api/events?last_event_id=0", headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        return await SseReader(response).until(lambda frame: until in str(frame.data))


async def upload(client: httpx.AsyncClient, project: Project) -> str:
    response = await client.post(
        "/v1/files",
        files={"file": ("in.jsonl", jsonl([chat_line("b", model="sim-model")]))},
        data={"purpose": "batch"},
        headers=project.headers(Role.member),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def test_an_open_stream_ends_once_its_key_is_revoked(make_api, serve):
    api = await make_api(SIM)
    served = await serve(api)
    key, key_id = await make_key(api, DEFAULT_PROJECT_ID, Role.viewer)
    await api.runtime.auth.keys_exist()
    headers = {"Authorization": f"Bearer {key}"}

    async with (
        served.client() as client,
        client.stream("GET", "/api/events?topic=batch", headers=headers) as response,
    ):
        assert response.status_code == 200
        reader = SseReader(response)
        api.runtime.events.publish("batch", {"n": 1})
        await api.runtime.events.flush()
        assert (await reader.events(1))[0].data == {"n": 1}  # the key works: events come

        await api.runtime.auth.revoke_key(key_id)
        api.runtime.events.publish("batch", {"n": 2})
        await api.runtime.events.flush()

        assert await reader.ended(timeout=60)  # its next event ends it instead
