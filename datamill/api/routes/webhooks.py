"""`/api/webhooks`: a project's webhook endpoints, their delivery log, replays and pings.

Admins create, change, delete, rotate, replay and ping (an endpoint's URL and secret decide
where the project's data goes); viewers read endpoints (never their secret) and the log. An
endpoint of another project answers 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from datamill.api.deps import RuntimeDep
from datamill.callers import ADMIN, VIEWER, CallerDep
from datamill.protocol.common import ListObject
from datamill.protocol.webhooks import (
    WebhookCreate,
    WebhookDeleted,
    WebhookDeliveryObject,
    WebhookObject,
    WebhookUpdate,
)
from datamill.render.webhooks import delivery_object, webhook_object

router = APIRouter(prefix="/api", tags=["webhooks"])


@router.post("/webhooks", dependencies=[ADMIN], response_model=WebhookObject)
async def create_webhook(
    body: WebhookCreate, runtime: RuntimeDep, caller: CallerDep
) -> WebhookObject:
    """A new endpoint of the caller's project, with its ``secret`` (shown this once)."""
    record = await runtime.webhooks.create(
        caller.project_id, url=body.url, description=body.description, event_types=body.event_types
    )
    return webhook_object(record, with_secret=True)


@router.get("/webhooks", dependencies=[VIEWER], response_model=ListObject[WebhookObject])
async def list_webhooks(runtime: RuntimeDep, caller: CallerDep) -> ListObject[WebhookObject]:
    """The project's endpoints, oldest first."""
    found = await runtime.webhooks.list_endpoints(caller.project_id)
    return ListObject[WebhookObject].page([webhook_object(r) for r in found], has_more=False)


@router.get("/webhooks/{webhook_id}", dependencies=[VIEWER], response_model=WebhookObject)
async def get_webhook(webhook_id: str, runtime: RuntimeDep, caller: CallerDep) -> WebhookObject:
    return webhook_object(await runtime.webhooks.get(caller.project_id, webhook_id))


@router.patch("/webhooks/{webhook_id}", dependencies=[ADMIN], response_model=WebhookObject)
async def update_webhook(
    webhook_id: str, body: WebhookUpdate, runtime: RuntimeDep, caller: CallerDep
) -> WebhookObject:
    """Change ``url``, ``description``, ``event_types`` or ``enabled`` (true enables an
    endpoint a 410 disabled)."""
    changes = body.model_dump(exclude_unset=True)
    for name in ("url", "event_types", "enabled"):
        if name in changes and changes[name] is None:
            del changes[name]
    record = await runtime.webhooks.update(caller.project_id, webhook_id, changes)
    return webhook_object(record)


@router.delete("/webhooks/{webhook_id}", dependencies=[ADMIN], response_model=WebhookDeleted)
async def delete_webhook(webhook_id: str, runtime: RuntimeDep, caller: CallerDep) -> WebhookDeleted:
    """Delete the endpoint and its delivery log; nothing more is sent to it."""
    await runtime.webhooks.delete(caller.project_id, webhook_id)
    return WebhookDeleted(id=webhook_id)


@router.post(
    "/webhooks/{webhook_id}/rotate-secret", dependencies=[ADMIN], response_model=WebhookObject
)
async def rotate_webhook_secret(
    webhook_id: str, runtime: RuntimeDep, caller: CallerDep
) -> WebhookObject:
    """A new secret, in ``secret`` (shown this once); attempts from now on are signed
    with it."""
    record = await runtime.webhooks.rotate_secret(caller.project_id, webhook_id)
    return webhook_object(record, with_secret=True)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    dependencies=[VIEWER],
    response_model=ListObject[WebhookDeliveryObject],
)
async def list_webhook_deliveries(
    webhook_id: str,
    runtime: RuntimeDep,
    caller: CallerDep,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ListObject[WebhookDeliveryObject]:
    """The endpoint's delivery log, newest first: each message, its status and attempts."""
    found, more = await runtime.webhooks.deliveries(
        caller.project_id, webhook_id, limit=limit, after=after
    )
    return ListObject[WebhookDeliveryObject].page(
        [delivery_object(r) for r in found], has_more=more
    )


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/replay",
    dependencies=[ADMIN],
    response_model=WebhookDeliveryObject,
)
async def replay_webhook_delivery(
    webhook_id: str, delivery_id: str, runtime: RuntimeDep, caller: CallerDep
) -> WebhookDeliveryObject:
    """Send the message again now (same ``webhook-id`` and body), with a fresh retry
    schedule."""
    record = await runtime.webhooks.replay(caller.project_id, webhook_id, delivery_id)
    return delivery_object(record)


@router.post(
    "/webhooks/{webhook_id}/test", dependencies=[ADMIN], response_model=WebhookDeliveryObject
)
async def test_webhook(
    webhook_id: str, runtime: RuntimeDep, caller: CallerDep
) -> WebhookDeliveryObject:
    """Send a ``webhook.test`` message to the endpoint now; returns its delivery."""
    return delivery_object(await runtime.webhooks.send_test(caller.project_id, webhook_id))
