"""Deployment events: each deployment's live state in this process, for the dashboard.

A deployment's gate lives in each process that calls it (the server for the gateway, every
worker for batches), so each process publishes its own: about once a second while the
deployment has calls out or waiting (and once more when it goes quiet), and at once when its
circuit opens, half-opens or closes. Its loop, `run()`, is a side task of the process
(`Runtime.side_tasks`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from datamill.clock import Clock, SystemClock
from datamill.events.publisher import EventPublisher
from datamill.events.topics import Topic
from datamill.scheduler.breaker import BreakerState
from datamill.scheduler.router import DeploymentHandle, Router

log = logging.getLogger("datamill.events")

# Says which process (host, pid, its workers) a deployment's state comes from.
ProcessInfo = Callable[[], dict[str, Any]]


def deployment_state(handle: DeploymentHandle, process: dict[str, Any]) -> dict[str, Any]:
    """A ``deployment`` event's payload: its public configuration, the gate's live state and
    the process it describes."""
    return {
        "name": handle.name,
        "process": process,
        "config": handle.config.public_view(),
        "live": handle.gate.live(),
    }


class DeploymentMonitor:
    def __init__(
        self,
        router: Router,
        publisher: EventPublisher,
        process: ProcessInfo,
        *,
        interval: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        self._router = router
        self._publisher = publisher
        self._process = process
        self._interval = interval
        self._active: set[str] = set()  # deployments active at the last tick
        self._calls: dict[str, int] = {}  # calls answered, at the last tick
        self._clock = clock or SystemClock()

    def listen(self) -> None:
        """Publish a deployment at once when its circuit changes state."""
        for handle in self._router.handles:
            handle.gate.breaker.on_change = self._circuit_listener(handle)

    def _circuit_listener(self, handle: DeploymentHandle) -> Callable[[BreakerState], None]:
        def changed(_state: BreakerState) -> None:
            self.publish(handle)

        return changed

    def publish(self, handle: DeploymentHandle) -> None:
        self._publisher.publish(Topic.deployment, deployment_state(handle, self._process()))

    def tick(self) -> None:
        """Publish the deployments active since the last tick (calls out, waiting or
        answered), and once more those that went quiet since."""
        active = set()
        for handle in self._router.handles:
            gate = handle.gate
            if gate.busy or gate.stats.calls != self._calls.get(handle.name, 0):
                active.add(handle.name)
            if handle.name in active or handle.name in self._active:
                self.publish(handle)
            self._calls[handle.name] = gate.stats.calls
        self._active = active

    async def run(self) -> None:
        """Tick every ``interval`` seconds, until cancelled."""
        while True:
            await self._clock.sleep(self._interval)
            try:
                self.tick()
            except Exception:
                log.exception("publishing the deployments' state failed")

    async def aclose(self) -> None:
        """Stop listening to the circuits (the loop is stopped by its supervisor)."""
        for handle in self._router.handles:
            handle.gate.breaker.on_change = None
