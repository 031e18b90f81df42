"""DeploymentService: every deployment's configuration and live state, in this process and
in the others that call it (read from their recent ``deployment`` events)."""

from __future__ import annotations

from typing import Any

import orjson

from datamill.clock import Clock
from datamill.events.monitor import ProcessInfo
from datamill.events.topics import Topic
from datamill.scheduler.router import Router
from datamill.storage import events as event_repo
from datamill.storage.database import Database

# How old another process's last state may be and still count as live: its monitor
# publishes each second while the deployment is busy, and once when it goes quiet.
RECENT = 15.0


class DeploymentService:
    def __init__(
        self, database: Database, router: Router, clock: Clock, process: ProcessInfo
    ) -> None:
        self._database = database
        self._router = router
        self._clock = clock
        self._process = process

    async def describe(self) -> list[dict[str, Any]]:
        """Each deployment: its public configuration, this process's live gate state and
        call figures (``live``), and the latest state other processes published within
        `RECENT` seconds (``elsewhere``, one entry per process)."""
        me = self._process()
        since = self._clock.now() - RECENT
        recent = await event_repo.recent_events(self._database, topic=Topic.deployment, since=since)
        # The newest state per (deployment, process); events come oldest first.
        latest: dict[tuple[Any, Any], dict[str, Any]] = {}
        for row in recent:
            payload = orjson.loads(row.payload)
            process = payload.get("process") or {}
            if process.get("id") == me["id"]:
                continue
            latest[(payload.get("name"), process.get("id"))] = {
                "process": process,
                "live": payload.get("live"),
                "at": row.created_at,
            }
        return [
            {
                **handle.config.public_view(),
                "live": handle.gate.live(),
                "process": me,
                "elsewhere": [state for (name, _), state in latest.items() if name == handle.name],
            }
            for handle in self._router.handles
        ]
