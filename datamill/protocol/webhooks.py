"""Webhook endpoints and deliveries (`/api/webhooks`): datamill's own shapes.

A message a receiver gets follows Standard Webhooks (standardwebhooks.com): headers
``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``, and a JSON body
``{"type", "timestamp", "data"}``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class WebhookCreate(BaseModel):
    """`POST /api/webhooks`: ``event_types`` empty (the default) means every type."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000)
    description: str | None = Field(default=None, max_length=200)
    event_types: list[str] = Field(default_factory=list, max_length=50)


class WebhookUpdate(BaseModel):
    """`PATCH /api/webhooks/{webhook_id}`: the fields given change."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=2000)
    description: str | None = Field(default=None, max_length=200)
    event_types: list[str] | None = Field(default=None, max_length=50)
    enabled: bool | None = None


class WebhookObject(BaseModel):
    """An endpoint. ``secret`` is shown when it is created and when it is rotated only."""

    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    id: str
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    created_at: int
    updated_at: int
    secret: str | None = None


class WebhookDeliveryObject(BaseModel):
    """One message to one endpoint: ``id`` is its ``webhook-id``."""

    object: Literal["webhook_delivery"] = "webhook_delivery"
    id: str
    endpoint_id: str
    event_type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: int | None
    last_status_code: int | None
    last_error: str | None
    created_at: int
    delivered_at: int | None
    payload: dict[str, Any]


class WebhookDeleted(BaseModel):
    id: str
    object: Literal["webhook_endpoint.deleted"] = "webhook_endpoint.deleted"
    deleted: bool = True
