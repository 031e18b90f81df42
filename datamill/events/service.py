"""Opening a client's event stream: its filters and resume point checked, then the hub."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from datamill.errors import InvalidRequest
from datamill.events.hub import EventFilter, EventHub, Subscription
from datamill.events.topics import Topic
from datamill.storage.schema import DEFAULT_PROJECT_ID

MAX_BATCH_FILTERS = 100


class BatchLookup(Protocol):
    """Finds a batch of a project, raising `NotFound` (a 404 naming ``batch_id``) for an
    unknown one: `BatchService.get`, passed in so events import nothing of the engine."""

    async def __call__(self, batch_id: str, *, project_id: str) -> object: ...


class EventStreamService:
    def __init__(self, hub: EventHub, find_batch: BatchLookup) -> None:
        self._hub = hub
        self._find_batch = find_batch

    async def open(
        self,
        *,
        topics: Sequence[str] = (),
        batch_ids: Sequence[str] = (),
        last_event_id: tuple[str, str] | None = None,
        project_id: str = DEFAULT_PROJECT_ID,
    ) -> Subscription:
        """The server-sent events of the given topics and batches (all when empty), after
        ``last_event_id`` (``(value, the parameter it came in)``) or live only. Every check
        is made before the stream starts, so a bad parameter (or a full house: 503) is an
        error answer, not an empty stream. Close the subscription to free its place."""
        unknown = sorted(set(topics) - set(Topic))
        if unknown:
            known = ", ".join(topic.value for topic in Topic)
            raise InvalidRequest(
                f"unknown topic {unknown[0]!r}; topics are {known}",
                param="topic",
                code="invalid_value",
            )
        if len(set(batch_ids)) > MAX_BATCH_FILTERS:
            raise InvalidRequest(
                f"at most {MAX_BATCH_FILTERS} batch_id filters per stream",
                param="batch_id",
                code="invalid_value",
            )
        for batch_id in dict.fromkeys(batch_ids):
            await self._find_batch(batch_id, project_id=project_id)  # 404 for an unknown one
        after = None if last_event_id is None else _event_id(*last_event_id)
        event_filter = EventFilter(
            topics=frozenset(topics) or None,
            batch_ids=frozenset(batch_ids) or None,
            project_id=project_id,
        )
        return self._hub.subscribe(event_filter, after=after)


def _event_id(value: str, param: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise InvalidRequest(
            f"{param} must be an event id (a non-negative integer), got {value!r}",
            param=param,
            code="invalid_value",
        )
    return int(value)
