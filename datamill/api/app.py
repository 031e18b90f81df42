"""`create_app()`: the FastAPI application, with in-process workers when configured."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute

from datamill import __version__
from datamill.api.deps import refuse_nul, refuse_unknown_query
from datamill.api.errors import install_error_handlers
from datamill.api.guard import RequestGuard, guard_policy
from datamill.api.request_ids import RequestIds
from datamill.api.routes import (
    access,
    api_description,
    batch_insights,
    batches,
    chat,
    datasets,
    deployments,
    events,
    file_checks,
    files,
    generation,
    health,
    label_studio,
    metrics,
    models,
    operations,
    responses,
    reviews,
    task_schemas,
    webhooks,
)
from datamill.clock import Clock
from datamill.engine.worker import Worker
from datamill.runtime import Role, Runtime
from datamill.settings import Settings
from datamill.supervisor import Supervisor
from datamill.web import install_dashboard


class LocalWorkers:
    """The in-process workers this app expects, for readiness: they run as side tasks of
    the runtime (`Runtime.start_side_tasks`), started with the app and stopped with it."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.workers: list[Worker] = []
        self.side_tasks: Supervisor | None = None

    def alive(self) -> bool | None:
        """None when this process runs no workers."""
        if not self.count:
            return None
        # Workers that were never started (no lifespan, or start failed) are not alive.
        side = self.side_tasks
        return (
            side is not None
            and len(self.workers) == self.count
            and all(side.running(worker.id) for worker in self.workers)
        )

    def register_check(self, runtime: Runtime) -> None:
        """Readiness ``workers``: these workers run, or with none here, some live worker
        exists elsewhere."""

        async def check() -> str:
            return await runtime.operations.check_workers(self.alive())

        runtime.readiness.register("workers", check)


def create_app(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    workers: int | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """Build the app. With ``settings`` the app opens (and migrates) its own store on start;
    with ``runtime`` it uses that one. ``workers`` in-process workers run beside the API
    (default: ``settings.workers``)."""
    if settings is not None:
        config = settings
    elif runtime is not None:
        config = runtime.settings
    else:
        raise ValueError("create_app needs settings or a runtime")
    worker_count = workers if workers is not None else config.workers
    local = LocalWorkers(worker_count)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        active = runtime or await Runtime.open(settings, clock=clock)  # type: ignore[arg-type]
        app.state.runtime = active
        local.register_check(active)
        local.side_tasks = active.side_tasks
        local.workers = active.start_side_tasks(Role.serve, workers=worker_count)
        try:
            yield
        finally:
            await active.stop_side_tasks()
            if owned:
                await active.close()

    app = FastAPI(
        title="datamill",
        version=__version__,
        description="An OpenAI-compatible Batch API on any provider, durable by design.",
        lifespan=lifespan,
        # FastAPI's docs pages load from a CDN; the dashboard serves /docs from vendored assets.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served by routes/api_description.py, which declares its policy
        dependencies=[Depends(refuse_nul), Depends(refuse_unknown_query)],
    )
    app.state.workers = local
    if runtime is not None:
        app.state.runtime = runtime
        local.register_check(runtime)  # ready or not before the app starts its workers
    install_error_handlers(app)
    api_routes: list[APIRoute] = []  # the JSON API's, for the request guard
    for module in (
        api_description,
        access,
        files,
        file_checks,
        batches,
        batch_insights,
        chat,
        responses,
        models,
        health,
        metrics,
        operations,
        deployments,
        events,
        datasets,
        reviews,
        label_studio,
        generation,
        task_schemas,
        webhooks,
    ):
        app.include_router(module.router)
        api_routes += [r for r in module.router.routes if isinstance(r, APIRoute)]
    install_dashboard(app)
    # Outermost but for Starlette's error middleware: refused requests cost no routing.
    app.add_middleware(RequestGuard, policy=guard_policy(config, api_routes))
    app.add_middleware(RequestIds)
    return app
