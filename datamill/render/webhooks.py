"""Webhook endpoints and their deliveries, as the API shows them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from datamill.protocol.webhooks import WebhookDeliveryObject, WebhookObject
from datamill.render.timestamps import timestamp

if TYPE_CHECKING:
    from datamill.storage.webhooks import DeliveryRecord, EndpointRecord


def webhook_object(record: EndpointRecord, *, with_secret: bool = False) -> WebhookObject:
    """``with_secret``: only when it was just made (created, rotated)."""
    return WebhookObject(
        id=record.id,
        url=record.url,
        description=record.description,
        event_types=record.event_types,
        enabled=record.enabled,
        disabled_reason=record.disabled_reason,
        created_at=int(record.created_at),
        updated_at=int(record.updated_at),
        secret=record.secret if with_secret else None,
    )


def delivery_object(record: DeliveryRecord) -> WebhookDeliveryObject:
    return WebhookDeliveryObject(
        id=record.id,
        endpoint_id=record.endpoint_id,
        event_type=record.event_type,
        status=record.status,
        attempts=record.attempts,
        next_attempt_at=timestamp(record.next_attempt_at) if record.status == "pending" else None,
        last_status_code=record.last_status_code,
        last_error=record.last_error,
        created_at=int(record.created_at),
        delivered_at=timestamp(record.delivered_at),
        payload=orjson.loads(record.payload),
    )
