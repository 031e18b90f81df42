"""The worker: leases requests, executes them concurrently, records results in batches.

Lifecycle: `run()` registers the worker, starts its side tasks under its own `Supervisor`
(result writer, heartbeat, native runner, maintenance sweep) and leases until `stop()`, or
until a critical side task fails (then `run()` raises `SideTaskFailed`). Stopping lets calls
in flight finish for ``drain_timeout`` seconds, stops its side tasks by name (the sweep and
the native runner first, the writer once nothing can record any more, the heartbeat last),
records every result it has, and gives the remaining leases back, so another worker picks
them up at once. A worker that is killed instead loses only its in-flight calls: its leases
return to pending when its heartbeat goes stale (or at once when a worker on the same host
sees its process is gone).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass, replace

from datamill import __version__
from datamill.clock import wait_done, wait_event
from datamill.engine.budgets import BudgetLedger
from datamill.engine.context import EngineContext
from datamill.engine.executor import ExecutionPolicy, RequestExecutor
from datamill.engine.maintenance import BatchView, Maintenance
from datamill.engine.native.runner import NativeRunner
from datamill.engine.writer import ResultWriter
from datamill.events.workers import publish_worker
from datamill.ids import new_worker_id
from datamill.logs import request_id
from datamill.providers.base import Endpoint
from datamill.scheduler.limits import AdjustableLimit
from datamill.storage import leasing
from datamill.storage import workers as worker_repo
from datamill.storage.records import BatchRecord, LeasedRequest, WorkerRecord
from datamill.storage.results import RecordOutcome
from datamill.supervisor import SideTaskFailed, Supervisor

log = logging.getLogger("datamill.engine")


_MIN_COMMIT_WINDOW = 64


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    kind: str = "serve"  # serve (in the API process), worker (standalone), run (batch run)
    concurrency: int = 256  # provider calls in flight
    max_retries: int = 5
    timeout: float | None = None  # per call; None: each deployment's own
    batch_ids: frozenset[str] | None = None  # only these batches (batch run)
    idle_poll: float = 0.5
    sweep_interval: float = 1.0
    drain_timeout: float = 5.0

    @property
    def commit_window(self) -> int:
        """Answers that may wait for their group commit without holding a call's slot: a
        quarter of the concurrency, and up to 64 below 256. At concurrency 64 a window of 16
        made every commit hold up the calls behind it: 10% more CPU per request and a
        throughput that swung with the commit time (bench/overhead.py --concurrency 64)."""
        return max(self.concurrency // 4, min(self.concurrency, _MIN_COMMIT_WINDOW))

    @property
    def max_unrecorded(self) -> int:
        """Requests sent and not yet recorded, at most: what a crash can make a provider
        see twice."""
        return self.concurrency + self.commit_window


def budgets_of(view: BatchView) -> dict[str, tuple[float, float]]:
    """``{batch id: (budget, cost)}`` of the view's running batches that have a budget."""
    found = {}
    for batch_id, batch in view.running.items():
        budget = (batch.options or {}).get("budget_usd")
        if budget is not None:
            found[batch_id] = (float(budget), batch.cost)
    return found


