"""API keys through the API on both stores: local mode, keys made and revoked by an admin,
expiry, a project of its own, and the per-key request and spend limits."""

from __future__ import annotations

from functools import partial
from typing import Any

import httpx
import pytest

from tests.api.conftest import TERMINAL, Api, assert_error
from tests.engine.conftest import OffsetClock, wait_until
from tests.helpers import CHAT as CHAT_ENDPOINT
from tests.helpers import chat_line, jsonl, running_worker

SIM = [{"name": "sim", "provider": "sim", "model": "sim-model", "input_price": 1000.0}]
CHAT = {"model": "sim-model", "messages": [{"role": "user", "content": "hi"}]}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def first_admin(api: Api, project: str = "default") -> str:
    """The first admin key, made as `datamill keys create` makes it."""
    found = await api.runtime.auth.find_project(project)
    key, _ = await api.runtime.auth.create_key(found.id, role=_role("admin"))
    return key


def _role(name: str) -> Any:
    from datamill.protocol.access import Role

    return Role(name)


async def new_key(api: Api, admin: str, **body: Any) -> dict[str, Any]:
    response = await api.client.post("/api/keys", json=body, headers=bearer(admin))
    assert response.status_code == 200, response.text
    return response.json()


async def test_local_mode_needs_no_key_until_the_first_one_exists(make_api):
    api = await make_api(SIM)

    me = await api.client.get("/api/me", headers=bearer("sk-anything"))  # SDKs always send one
    assert me.status_code == 200
    assert (me.json()["local"], me.json()["role"], me.json()["project"]) == (
        True,
        "admin",
        "default",
    )

    admin = await first_admin(api)
    await api.runtime.auth.keys_exist()  # the cache would notice within a second anyway

    assert_error(await api.client.get("/v1/files"), 401, param=None, code="missing_api_key")
    me = await api.client.get("/api/me", headers=bearer(admin))
    assert (me.json()["local"], me.json()["role"], me.json()["may"]) == (
        False,
        "admin",
        ["viewer", "reviewer", "member", "admin"],
    )


async def test_a_server_beyond_loopback_without_keys_refuses_every_request(make_api):
    api = await make_api(SIM, host="0.0.0.0")

    response = await api.client.get("/v1/batches")

    assert_error(response, 401, param=None, code="no_api_keys")
    assert (
        "datamill keys create --project default --role admin" in response.json()["error"]["message"]
    )
    assert (await api.client.get("/healthz")).status_code == 200


async def test_an_admin_makes_lists_and_revokes_keys_of_its_project(make_api):
    api = await make_api(SIM)
    admin = await first_admin(api)

    made = await new_key(api, admin, role="member", name="ci", expires_in_days=30)
    assert made["key"].startswith("dm-")
    assert made["key"].startswith(made["prefix"])
    assert (made["role"], made["project"], made["name"]) == ("member", "default", "ci")
    assert made["expires_at"] - made["created_at"] == pytest.approx(30 * 86400, abs=2)

    listed = await api.client.get("/api/keys", headers=bearer(admin))
    assert [k["id"] for k in listed.json()["data"]][-1] == made["id"]
    assert all(k["key"] is None for k in listed.json()["data"])  # never shown again
    assert made["key"] not in listed.text

    assert (await api.client.get("/v1/files", headers=bearer(made["key"]))).status_code == 200
    revoked = await api.client.delete(f"/api/keys/{made['id']}", headers=bearer(admin))
    assert revoked.json()["revoked_at"] is not None
    assert_error(
        await api.client.get("/v1/files", headers=bearer(made["key"])),
        401,
        param=None,
        code="revoked_api_key",
    )


async def test_keys_of_another_project_are_out_of_reach(make_api):
    api = await make_api(SIM)
    admin = await first_admin(api)

    created = await api.client.post("/api/projects", json={"name": "beta"}, headers=bearer(admin))
    assert created.status_code == 200, created.text
    beta_admin = created.json()["admin_key"]["key"]
    beta_key = await new_key(api, beta_admin, role="viewer")

    assert_error(
        await api.client.delete(f"/api/keys/{beta_key['id']}", headers=bearer(admin)),
        404,
        param="key_id",
    )
    assert beta_key["id"] not in (await api.client.get("/api/keys", headers=bearer(admin))).text
    projects = await api.client.get("/api/projects", headers=bearer(beta_admin))
    assert [p["name"] for p in projects.json()["data"]] == ["beta"]
    assert_error(
        await api.client.post("/api/projects", json={"name": "beta"}, headers=bearer(admin)),
        409,
        param="name",
        code="project_exists",
    )


async def test_an_expired_key_is_refused(make_api):
    clock = OffsetClock()
    api = await make_api(SIM, clock=clock)
    admin = await first_admin(api)
    short = await new_key(api, admin, role="viewer", expires_in_days=0.0001)  # 8.6 s

    assert (await api.client.get("/v1/files", headers=bearer(short["key"]))).status_code == 200
    clock.jump(10)

    assert_error(
        await api.client.get("/v1/files", headers=bearer(short["key"])),
        401,
        param=None,
        code="expired_api_key",
    )


