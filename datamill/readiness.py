"""The readiness registry: named checks that components register where they are wired.

The runtime registers the store's (``database``, ``migrations``) and each deployment's
circuit (``circuit:<name>``, a warning); the app registers ``workers``; a generation job
that needs the embedding model registers ``embeddings``. `/readyz` runs them all
(`ReadinessRegistry.run`): together, each bounded by its timeout on the injectable clock.

A check is an async callable: it returns a message (None: ``ok``) when its component is
ready, and raises when it is not (`NotReady` for a plain verdict; any other exception is
reported with its type). A ``required`` check that fails makes the process not ready; a
``warning`` check that fails is reported as ``warn`` and changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from datamill.clock import Clock, wait_done

__all__ = [
    "DEFAULT_TIMEOUT",
    "Check",
    "CheckLevel",
    "CheckResult",
    "CheckStatus",
    "NotReady",
    "Readiness",
    "ReadinessRegistry",
]

# Seconds one check may take. Checks run together, so a probe answers within about this;
# an orchestrator's probe timeout should be above it.
DEFAULT_TIMEOUT = 3.0

Check = Callable[[], Awaitable[str | None]]


class NotReady(Exception):
    """Raised by a check: its component is not ready, and the message says why."""


class CheckLevel(StrEnum):
    required = "required"  # a failure makes the process not ready
    warning = "warning"  # a failure is reported, and the process stays ready


class CheckStatus(StrEnum):
    ok = "ok"  # the check passed
    warn = "warn"  # a warning check failed
    fail = "fail"  # a required check failed (or timed out)


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    level: CheckLevel
    status: CheckStatus
    latency_ms: float
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "level": self.level.value,
            "latency_ms": self.latency_ms,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class Readiness:
    """One run of every check, in the order they were registered."""

    checks: tuple[CheckResult, ...]

    @property
    def ready(self) -> bool:
        return all(result.status is not CheckStatus.fail for result in self.checks)

    def names(self, status: CheckStatus) -> list[str]:
        return [result.name for result in self.checks if result.status is status]


@dataclass(frozen=True, slots=True)
class _Registered:
    check: Check
    level: CheckLevel
    timeout: float


class ReadinessRegistry:
    """The checks of one process, by name. Registering a name again replaces its check."""

    def __init__(self, clock: Clock, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.clock = clock
        self.timeout = timeout
        self._checks: dict[str, _Registered] = {}

    def register(
        self,
        name: str,
        check: Check,
        *,
        level: CheckLevel | str = CheckLevel.required,
        timeout: float | None = None,
    ) -> None:
        """Run ``check`` as ``name`` on every readiness probe, for at most ``timeout``
        seconds (default: the registry's)."""
        self._checks[name] = _Registered(
            check, CheckLevel(level), self.timeout if timeout is None else timeout
        )

    def unregister(self, name: str) -> None:
        self._checks.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._checks

    @property
    def names(self) -> list[str]:
        return list(self._checks)

    async def run(self) -> Readiness:
        """Run every check at once; each one's verdict, latency and message."""
        checks = list(self._checks.items())
        results = await asyncio.gather(*(self._run_one(name, item) for name, item in checks))
        return Readiness(tuple(results))

    async def _run_one(self, name: str, item: _Registered) -> CheckResult:
        started = self.clock.monotonic()
        task = asyncio.ensure_future(item.check())
        failure: str | None = None
        message = "ok"
        try:
            if not await wait_done(self.clock, [task], item.timeout):
                failure = f"timed out after {item.timeout:g} s"
            else:
                message = task.result() or "ok"
        except NotReady as exc:
            failure = str(exc) or "not ready"
        except Exception as exc:
            failure = f"{type(exc).__name__}: {exc}"
        finally:
            if not task.done():
                # Not awaited: a check that ignores cancellation must not hold the probe.
                task.cancel()
                task.add_done_callback(_retrieve)
        latency_ms = round((self.clock.monotonic() - started) * 1000, 3)
        if failure is None:
            status = CheckStatus.ok
        else:
            status = CheckStatus.fail if item.level is CheckLevel.required else CheckStatus.warn
            message = failure
        return CheckResult(name, item.level, status, latency_ms, message)


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # a late failure of an abandoned check is not worth a warning
