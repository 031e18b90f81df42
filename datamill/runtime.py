"""The composition root: builds the store, the deployments and the services from `Settings`.

`serve`, `worker`, `batch run` and the tests all start from `Runtime.open(settings)`.
"""

from __future__ import annotations

from types import TracebackType

from datamill.clock import Clock, SystemClock
from datamill.curation.service import DatasetService
from datamill.engine.context import EngineContext, WorkSignal
from datamill.engine.files import FileService
from datamill.engine.operations import OperationsService
from datamill.engine.service import BatchService
from datamill.engine.worker import Worker, WorkerOptions
from datamill.errors import StorageError
from datamill.gateway.accounting import CallLog
from datamill.gateway.service import GatewayService
from datamill.plugins import create_provider
from datamill.providers.base import ProviderContext
from datamill.providers.http import HttpPool
from datamill.scheduler.gate import DeploymentGate
from datamill.scheduler.router import DeploymentHandle, Router
from datamill.settings import Settings
from datamill.storage import migrate
from datamill.storage.blobs import DatabaseBlobStore
from datamill.storage.database import Database


class Runtime:
    def __init__(
        self, settings: Settings, database: Database, clock: Clock, http: HttpPool, router: Router
    ) -> None:
        self.settings = settings
        self.database = database
        self.clock = clock
        self.http = http
        self.router = router
        self.blobs = DatabaseBlobStore(database)
        self.engine = EngineContext(
            database=database,
            blobs=self.blobs,
            router=router,
            settings=settings,
            clock=clock,
            signal=WorkSignal(),
        )
        self.files = FileService(database, self.blobs, settings, clock)
        self.call_log = CallLog(database, router)
        self.gateway = GatewayService(router, clock, on_call=self.call_log.record)
        self.batches = BatchService(self.engine)
        self.operations = OperationsService(self.engine)
        self.datasets = DatasetService(database, clock, max_line_bytes=settings.max_line_bytes)

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
            router = build_router(settings, http, clock)
        except BaseException:
            await database.dispose()
            raise
        return cls(settings, database, clock, http, router)

    def new_worker(self, options: WorkerOptions | None = None) -> Worker:
        if options is None:
            options = WorkerOptions(
                concurrency=self.settings.concurrency, max_retries=self.settings.max_retries
            )
        return Worker(self.engine, options)

    async def close(self) -> None:
        await self.call_log.aclose()
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


def build_router(settings: Settings, http: HttpPool, clock: Clock) -> Router:
    context = ProviderContext(http=http, clock=clock)
    handles = [
        DeploymentHandle(
            config=config,
            provider=create_provider(config, context),
            gate=DeploymentGate(config, clock, default_concurrency=settings.concurrency),
        )
        for config in settings.deployments
    ]
    return Router(handles, settings.aliases)