class Worker:
    def __init__(self, context: EngineContext, options: WorkerOptions | None = None) -> None:
        self.ctx = context
        self.options = options or WorkerOptions()
        self.id = new_worker_id()
        self._executor = RequestExecutor(context.router, context.clock, database=context.database)
        # Calls out at the providers: the concurrency. Requests sent and not yet recorded: the
        # concurrency plus one commit window, so answers wait for their commit without
        # holding a call's slot, and a crash makes the providers see again at most that many.
        self._calls = AdjustableLimit(self.options.concurrency)
        self._unrecorded = AdjustableLimit(self.options.max_unrecorded)
        # Flush at the commit window: transactions stay large under load.
        self._writer = ResultWriter(
            context.database,
            context.clock,
            flush_size=self.options.commit_window,
            on_flush=self._flushed,
        )
        self._maintenance = Maintenance(
            context,
            worker_id=self.id,
            batch_ids=self.options.batch_ids,
            on_closing=self._close_now,
        )
        # Native-mode batches go to the providers' batch APIs instead of the lease loop.
        self._native = NativeRunner(
            context,
            worker_id=self.id,
            batch_ids=self.options.batch_ids,
            max_retries=self.options.max_retries,
            on_results=self._maintenance.finalize_ready,
        )
        # Keyed by lease (request id, lease number): stale leases put back by the sweep can
        # come back to this worker while the old call still hangs, and both must be tracked.
        self._in_flight: dict[tuple[int, int], asyncio.Task[None]] = {}
        self._room = asyncio.Event()
        # Set by each sweep: an idle lease loop waits for a fresh view of the running batches
        # (a notify wakes the sweep, and the sweep then wakes the lease loop).
        self._refreshed = asyncio.Event()
        # Requests held at most (twice the slots: the next ones wait, leased, for a free slot),
        # leased in chunks once a chunk's worth of room is free.
        self._capacity = self.options.concurrency * 2
        self._chunk = max(1, min(256, self.options.concurrency))
        self._lease_at = min(self._chunk, self._capacity // 2)
        self._stopping = asyncio.Event()
        self._view = BatchView()
        self._order: list[str] = []
        self._drained_until: dict[str, float] = {}
        # What budgeted batches spent and reserved (calls wait here when near the budget).
        self._budgets = BudgetLedger(on_exhausted=self._out_of_budget)
        self._current_batch: str | None = None
        self.completed = 0
        self.failed = 0
        self.started = asyncio.Event()
        self._side = Supervisor(
            context.clock, owner=f"worker {self.id}", on_failure=self._side_task_failed
        )
        self._record: WorkerRecord  # registered by run()

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        ctx = self.ctx
        now = ctx.clock.now()
        self._record = WorkerRecord(
            id=self.id,
            kind=self.options.kind,
            host=socket.gethostname(),
            pid=os.getpid(),
            version=__version__,
            status="running",
            started_at=now,
            heartbeat_at=now,
            stopped_at=None,
            current_batch_id=None,
            in_flight=0,
            completed=0,
            failed=0,
        )
        await worker_repo.register_worker(ctx.database, self._record)
        publish_worker(ctx.events, "started", self._record)
        # The side tasks, by name; the result writer is critical: without it nothing is
        # recorded, so its failure stops the worker (run() then raises it).
        side = self._side
        side.start("writer", self._writer.run, stop=self._writer.close, critical=True)
        side.start("heartbeat", self._heartbeat_loop)
        side.start("native", self._native.run)
        side.start("sweep", self._sweep_loop)
        log.info(
            "worker %s started (%s, concurrency %d)",
            self.id,
            self.options.kind,
            self.options.concurrency,
        )
        self.started.set()
        try:
            await self._lease_loop()
        finally:
            await self._shutdown()
        if side.failure is not None:
            raise side.failure

    @property
    def waiting(self) -> int:
        """Calls waiting at a deployment's gate or in a backoff, not sent yet."""
        return self._executor.waits.waiting

    def stop(self) -> None:
        self._stopping.set()
        # Calls waiting at a gate or in a backoff end now; those out at a provider drain.
        self._executor.waits.stop()
        self._room.set()
        self._refreshed.set()
        self.ctx.signal.notify()

    def _side_task_failed(self, failure: SideTaskFailed) -> None:
        """A critical side task failed: stop as on `stop()`; `run()` raises ``failure``."""
        log.error("worker %s stops: %s", self.id, failure)
        self.stop()

    async def _shutdown(self) -> None:
        ctx = self.ctx
        if self._in_flight:
            await wait_done(ctx.clock, self._in_flight.values(), self.options.drain_timeout)
        for task in list(self._in_flight.values()):
            task.cancel()
        if self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
        await self._executor.aclose()
        side = self._side
        await side.stop("sweep", "native")
        try:
            # Before the maintenance jobs end: a native step may still start a finalization.
            await self._native.stop()
        except Exception:
            log.exception("worker %s could not give its native jobs back", self.id)
        self._maintenance.cancel_jobs()
        await self._maintenance.wait_jobs()
        # The writer records what it holds, then ends (30 s at most).
        if not await side.stop("writer", grace=30):
            log.error("worker %s could not record its last results; they will be redone", self.id)
        await side.stop_all()  # the heartbeat
        released = await leasing.release_leases(ctx.database, worker_id=self.id)
        now = ctx.clock.now()
        await worker_repo.mark_stopped(ctx.database, self.id, now=now)
        stopped = replace(
            self._record,
            status="stopped",
            stopped_at=now,
            in_flight=0,
            current_batch_id=None,
            completed=self.completed,
            failed=self.failed,
        )
        publish_worker(ctx.events, "stopped", stopped)
        log.info("worker %s stopped (%d leases given back)", self.id, released)

    # -- leasing and execution -------------------------------------------------------------

    async def _lease_loop(self) -> None:
        while not self._stopping.is_set():
            room = self._capacity - len(self._in_flight)
            if room < self._lease_at:
                self._room.clear()
                await self._room.wait()
                continue
            chunk = self._chunk
            batch = self._next_batch()
            if batch is None:
                self._refreshed.clear()
                await wait_event(self.ctx.clock, self._refreshed, self.options.idle_poll)
                continue
            try:
                leased = await leasing.lease_requests(
                    self.ctx.database,
                    batch_id=batch.id,
                    worker_id=self.id,
                    limit=min(room, chunk),
                    now=self.ctx.clock.now(),
                )
            except Exception:
                # The store is briefly unusable (a restart, a lock): wait, do not stop working.
                log.exception("worker %s could not lease from batch %s", self.id, batch.id)
                await self.ctx.signal.wait(self.options.idle_poll)
                continue
            if not leased:
                self._drained_until[batch.id] = self.ctx.clock.monotonic() + self.options.idle_poll
                continue
            self._current_batch = batch.id
            policy = self._policy(batch)
            # The calls' tasks log with the batch's request id (they copy the context).
            with request_id(batch.request_id):
                for request in leased:
                    lease = (request.id, request.attempts)
                    self._in_flight[lease] = asyncio.create_task(self._execute(request, policy))

    def _next_batch(self) -> BatchRecord | None:
        """Round-robin over running batches, skipping those just found empty."""
        now = self.ctx.clock.monotonic()
        for _ in range(len(self._order)):
            batch_id = self._order.pop(0)
            self._order.append(batch_id)
            batch = self._view.running.get(batch_id)
            if batch is None or batch.mode != "online":
                continue  # a native batch runs on its provider's batch API (self._native)
            if self._drained_until.get(batch_id, 0.0) <= now:
                return batch
        return None

    def _policy(self, batch: BatchRecord) -> ExecutionPolicy:
        options = batch.options or {}
        return ExecutionPolicy(
            endpoint=Endpoint(batch.endpoint),
            max_retries=int(options.get("max_retries", self.options.max_retries)),
            timeout=options.get("timeout", self.options.timeout),
            project_id=batch.project_id,
        )

    async def _execute(self, request: LeasedRequest, policy: ExecutionPolicy) -> None:
        try:
            await self._executor.execute(
                request,
                policy,
                calls=self._calls,
                unrecorded=self._unrecorded,
                closing=self._closing_code,
                record=self._writer.record,
                budgets=self._budgets,
            )
        except Exception as exc:
            log.exception(
                "request %s of batch %s failed inside datamill", request.id, request.batch_id
            )
            await self._writer.record(self._executor.internal_failure(request, exc))
        finally:
            del self._in_flight[(request.id, request.attempts)]
            # Wake the lease loop only once there is room for a lease, not on every answer.
            if self._capacity - len(self._in_flight) >= self._lease_at:
                self._room.set()

    def _out_of_budget(self, batch_id: str) -> None:
        """Nothing more of the batch is sent from now on; the sweep, woken at once rather
        than at its next interval, closes the rest in the store."""
        self._close_now(batch_id, "budget_exhausted")
        self.ctx.signal.notify()

    def _close_now(self, batch_id: str, code: str) -> None:
        """Stop sending the batch's requests at once: those still leased end with ``code``."""
        self._view.running.pop(batch_id, None)
        self._view.closing[batch_id] = code
        self._executor.waits.close(self._closing_code)

    def _closing_code(self, batch_id: str) -> str | None:
        # Read the view at each check: every sweep replaces it, and a call that started before
        # a cancel or an expiry must still see it. A batch gone from the view has ended (an
        # expired one finalizes at once): its requests all have results, so none is sent.
        view = self._view
        if batch_id in view.running:
            return None
        return view.closing.get(batch_id, "batch_expired")

    async def _flushed(self, outcome: RecordOutcome) -> None:
        for batch_id, tally in outcome.by_batch.items():
            self.ctx.events.batch_moved(batch_id)
            self.completed += tally.completed
            self.failed += tally.failed
            if tally.cost:
                self._budgets.flushed(batch_id, tally.cost)
        # Only a batch with nothing left to lease can have just finished; checking those
        # alone keeps two queries off every flush. The sweep catches the rest.
        drained = [batch_id for batch_id in outcome.by_batch if batch_id in self._drained_until]
        if drained:
            await self._maintenance.finalize_ready(drained)

    # -- side tasks ------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        ctx = self.ctx
        while True:
            await ctx.clock.sleep(ctx.settings.heartbeat_interval)
            try:
                beat = replace(
                    self._record,
                    heartbeat_at=ctx.clock.now(),
                    in_flight=len(self._in_flight),
                    completed=self.completed,
                    failed=self.failed,
                    current_batch_id=self._current_batch if self._in_flight else None,
                )
                alive = await worker_repo.heartbeat(
                    ctx.database,
                    self.id,
                    now=beat.heartbeat_at,
                    in_flight=beat.in_flight,
                    completed=beat.completed,
                    failed=beat.failed,
                    current_batch_id=beat.current_batch_id,
                )
                if not alive:
                    log.warning("worker %s was declared dead; its leases were taken over", self.id)
                publish_worker(ctx.events, "heartbeat", beat)
            except Exception:
                log.exception("heartbeat of worker %s failed", self.id)

    async def _sweep_loop(self) -> None:
        while True:
            try:
                marks = self._budgets.mark()  # before the store is read
                self._view = await self._maintenance.sweep()
                # A batch cancelled (or ended elsewhere) since the last sweep: the waits of
                # its calls end now, not when a gate lets them through.
                self._executor.waits.close(self._closing_code)
                self._budgets.refresh(budgets_of(self._view), marks)
                # A batch this worker knows to be spent stays closed while the store, its
                # last flush still on the way, says otherwise: else its remaining requests
                # would all be leased and closed here before a sweep stopped it in the store.
                for batch_id in [b for b in self._view.running if self._budgets.exhausted(b)]:
                    self._close_now(batch_id, "budget_exhausted")
                for batch_id in self._view.running:
                    if batch_id not in self._order:
                        self._order.append(batch_id)
                self._order = [b for b in self._order if b in self._view.running]
                self._refreshed.set()
            except Exception:
                log.exception("maintenance sweep of worker %s failed", self.id)
            await self.ctx.signal.wait(self.options.sweep_interval)
