"""Webhook endpoints and their delivery log, for the API: what an admin creates, changes,
deletes, replays and pings. Every call names the caller's project; an endpoint of another
project is not found."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from datamill.clock import Clock
from datamill.errors import InvalidRequest, NotFound
from datamill.ids import new_webhook_id, new_webhook_message_id
from datamill.settings import Settings
from datamill.storage import webhooks as repo
from datamill.storage.database import Database
from datamill.storage.webhooks import DeliveryRecord, EndpointRecord, NewDelivery
from datamill.webhooks.addresses import AddressRefused, check_url
from datamill.webhooks.messages import WebhookEventType, body
from datamill.webhooks.signing import new_secret

_MAX_URL = 2000


class WebhookService:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        settings: Settings,
        *,
        on_due: Callable[[], None] = lambda: None,
    ) -> None:
        self.database = database
        self.clock = clock
        self.settings = settings
        # Wakes this process's dispatcher when a delivery is due now (a replay, a ping).
        self.on_due = on_due

    async def _checked_url(self, url: str) -> str:
        if len(url) > _MAX_URL:
            raise InvalidRequest(f"url is longer than {_MAX_URL} characters", param="url")
        try:
            await check_url(url, allow_private=self.settings.webhooks_allow_private)
        except AddressRefused as exc:
            raise InvalidRequest(str(exc), param="url", code="webhook_url_refused") from None
        return url

    async def create(
        self,
        project_id: str,
        *,
        url: str,
        description: str | None = None,
        event_types: Sequence[str] = (),
    ) -> EndpointRecord:
        """A new enabled endpoint with a new secret (returned this once by the API, and
        again by `rotate_secret`)."""
        now = self.clock.now()
        endpoint = EndpointRecord(
            id=new_webhook_id(),
            project_id=project_id,
            url=await self._checked_url(url),
            description=description,
            secret=new_secret(),
            event_types=_event_types(event_types),
            enabled=True,
            disabled_reason=None,
            created_at=now,
            updated_at=now,
        )
        return await repo.create_endpoint(self.database, endpoint)

    async def list_endpoints(self, project_id: str) -> list[EndpointRecord]:
        return await repo.list_endpoints(self.database, project_id=project_id)

    async def get(self, project_id: str, endpoint_id: str) -> EndpointRecord:
        found = await repo.get_endpoint(self.database, endpoint_id, project_id=project_id)
        if found is None:
            raise NotFound(f"no webhook endpoint {endpoint_id}", param="webhook_id")
        return found

    async def update(
        self, project_id: str, endpoint_id: str, changes: dict[str, Any]
    ) -> EndpointRecord:
        """Change url, description, event_types or enabled; enabling clears the reason it
        was disabled."""
        await self.get(project_id, endpoint_id)
        values = dict(changes)
        if "url" in values:
            values["url"] = await self._checked_url(values["url"])
        if "event_types" in values:
            values["event_types"] = _event_types(values["event_types"] or [])
        if values.get("enabled") is True:
            values["disabled_reason"] = None
        elif values.get("enabled") is False:
            values["disabled_reason"] = "disabled through the API"
        return await self._update(project_id, endpoint_id, values)

    async def _update(
        self, project_id: str, endpoint_id: str, values: dict[str, Any]
    ) -> EndpointRecord:
        found = await repo.update_endpoint(
            self.database, endpoint_id, project_id=project_id, changes=values, now=self.clock.now()
        )
        if found is None:
            raise NotFound(f"no webhook endpoint {endpoint_id}", param="webhook_id")
        return found

    async def rotate_secret(self, project_id: str, endpoint_id: str) -> EndpointRecord:
        """A new secret; messages signed from now on use it (none is signed twice ahead)."""
        return await self._update(project_id, endpoint_id, {"secret": new_secret()})

    async def delete(self, project_id: str, endpoint_id: str) -> None:
        if not await repo.delete_endpoint(self.database, endpoint_id, project_id=project_id):
            raise NotFound(f"no webhook endpoint {endpoint_id}", param="webhook_id")

    async def deliveries(
        self, project_id: str, endpoint_id: str, *, limit: int, after: str | None
    ) -> tuple[list[DeliveryRecord], bool]:
        await self.get(project_id, endpoint_id)
        return await repo.list_deliveries(self.database, endpoint_id, limit=limit, after=after)

    async def delivery(self, project_id: str, endpoint_id: str, delivery_id: str) -> DeliveryRecord:
        await self.get(project_id, endpoint_id)
        found = await repo.get_delivery(self.database, delivery_id, endpoint_id=endpoint_id)
        if found is None:
            raise NotFound(f"no delivery {delivery_id} of {endpoint_id}", param="delivery_id")
        return found

    async def replay(self, project_id: str, endpoint_id: str, delivery_id: str) -> DeliveryRecord:
        """Send the delivery again now, with the same ``webhook-id`` and body, and a fresh
        retry schedule."""
        await self.get(project_id, endpoint_id)
        found = await repo.replay_delivery(
            self.database, delivery_id, endpoint_id=endpoint_id, now=self.clock.now()
        )
        if found is None:
            raise NotFound(f"no delivery {delivery_id} of {endpoint_id}", param="delivery_id")
        self.on_due()
        return found

    async def send_test(self, project_id: str, endpoint_id: str) -> DeliveryRecord:
        """Enqueue a ``webhook.test`` message to the endpoint, due now."""
        endpoint = await self.get(project_id, endpoint_id)
        now = self.clock.now()
        message_id = new_webhook_message_id()
        data = {"endpoint_id": endpoint.id, "message": "a test message from datamill"}
        await repo.enqueue_delivery(
            self.database,
            NewDelivery(
                id=message_id,
                endpoint_id=endpoint.id,
                project_id=project_id,
                event_type=WebhookEventType.webhook_test.value,
                event_key=f"webhook.test:{message_id}",
                payload=body(WebhookEventType.webhook_test.value, data, at=now),
            ),
            now=now,
        )
        self.on_due()
        return await self.delivery(project_id, endpoint_id, message_id)


_KNOWN = {t.value for t in WebhookEventType}


def _event_types(given: Sequence[str]) -> list[str]:
    """The types an endpoint filters on, each known, in the order given, once."""
    unknown = sorted(set(given) - _KNOWN)
    if unknown:
        raise InvalidRequest(
            f"unknown event types {unknown}; known: {sorted(_KNOWN)}",
            param="event_types",
            code="unknown_event_type",
        )
    return list(dict.fromkeys(given))
