"""`datamill projects` and `datamill keys`, and what `serve` says and does about keys."""

from __future__ import annotations

import json
import signal

import pytest

from tests.cli.conftest import (
    RunCli,
    StartCli,
    StartServer,
    free_port,
    http_get,
    wait_until_healthy,
)

pytestmark = pytest.mark.slow


def test_keys_are_made_listed_and_revoked_from_the_cli(invoke: RunCli):
    made = invoke("projects", "create", "research")
    assert made.code == 0, made.stderr
    project_id = made.stdout.strip()
    assert project_id.startswith("proj_")
    assert "datamill keys create --project research" in made.stderr

    created = invoke(
        "keys",
        "create",
        "--project",
        "research",
        "--role",
        "viewer",
        "--expires",
        "7",
        "--name",
        "wall screen",
        "--json",
    )
    assert created.code == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["key"].startswith("dm-")
    assert (key["project"], key["role"], key["project_id"]) == ("research", "viewer", project_id)
    assert key["expires_at"] - key["created_at"] == pytest.approx(7 * 86400, abs=2)

    plain = invoke("keys", "create", "--project", "default", "--role", "admin")
    assert plain.code == 0, plain.stderr
    assert plain.stdout.strip().startswith("dm-")  # the key alone on stdout, for scripts
    assert "an admin key of project default" in plain.stderr
    assert "shown only now" in plain.stderr

    listed = invoke("keys", "list", "--project", "research")
    assert key["id"] in listed.stdout
    assert key["key"] not in listed.stdout  # never shown again
    assert "wall screen" in listed.stdout
    assert json.loads(invoke("keys", "list", "--json").stdout)[0]["key"] is None

    revoked = invoke("keys", "revoke", key["id"], "--json")
    assert json.loads(revoked.stdout)["revoked_at"] is not None
    assert "revoked" in invoke("keys", "list").stdout

    projects = json.loads(invoke("projects", "list", "--json").stdout)
    assert [p["name"] for p in projects] == ["default", "research"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["keys", "create", "--project", "nope", "--role", "admin"], "no project 'nope'"),
        (["keys", "create", "--project", "default", "--role", "owner"], "owner"),
        (["keys", "revoke", "key_missing"], "no API key 'key_missing'"),
        (["projects", "create", "bad name!"], "a project name is"),
    ],
)
def test_bad_arguments_say_what_is_wrong(invoke: RunCli, args: list[str], words: str):
    done = invoke(*args)

    assert done.code != 0
    assert words in done.stderr


def test_serve_beyond_loopback_without_a_key_refuses_to_start(run_cli: RunCli):
    done = run_cli("serve", "--host", "0.0.0.0", "--port", str(free_port()))

    assert done.code == 3, done.stderr
    assert "refusing to serve on 0.0.0.0 without API keys" in done.stderr
    assert "datamill keys create --project default --role admin" in done.stderr


def test_the_banner_says_local_mode_then_that_keys_are_required(
    start_server: StartServer, invoke: RunCli
):
    server = start_server()
    server.process.wait_for_output("stop")
    assert "local mode" in " ".join(server.process.stderr.split())
    assert http_get(f"{server.url}/v1/files")[0] == 200
    server.process.signal(signal.SIGTERM)
    assert server.process.wait().code == 0

    assert invoke("keys", "create", "--project", "default", "--role", "admin").code == 0
    server = start_server()
    server.process.wait_for_output("stop")

    assert "API keys required" in " ".join(server.process.stderr.split())
    assert http_get(f"{server.url}/v1/files")[0] == 401


def test_a_bootstrap_admin_key_lets_a_container_start_beyond_loopback(
    start_cli: StartCli, invoke: RunCli
):
    key = "dm-" + "b" * 40
    port = free_port()
    env = {"DATAMILL_BOOTSTRAP_ADMIN_KEY": key}
    server = start_cli("serve", "--host", "0.0.0.0", "--port", str(port), env=env)
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(server, url)
    server.wait_for_output("stop")

    assert "DATAMILL_BOOTSTRAP_ADMIN_KEY stored as the first admin key" in server.stderr
    assert http_get(f"{url}/v1/files")[0] == 401
    status, me = http_get(f"{url}/api/me", headers={"Authorization": f"Bearer {key}"})
    assert (status, me["role"], me["project"], me["local"]) == (200, "admin", "default", False)
    [stored] = json.loads(invoke("keys", "list", "--json").stdout)
    assert (stored["role"], stored["project"], stored["prefix"]) == ("admin", "default", key[:11])
    server.signal(signal.SIGTERM)
    server.wait()

    # Once a key exists the variable is ignored: another value makes no second key.
    other = start_cli(
        "serve", "--port", str(free_port()), env={"DATAMILL_BOOTSTRAP_ADMIN_KEY": "dm-" + "c" * 40}
    )
    other.wait_for_output("stop")
    assert "API keys required" in other.stderr
    assert len(json.loads(invoke("keys", "list", "--json").stdout)) == 1
