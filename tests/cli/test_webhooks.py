"""`datamill webhooks`: endpoints made, listed, pinged, replayed and deleted on the store."""

from __future__ import annotations

import json

from tests.cli.conftest import RunCli

ALLOW = {"DATAMILL_WEBHOOKS_ALLOW_PRIVATE": "true"}
URL = "http://127.0.0.1:9/hook"


def test_webhooks_from_the_cli(invoke: RunCli):
    refused = invoke("webhooks", "create", URL)
    assert refused.code != 0
    assert "loopback" in refused.stderr

    plain = invoke("webhooks", "create", URL, "--event-type", "batch.completed", env=ALLOW)
    assert plain.code == 0, plain.stderr
    assert plain.stdout.strip().startswith("whsec_")  # the secret alone on stdout
    assert "shown only now" in plain.stderr
    made = json.loads(invoke("webhooks", "create", URL, "--json", env=ALLOW).stdout)
    assert made["event_types"] == []

    listed = invoke("webhooks", "list")
    assert made["id"] in listed.stdout
    assert "batch.completed" in listed.stdout
    assert made["secret"] not in listed.stdout

    sent = invoke("webhooks", "test", made["id"])
    assert sent.code == 0, sent.stderr
    message = sent.stdout.strip()
    assert message.startswith("msg_")
    log = json.loads(invoke("webhooks", "deliveries", made["id"], "--json").stdout)
    assert [(d["id"], d["status"]) for d in log] == [(message, "pending")]
    replayed = json.loads(invoke("webhooks", "replay", made["id"], message, "--json").stdout)
    assert (replayed["id"], replayed["attempts"]) == (message, 0)

    missing = invoke("webhooks", "replay", made["id"], "msg_missing")
    assert missing.code != 0
    assert "no delivery msg_missing" in missing.stderr
    elsewhere = invoke("webhooks", "list", "--project", "nope")
    assert "no project 'nope'" in elsewhere.stderr

    assert invoke("webhooks", "delete", made["id"]).code == 0
    assert made["id"] not in invoke("webhooks", "list").stdout