@pytest.mark.parametrize(
    "body",
    [
        {"role": "owner"},
        {"role": "member", "expires_in_days": 0},
        {"role": "member", "requests_per_minute": 0},
        {"role": "member", "spend_per_day": -1},
        {"role": "member", "scopes": ["all"]},
    ],
)
async def test_bad_key_requests_are_400s(make_api, body):
    api = await make_api(SIM)
    admin = await first_admin(api)

    response = await api.client.post("/api/keys", json=body, headers=bearer(admin))

    assert response.status_code == 400, response.text


async def test_a_keys_request_limit_answers_429_with_retry_after(make_api):
    clock = OffsetClock()
    api = await make_api(SIM, clock=clock)
    admin = await first_admin(api)
    limited = await new_key(api, admin, role="member", requests_per_minute=3)

    for _ in range(3):
        answer = await api.client.post(
            "/v1/chat/completions", json=CHAT, headers=bearer(limited["key"])
        )
        assert answer.status_code == 200, answer.text
    refused = await api.client.post(
        "/v1/chat/completions", json=CHAT, headers=bearer(limited["key"])
    )

    assert_error(refused, 429, param=None, code="key_requests_per_minute")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # Batch creation counts too; another key is not limited.
    refused = await api.client.post(
        "/v1/batches",
        json={
            "input_file_id": "file-x",
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
        headers=bearer(limited["key"]),
    )
    assert_error(refused, 429, param=None, code="key_requests_per_minute")
    answer = await api.client.post("/v1/chat/completions", json=CHAT, headers=bearer(admin))
    assert answer.status_code == 200
    clock.jump(61)
    answer = await api.client.post(
        "/v1/chat/completions", json=CHAT, headers=bearer(limited["key"])
    )
    assert answer.status_code == 200


async def test_a_keys_spend_limit_answers_429_once_spent(make_api):
    clock = OffsetClock()
    api = await make_api(SIM, clock=clock)
    admin = await first_admin(api)
    limited = await new_key(api, admin, role="member", spend_per_day=0.001)

    answer = await api.client.post(
        "/v1/chat/completions", json=CHAT, headers=bearer(limited["key"])
    )
    assert answer.status_code == 200, answer.text
    await api.runtime.call_log.flush()  # the call's cost, written
    clock.jump(2)  # past the spend cache

    refused = await api.client.post(
        "/v1/chat/completions", json=CHAT, headers=bearer(limited["key"])
    )
    assert_error(refused, 429, param=None, code="key_spend_per_day")
    assert int(refused.headers["retry-after"]) > 86_000  # the spend leaves the window in a day
    usage = await api.client.get("/api/usage", params={"group_by": "source"}, headers=bearer(admin))
    assert usage.json()["total"]["cost_usd"] > 0.001


async def test_a_keys_batches_spend_limits_its_next_batch(make_api):
    clock = OffsetClock()
    api = await make_api(SIM, clock=clock)
    admin = await first_admin(api)
    limited = await new_key(api, admin, role="member", spend_per_day=0.001)
    roomy = await new_key(api, admin, role="member", spend_per_day=100.0)

    async def create_batch(key: str) -> httpx.Response:
        upload = await api.client.post(
            "/v1/files",
            files={"file": ("in.jsonl", jsonl([chat_line("a", model="sim-model")]))},
            data={"purpose": "batch"},
            headers=bearer(key),
        )
        assert upload.status_code == 200, upload.text
        body = {
            "input_file_id": upload.json()["id"],
            "endpoint": CHAT_ENDPOINT,
            "completion_window": "24h",
        }
        return await api.client.post("/v1/batches", json=body, headers=bearer(key))

    async def finished(batch_id: str, key: str) -> bool:
        batch = await api.client.get(f"/v1/batches/{batch_id}", headers=bearer(key))
        return batch.json()["status"] in TERMINAL

    # Both keys spend through a batch run by the worker; only the limited one reaches its limit.
    spent = {}
    for key in (limited["key"], roomy["key"]):
        created = await create_batch(key)
        assert created.status_code == 200, created.text
        spent[key] = created.json()["id"]
    async with running_worker(api.runtime):
        for key, batch_id in spent.items():
            await wait_until(partial(finished, batch_id, key))
    for key, batch_id in spent.items():
        batch = (await api.client.get(f"/v1/batches/{batch_id}", headers=bearer(key))).json()
        assert batch["status"] == "completed", batch
        assert 0.001 < batch["datamill"]["cost_usd"] < 100.0
    clock.jump(2)  # past the spend cache

    refused = await create_batch(limited["key"])

    assert_error(refused, 429, param=None, code="key_spend_per_day")
    assert int(refused.headers["retry-after"]) > 86_000  # the spend leaves the window in a day
    allowed = await create_batch(roomy["key"])
    assert allowed.status_code == 200, allowed.text
