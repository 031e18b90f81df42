"""`create_app()`: the FastAPI application, with in-process workers when configured."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from datamill import __version__
from datamill.api.errors import install_error_handlers
from datamill.api.routes import (
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
    models,
    operations,
    responses,
)
from datamill.clock import Clock
from datamill.engine.worker import Worker
from datamill.generation.supervisor import GenerationSupervisor
from datamill.runtime import Runtime
from datamill.settings import Settings
from datamill.web import install_dashboard

log = logging.getLogger("datamill.api")


class WorkerSupervisor:
    """The workers this process runs: started with the app, stopped cleanly with it."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.workers: list[Worker] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.generation: list[GenerationSupervisor] = []
        self.generation_tasks: list[asyncio.Task[None]] = []

    async def start(self, runtime: Runtime) -> None:
        for _ in range(self.count):
            worker = runtime.new_worker()
            self.workers.append(worker)
            self.tasks.append(asyncio.create_task(worker.run(), name=f"worker-{worker.id}"))
            # Each worker also drives generation jobs (their batches run on the workers).
            side = runtime.new_generation_supervisor(worker.id)
            self.generation.append(side)
            self.generation_tasks.append(
                asyncio.create_task(side.run(), name=f"generation-{worker.id}")
            )

    def alive(self) -> bool | None:
        """None when this process runs no workers."""
        if not self.count:
            return None
        # Workers that were never started (no lifespan, or start failed) are not alive.
        return len(self.tasks) == self.count and all(not task.done() for task in self.tasks)

    async def stop(self) -> None:
        for side in self.generation:
            side.stop()
        await asyncio.gather(*self.generation_tasks, return_exceptions=True)
        for worker in self.workers:
            worker.stop()
        results = await asyncio.gather(*self.tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("worker ended with an error: %r", result)


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
    if settings is None and runtime is None:
        raise ValueError("create_app needs settings or a runtime")
    worker_count = workers if workers is not None else (settings or runtime.settings).workers  # type: ignore[union-attr]
    supervisor = WorkerSupervisor(worker_count)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        active = runtime or await Runtime.open(settings, clock=clock)  # type: ignore[arg-type]
        app.state.runtime = active
        await supervisor.start(active)
        try:
            yield
        finally:
            await supervisor.stop()
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
    )
    app.state.workers = supervisor
    if runtime is not None:
        app.state.runtime = runtime
    install_error_handlers(app)
    for module in (
        files,
        file_checks,
        batches,
        batch_insights,
        chat,
        responses,
        models,
        health,
        operations,
        deployments,
        events,
        datasets,
        generation,
    ):
        app.include_router(module.router)
    install_dashboard(app)
    return app
