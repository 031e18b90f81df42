"""The composition root: builds the store, the deployments and the services from `Settings`.

`serve`, `worker`, `batch run`, `generate` and the tests all start from
`Runtime.open(settings)`, and the commands start their side tasks in one place,
`Runtime.start_side_tasks(role)`: each by name under the process's one `Supervisor`
(`side_tasks`).
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import replace
from enum import StrEnum
from types import TracebackType
from typing import TYPE_CHECKING, Any

from datamill.auth.service import AuthService, is_loopback
from datamill.clock import Clock, SystemClock
from datamill.engine.context import EngineContext, WorkSignal
from datamill.engine.deployments import DeploymentService
from datamill.engine.files import FileService
from datamill.engine.insights import BatchInsights
from datamill.engine.operations import OperationsService
from datamill.engine.service import BatchService
from datamill.engine.worker import Worker, WorkerOptions
from datamill.errors import StorageError
from datamill.events import EventHub, EventPublisher
from datamill.events.monitor import DeploymentMonitor
from datamill.events.service import EventStreamService
from datamill.gateway.accounting import CallLog
from datamill.gateway.responses import ResponsesService
from datamill.gateway.service import CallRecord, GatewayService
from datamill.metrics import Metrics
from datamill.metrics.state import StateCollector
from datamill.plugins import create_provider
from datamill.protocol.batches import DATASET_METADATA_KEY
from datamill.providers.base import ProviderContext
from datamill.providers.http import HttpPool
from datamill.providers.network import network_for
from datamill.readiness import CheckLevel, NotReady, ReadinessRegistry
from datamill.scheduler.breaker import BreakerState, CircuitBreaker
from datamill.scheduler.gate import DeploymentGate
from datamill.scheduler.router import DeploymentHandle, Router
from datamill.settings import DeploymentConfig, Settings
from datamill.storage import migrate
from datamill.storage.blobs import DatabaseBlobStore
from datamill.storage.database import Database
from datamill.storage.gauges import read_store_gauges
from datamill.storage.records import BatchRecord
from datamill.supervisor import Supervisor

if TYPE_CHECKING:
    from datamill.curation.service import DatasetService
    from datamill.generation.service import GenerationService
    from datamill.generation.supervisor import GenerationSupervisor
    from datamill.review.service import ReviewService
    from datamill.task_schemas.service import TaskSchemaService
    from datamill.webhooks.dispatcher import WebhookDispatcher
    from datamill.webhooks.service import WebhookService


class Role(StrEnum):
    """What a process runs beside its command (`WorkerOptions.kind` of its workers)."""

    serve = "serve"  # the API, with `settings.workers` in-process workers
    worker = "worker"  # one standalone worker (scaled mode)
    run = "run"  # `batch run`, `generate`: one worker for the command's own work


class Runtime:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        clock: Clock,
        http: HttpPool,
        router: Router,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.clock = clock
        self.http = http
        self.router = router
        self.blobs = DatabaseBlobStore(database)
        # Events: this process's publisher, and the hub its API clients subscribe to (which
        # reads at once after this process's own writes).
        self.events = EventPublisher(database, clock)
        self.event_hub = EventHub(
            database,
            clock=clock,
            max_subscribers=settings.events_max_subscribers,
            max_replay=settings.events_max_replay,
        )
        self.events.on_written = self.event_hub.wake
        self.engine = EngineContext(
            database=database,
            blobs=self.blobs,
            router=router,
            settings=settings,
            clock=clock,
            events=self.events,
            signal=WorkSignal(clock),
        )
        self.engine.finish_hooks.append(self._import_finished_batch)
        self._workers: list[Worker] = []
        # Every side task of this process, by name: the deployment monitor, and the workers
        # and generation supervisors of its role (`start_side_tasks`).
        self.side_tasks = Supervisor(clock, owner="datamill")
        self.deployment_monitor = DeploymentMonitor(
            router, self.events, self.process_info, clock=clock
        )
        self.files = FileService(database, self.blobs, settings, clock)
        self.call_log = CallLog(database, router, clock)
        self.gateway = GatewayService(router, clock, on_call=self._gateway_call)
        self.responses = ResponsesService(self.gateway, database, clock)
        self.batches = BatchService(self.engine)
        self.event_stream = EventStreamService(self.event_hub, self.batches.get)
        self.insights = BatchInsights(database, self.batches)
        self.deployments = DeploymentService(database, router, clock, self.process_info)
        self.operations = OperationsService(self.engine)
        # Prometheus: the calls' metrics move in the gates (`build_router`), the rest is read
        # when scraped (`metrics_state`: the store only when refreshed, by `GET /metrics`).
        self.metrics = metrics or Metrics()
        self.metrics_state = StateCollector(
            lambda: ((handle.name, handle.gate.snapshot()) for handle in router.handles),
            clock,
            event_clients=lambda: self.event_hub.subscribers,
            store=functools.partial(read_store_gauges, database),
        )
        self.metrics.registry.register(self.metrics_state)
        # What `/readyz` runs: the store and each deployment's circuit here; the app adds
        # its workers, a generation job that needs the embedding model adds it.
        self.auth = AuthService(database, clock, loopback=is_loopback(settings.host))
        self.readiness = ReadinessRegistry(clock)
        self.readiness.register("database", self.operations.check_database)
        self.readiness.register("migrations", self.operations.check_migrations)
        for handle in router.handles:
            self.readiness.register(
                f"circuit:{handle.name}",
                functools.partial(_check_circuit, handle.gate.breaker, clock),
                level=CheckLevel.warning,
            )

    @classmethod
    async def open(
        cls, settings: Settings, *, clock: Clock | None = None, run_migrations: bool = True
    ) -> Runtime:
        clock = clock or SystemClock()
        database = Database.open(
            settings.resolved_database_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            postgres_synchronous_commit=settings.postgres_synchronous_commit,
        )
        try:
            if run_migrations:
                await migrate.upgrade(database)
            elif await migrate.current_revision(database) != migrate.SCHEMA_HEAD:
                raise StorageError(
                    "the store's schema is not current; run `datamill migrate` first"
                )
            http = HttpPool()
            metrics = Metrics()
            router = build_router(settings, http, clock, metrics=metrics)
        except BaseException:
            await database.dispose()
            raise
        runtime = cls(settings, database, clock, http, router, metrics=metrics)
        # The background writers first: the supervisor stops the last started first.
        runtime.events.supervise(runtime.side_tasks)
        runtime.call_log.supervise(runtime.side_tasks)
        runtime.deployment_monitor.listen()
        runtime.side_tasks.start("deployment-monitor", runtime.deployment_monitor.run)
        return runtime

    def _gateway_call(self, call: CallRecord) -> None:
        """A gateway call ended: its row for the call log, its first token for the metrics."""
        self.call_log.record(call)
        if call.first_token is not None and call.deployment is not None:
            self.metrics.observe_first_token(call.deployment, call.first_token)

    def process_info(self) -> dict[str, Any]:
        """This process, as deployment events name it: host, pid and its workers."""
        host, pid = socket.gethostname(), os.getpid()
        return {
            "id": f"{host}:{pid}",
            "host": host,
            "pid": pid,
            "workers": [worker.id for worker in self._workers],
        }

    def new_worker(self, options: WorkerOptions | None = None) -> Worker:
        if options is None:
            options = WorkerOptions(
                concurrency=self.settings.concurrency, max_retries=self.settings.max_retries
            )
        worker = Worker(self.engine, options)
        self._workers.append(worker)
        return worker

    @functools.cached_property
    def datasets(self) -> DatasetService:
        """Datasets and samples; built on first use, like `generation`: `batch run` never
        needs them, and their storage modules cost start-up time."""
        from datamill.curation.service import DatasetService

        return DatasetService(
            self.database,
            self.clock,
            max_line_bytes=self.settings.max_line_bytes,
            schemas=self.task_schemas,
            events=self.events,
        )

    @functools.cached_property
    def task_schemas(self) -> TaskSchemaService:
        """The task schema registry; built on first use, like `datasets`."""
        from datamill.task_schemas.service import TaskSchemaService

        return TaskSchemaService(self.database, self.clock)

    @functools.cached_property
    def reviews(self) -> ReviewService:
        """The review of datasets: queues, reviews, gold answers; built on first use."""
        from datamill.review.service import ReviewService

        return ReviewService(
            self.database,
            self.clock,
            self.events,
            max_line_bytes=self.settings.max_line_bytes,
            schemas=self.task_schemas,
        )

    async def _import_finished_batch(self, batch: BatchRecord) -> None:
        """A finishing batch whose metadata names a dataset has its answers imported into
        it (only then are the datasets' modules loaded)."""
        if (batch.metadata or {}).get(DATASET_METADATA_KEY):
            await self.datasets.import_finished_batch(batch)

    @functools.cached_property
    def generation(self) -> GenerationService:
        """Generation jobs; built on first use, so processes that never generate (`batch
        run`) do not import Jinja2, jsonschema and PyYAML at start-up."""
        from datamill.generation.job import RunnerDeps, RunnerOptions
        from datamill.generation.service import GenerationService

        settings = self.settings
        return GenerationService(
            RunnerDeps(
                self.database,
                self.batches,
                self.files,
                self.events,
                self.clock,
                readiness=self.readiness,
            ),
            self.gateway,
            self.router,
            RunnerOptions(stuck_after=settings.stuck_after),
        )

    @functools.cached_property
    def webhook_dispatcher(self) -> WebhookDispatcher:
        """This process's webhooks side task (started with its workers)."""
        from datamill.webhooks.dispatcher import WebhookDispatcher

        return WebhookDispatcher(self.database, self.http, self.clock, self.settings)

    @functools.cached_property
    def webhooks(self) -> WebhookService:
        """Webhook endpoints and their delivery log; a replay or a ping wakes this
        process's dispatcher when it runs one."""
        from datamill.webhooks.service import WebhookService

        return WebhookService(
            self.database,
            self.clock,
            self.settings,
            on_due=lambda: self.webhook_dispatcher.wake(),
        )

    def new_generation_supervisor(self, worker_id: str) -> GenerationSupervisor:
        """The generation side task of a worker: drives jobs no running worker holds."""
        from datamill.generation.supervisor import GenerationSupervisor

        return GenerationSupervisor(self.generation, worker_id)

    def start_side_tasks(
        self, role: Role, *, workers: int | None = None, options: WorkerOptions | None = None
    ) -> list[Worker]:
        """Start what a process in ``role`` runs beside its command, under `side_tasks`.

        serve: ``workers`` workers (default ``settings.workers``); worker: one; run: one,
        with ``options`` (its batch, its polls). Each worker of serve and worker also drives
        generation jobs (their batches run on the workers): side task ``generation-<id>``.
        A worker is critical: one that fails stops the process (`SideTaskFailed`). A
        process of serve (with workers) or worker also runs side task ``webhooks``."""
        settings = self.settings
        count = 1 if role is not Role.serve else settings.workers if workers is None else workers
        options = replace(
            options
            or WorkerOptions(concurrency=settings.concurrency, max_retries=settings.max_retries),
            kind=role.value,
        )
        started = []
        for _ in range(count):
            worker = self.new_worker(options)
            self.side_tasks.start(worker.id, worker.run, stop=worker.stop, critical=True)
            if role is not Role.run:
                generation = self.new_generation_supervisor(worker.id)
                self.side_tasks.start(
                    f"generation-{worker.id}", generation.run, stop=generation.stop
                )
            started.append(worker)
        if role is not Role.run and started:
            # One per process, whatever its workers: it tails the events and delivers.
            webhooks = self.webhook_dispatcher
            self.side_tasks.start("webhooks", webhooks.run, stop=webhooks.stop)
        return started

    async def stop_side_tasks(self) -> None:
        """Stop the role's side tasks: the generation supervisors first (their jobs' batches
        run on the workers), then the workers, which drain and give their leases back."""
        names = self.side_tasks.names
        await self.side_tasks.stop(*[n for n in names if n.startswith("generation-")])
        await self.side_tasks.stop("webhooks")
        await self.side_tasks.stop(*[w.id for w in self._workers if w.id in names])

    async def close(self) -> None:
        await self.stop_side_tasks()
        await self.side_tasks.stop_all()  # the deployment monitor, then the writers
        await self.deployment_monitor.aclose()
        await self.event_hub.aclose()
        await self.events.aclose()
        await self.call_log.aclose()
        await self.gateway.aclose()
        await self.router.aclose()
        await self.http.aclose()
        await self.database.dispose()

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def build_router(
    settings: Settings, http: HttpPool, clock: Clock, *, metrics: Metrics | None = None
) -> Router:
    """The deployments of ``settings``, each behind its gate (which moves ``metrics``)."""
    handles = [
        DeploymentHandle(
            config=config,
            provider=create_provider(
                config, ProviderContext(http=_http_of(config, http), clock=clock)
            ),
            gate=DeploymentGate(
                config,
                clock,
                default_concurrency=settings.concurrency,
                concurrency_told="concurrency" in settings.model_fields_set,
                metrics=metrics.deployment(config.name) if metrics is not None else None,
            ),
        )
        for config in settings.deployments
    ]
    return Router(handles, settings.aliases)


def _http_of(config: DeploymentConfig, http: HttpPool) -> HttpPool:
    """The pool as ``config``'s calls see it: through its proxy, trusting its CAs. The
    simulator calls nothing, so a proxy setting it could not use never stops it."""
    return http if config.provider == "sim" else http.using(network_for(config))


async def _check_circuit(breaker: CircuitBreaker, clock: Clock) -> str:
    """Readiness warning: a deployment whose circuit is not closed takes no calls for now
    (others may; the process stays ready)."""
    if breaker.state is BreakerState.open:
        left = max(0.0, breaker.opened_at + breaker.cooldown - clock.monotonic())
        raise NotReady(
            f"circuit open after {breaker.failures} failures; next probe in {left:.1f} s"
        )
    if breaker.state is BreakerState.half_open:
        raise NotReady("circuit half-open: a probe call is out")
    return "circuit closed"
