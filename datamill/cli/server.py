"""`datamill serve`, `datamill worker` and `datamill migrate`."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from datamill import __version__
from datamill.auth.service import FIRST_KEY_HINT
from datamill.cli.common import configure_logging, console, fail, run_async, settings_from_env
from datamill.metrics.exposition import serve_metrics
from datamill.runtime import Role, Runtime
from datamill.settings import Settings, redact_url
from datamill.storage import migrate as migrations

if TYPE_CHECKING:
    import uvicorn


LogFormat = Annotated[
    str | None,
    typer.Option(help="log lines as text or json [DATAMILL_LOG_FORMAT]"),
]


def describe_deployments(settings: Settings) -> list[str]:
    lines = []
    for d in settings.deployments:
        if d.passthrough:
            serves = "models " + ", ".join(d.models) if d.models else "any model"
        else:
            serves = f"model {d.public_alias}"
            if d.model and d.model != d.public_alias:
                serves += f" (upstream {d.model})"
        where = redact_url(d.base_url) if d.base_url else "in-process"
        lines.append(f"{d.name} ({d.provider}, {serves}, {where})")
    for alias in settings.aliases:
        members = ", ".join(t.name for t in alias.deployments)
        fallbacks = f"; then {', '.join(alias.fallbacks)}" if alias.fallbacks else ""
        lines.append(f"{alias.name} (alias: {members}{fallbacks})")
    return lines


def print_banner(
    settings: Settings,
    runtime: Runtime,
    *,
    url: str | None,
    workers: int,
    access: str | None = None,
) -> None:
    console.print(
        f"[bold]datamill {__version__}[/]" + (f" serving [bold cyan]{url}[/]" if url else "")
    )
    console.print(f"  store        {runtime.database.describe()}")
    for index, line in enumerate(describe_deployments(settings)):
        console.print(f"  {'deployments' if index == 0 else '':<12} {line}")
    if settings.simulated:
        console.print(
            "  [yellow]answers are SIMULATED[/] by the built-in sim provider: set OPENAI_API_KEY "
            "(and OPENAI_BASE_URL), ANTHROPIC_API_KEY or GEMINI_API_KEY, or list deployments in "
            "datamill.toml"
        )
    console.print(f"  workers      {workers} in-process (concurrency {settings.concurrency})")
    if access is not None:
        console.print(f"  access       {access}")
    console.print("  stop         Ctrl-C")


def serve(
    host: Annotated[str | None, typer.Option(help="address to bind [DATAMILL_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="port to bind [DATAMILL_PORT]")] = None,
    workers: Annotated[
        int | None, typer.Option(help="in-process workers; 0 for API only [DATAMILL_WORKERS]")
    ] = None,
    log_format: LogFormat = None,
) -> None:
    """Run the API with in-process workers (binds 127.0.0.1 unless told otherwise)."""
    settings = settings_from_env(host=host, port=port, workers=workers, log_format=log_format)
    configure_logging(settings.log_level, settings.log_format)
    run_async(_serve(settings))


def _uvicorn_server(
    config: uvicorn.Config, *, on_shutdown: Callable[[], None] | None = None
) -> uvicorn.Server:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, except that a stop asked for with SIGTERM or Ctrl-C ends the
        process normally once shut down. uvicorn raises the signal again instead, which kills
        the process (status -15) or interrupts closing the store (a KeyboardInterrupt).
        ``on_shutdown`` runs first when it shuts down: it ends the streams that never end
        by themselves (the event stream), which uvicorn would otherwise wait for forever."""

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            if on_shutdown is not None:
                on_shutdown()
            await super().shutdown(sockets)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # uvicorn's own, without recording the signal to raise it again.
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    return Server(config)


async def _serve(settings: Settings) -> None:
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from datamill.api.app import create_app

    runtime = await Runtime.open(settings)
    try:
        access = await _access_line(runtime)
        app = create_app(runtime=runtime, workers=settings.workers)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            # JSON logs: uvicorn's loggers go through the root's JSON handler, not its own.
            log_config=None if settings.log_format == "json" else LOGGING_CONFIG,
            access_log=False,
            lifespan="on",
        )
        server = _uvicorn_server(config, on_shutdown=runtime.event_hub.close_streams)
        print_banner(
            settings,
            runtime,
            url=f"http://{settings.host}:{settings.port}",
            workers=settings.workers,
            access=access,
        )
        # A critical side task that fails (an in-process worker) stops the server, and the
        # process exits with its message.
        watch = asyncio.create_task(runtime.side_tasks.wait_failed())
        watch.add_done_callback(lambda _: setattr(server, "should_exit", True))
        try:
            await server.serve()
        finally:
            watch.cancel()
        if runtime.side_tasks.failure is not None:
            raise runtime.side_tasks.failure
    finally:
        await runtime.close()


