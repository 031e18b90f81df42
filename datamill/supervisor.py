"""The one supervisor of side tasks: every loop a process runs beside its main work.

Workers, their result writer, heartbeat, sweep and native runner, the generation
supervisor and the deployment monitor are all started here, each by name. A side task that
raises is logged with its name and started again after a backoff (doubling, through the
clock), up to `RestartPolicy.limit` failures in a row. A task marked critical, or one that
keeps failing, fails the supervisor instead: `failure` says which and why, `wait_failed()`
returns, and ``on_failure`` runs, so the process stops with that message and a non-zero
exit (`Runtime.start_side_tasks`), or a worker stops and raises it (`engine/worker.py`).

Shutdown is by name, in the order the owner gives (`stop("sweep", "native")`); `stop_all`
ends the rest, the last started first. A task returning by itself has ended: it is not
started again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from datamill.clock import Clock, wait_done
from datamill.errors import SideTaskFailed

__all__ = ["RestartPolicy", "SideTaskFailed", "Supervisor"]

log = logging.getLogger("datamill.supervisor")


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How a failing side task is started again."""

    limit: int = 5  # failures in a row, then the supervisor fails
    backoff: float = 0.5  # seconds before the first restart; doubles with each failure
    max_backoff: float = 30.0
    healthy_after: float = 60.0  # a run this long forgets the failures before it

    def delay(self, failures: int) -> float:
        return float(min(self.backoff * 2 ** (failures - 1), self.max_backoff))


@dataclass(slots=True)
class _SideTask:
    name: str
    run: Callable[[], Awaitable[None]]
    stop: Callable[[], object] | None
    critical: bool
    task: asyncio.Task[None] = dataclasses.field(init=False)
    failures: int = 0


class Supervisor:
    """Starts, restarts and stops the named side tasks of one owner (a process, a worker)."""

    def __init__(
        self,
        clock: Clock,
        *,
        owner: str = "process",
        policy: RestartPolicy | None = None,
        on_failure: Callable[[SideTaskFailed], None] | None = None,
    ) -> None:
        self.clock = clock
        self.owner = owner
        self.policy = policy or RestartPolicy()
        self.on_failure = on_failure
        self.failure: SideTaskFailed | None = None
        self._failed = asyncio.Event()
        self._tasks: dict[str, _SideTask] = {}

    def start(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        *,
        stop: Callable[[], object] | None = None,
        critical: bool = False,
    ) -> None:
        """Run ``run()`` as the side task ``name`` (started again, by calling ``run`` again,
        when it fails). ``stop`` asks it to end by itself; without one it is cancelled."""
        if name in self._tasks:
            raise ValueError(f"{self.owner} already runs a side task named {name!r}")
        side = _SideTask(name, run, stop, critical)
        side.task = asyncio.create_task(self._supervise(side), name=f"{self.owner}:{name}")
        self._tasks[name] = side

    @property
    def names(self) -> list[str]:
        """The side tasks started and not stopped, in the order they started."""
        return list(self._tasks)

    def running(self, name: str) -> bool:
        side = self._tasks.get(name)
        return side is not None and not side.task.done()

    async def wait(self, name: str) -> None:
        """Return when the side task ``name`` has ended (by itself, or failed for good)."""
        await asyncio.wait({self._tasks[name].task})

    async def wait_failed(self) -> SideTaskFailed:
        """Return the failure that stops this supervisor's owner, once there is one."""
        await self._failed.wait()
        assert self.failure is not None
        return self.failure

    async def stop(self, *names: str, grace: float | None = None) -> bool:
        """Stop the side tasks ``names`` together: each is asked to end (its ``stop``, in the
        order given) and they get ``grace`` seconds of the clock (None: as long as they
        take) before they are cancelled; one without ``stop`` is cancelled at once. Call it
        once per step for an order. True if every one asked to end did so in time."""
        sides = [self._tasks.pop(name) for name in names if name in self._tasks]
        asked = []
        for side in sides:
            if side.stop is not None:
                side.stop()
                asked.append(side.task)
        clean = await wait_done(self.clock, asked, grace)
        for side in sides:
            side.task.cancel()
        await asyncio.gather(*(side.task for side in sides), return_exceptions=True)
        return clean

    async def stop_all(self, *, grace: float | None = None) -> None:
        """Stop every side task still running, one at a time, the last started first."""
        for name in reversed(self.names):
            await self.stop(name, grace=grace)

    async def _supervise(self, side: _SideTask) -> None:
        policy = self.policy
        while True:
            started = self.clock.monotonic()
            try:
                await side.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.clock.monotonic() - started >= policy.healthy_after:
                    side.failures = 0
                side.failures += 1
                if side.critical or side.failures >= policy.limit:
                    log.exception("%s: side task %s failed; stopping", self.owner, side.name)
                    self._fail(SideTaskFailed(side.name, exc, failures=side.failures))
                    return
                delay = policy.delay(side.failures)
                log.exception(
                    "%s: side task %s failed (%d in a row); restarting in %.1f s",
                    self.owner,
                    side.name,
                    side.failures,
                    delay,
                )
            await self.clock.sleep(delay)

    def _fail(self, failure: SideTaskFailed) -> None:
        if self.failure is not None:
            return  # the first failure is the one that stops the owner
        self.failure = failure
        self._failed.set()
        if self.on_failure is not None:
            self.on_failure(failure)
