"""Signatures as the Standard Webhooks reference library makes and checks them."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from datamill.webhooks.signing import new_secret, sign, signed_headers


def test_a_signature_is_the_reference_librarys():
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
    at = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    body = '{"type":"webhook.test","data":{"é":1}}'
    expected = Webhook(secret).sign("msg_1", at, body)
    assert sign(secret, message_id="msg_1", timestamp=int(at.timestamp()), body=body.encode()) == (
        expected
    )


def test_signed_headers_verify_and_a_changed_body_does_not():
    secret = new_secret()
    now = int(datetime.now(UTC).timestamp())
    body = b'{"type":"batch.completed","data":{}}'
    headers = signed_headers(secret, message_id="msg_2", timestamp=now, body=body)
    assert Webhook(secret).verify(body, headers) == {"type": "batch.completed", "data": {}}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