async def _access_line(runtime: Runtime) -> str:
    """What the banner says about keys; refuses to serve beyond loopback with no key."""
    auth = runtime.auth
    names = _names_line(runtime.settings)
    bootstrap = runtime.settings.bootstrap_admin_key
    if bootstrap is not None and await auth.bootstrap(bootstrap.get_secret_value()):
        return (
            "API keys required; DATAMILL_BOOTSTRAP_ADMIN_KEY stored as the first admin key" + names
        )
    if await auth.keys_exist():
        return "API keys required (Authorization: Bearer, or sign in on the dashboard)" + names
    if auth.loopback:
        return (
            "[yellow]local mode[/]: no API key exists and the server listens on loopback "
            "only, so no key is asked for (create one to require keys: datamill keys create)"
        )
    fail(
        f"refusing to serve on {runtime.settings.host} without API keys: anyone who can "
        "reach it could read every batch and spend every provider key",
        hint=f"create the first admin key with `{FIRST_KEY_HINT}`, then start again "
        "(or bind to 127.0.0.1)",
    )


def _names_line(settings: Settings) -> str:
    """Bound to every address with no DATAMILL_ALLOWED_HOSTS, only loopback names get in."""
    if settings.host.strip("[]") not in {"0.0.0.0", "::"} or settings.allowed_hosts:
        return ""
    return (
        "\n  [yellow]names[/]        only localhost, 127.0.0.1 and [::1] are answered (421 for "
        "others): list the names clients use in DATAMILL_ALLOWED_HOSTS"
    )


def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="provider calls in flight [DATAMILL_CONCURRENCY]")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="serve this worker's GET /metrics on this port"),
    ] = None,
    metrics_host: Annotated[
        str | None, typer.Option(help="address the metrics port binds [DATAMILL_HOST]")
    ] = None,
    log_format: LogFormat = None,
) -> None:
    """Run a standalone worker (scaled mode: PostgreSQL shared with the API servers)."""
    settings = settings_from_env(concurrency=concurrency, log_format=log_format)
    configure_logging(settings.log_level, settings.log_format)
    metrics_at = (metrics_host or settings.host, metrics_port) if metrics_port is not None else None
    run_async(_worker(settings, metrics_at=metrics_at))


async def _worker(settings: Settings, *, metrics_at: tuple[str, int] | None = None) -> None:
    runtime = await Runtime.open(settings, run_migrations=False)
    metrics_server = None
    try:
        print_banner(settings, runtime, url=None, workers=1)
        if metrics_at is not None:
            host, port = metrics_at
            metrics_server = await serve_metrics(
                runtime.metrics, runtime.metrics_state, host=host, port=port
            )
            bound = metrics_server.sockets[0].getsockname()[1]
            console.print(f"  metrics      http://{host}:{bound}/metrics")
        (worker,) = runtime.start_side_tasks(Role.worker)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        # Until a signal, or a critical side task failing (the worker's own run included).
        waits = {
            asyncio.create_task(stopping.wait()),
            asyncio.create_task(runtime.side_tasks.wait_failed()),
            asyncio.create_task(runtime.side_tasks.wait(worker.id)),
        }
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        await runtime.stop_side_tasks()
        if runtime.side_tasks.failure is not None:
            raise runtime.side_tasks.failure
    finally:
        if metrics_server is not None:
            metrics_server.close()
        await runtime.close()


def migrate() -> None:
    """Create or upgrade the store's schema to this version of datamill."""
    settings = settings_from_env()
    configure_logging("warning")
    revision = run_async(_migrate(settings))
    console.print(f"store is at schema revision {revision}")


async def _migrate(settings: Settings) -> str | None:
    from datamill.storage.database import Database

    database = Database.open(settings.resolved_database_url)
    try:
        await migrations.upgrade(database)
        return await migrations.current_revision(database)
    finally:
        await database.dispose()
