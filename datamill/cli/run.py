"""`datamill batch run`: a one-shot local run with no server, on the same engine and store.

Its state lives in DATAMILL_HOME: the batch is found again by a key made of the input's
content hash and endpoint, so after a crash or Ctrl-C the same command resumes and sends
only what had not finished. OUTPUT is written atomically at the end, each custom_id once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated

import typer

from datamill.cli.common import ExitCode, configure_logging, console, run_async, settings_from_env
from datamill.cli.files import read_file, sha256_of, write_atomically
from datamill.cli.progress import watch_batch
from datamill.cli.reporting import (
    EndpointOption,
    ModeOption,
    detect_endpoint,
    exit_code_for,
    print_validation_errors,
    summary,
)
from datamill.engine.worker import WorkerOptions
from datamill.errors import Conflict
from datamill.protocol.batches import BatchCreate, BatchMode, BatchOptions, BatchStatus
from datamill.runtime import Role, Runtime
from datamill.settings import Settings
from datamill.storage.records import BatchRecord


def run(
    input: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    output: Annotated[Path, typer.Option("-o", "--output", help="where the result lines go")],
    errors: Annotated[
        Path | None,
        typer.Option("--errors", help="failed lines go here (default: into OUTPUT too)"),
    ] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="calls in flight")] = None,
    max_retries: Annotated[int | None, typer.Option(min=0, help="retries per request")] = None,
    timeout: Annotated[float | None, typer.Option(min=0.001, help="seconds per call")] = None,
    endpoint: EndpointOption = None,
    fresh: Annotated[
        bool, typer.Option(help="start over instead of resuming an earlier run of INPUT")
    ] = False,
    mode: ModeOption = None,
) -> None:
    """Run INPUT's requests now, without a server; rerun the same command to resume.

    Exit status: 0 all succeeded, 1 some requests failed, 3 could not run, 130 interrupted.
    """
    settings = local_limits(settings_from_env(concurrency=concurrency, max_retries=max_retries))
    configure_logging(
        "warning" if settings.log_level == "info" else settings.log_level, settings.log_format
    )
    chosen = detect_endpoint(input, endpoint)
    try:
        code = run_async(_run(settings, input, output, errors, chosen, timeout, fresh, mode))
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once, the leases recover
        console.print("[yellow]interrupted[/]: run the same command again to resume")
        code = ExitCode.interrupted
    raise typer.Exit(int(code))


# A local file is the user's own: OpenAI's upload limits (200 MB, 50,000 lines), the server's
# defaults, apply to `batch run` only when set in the environment.
_LOCAL_LIMITS = {"max_file_bytes": 2**62, "max_file_lines": 2**62}


def local_limits(settings: Settings) -> Settings:
    """``settings`` with no upload limit on a local file, unless the environment sets one."""
    unset = {k: v for k, v in _LOCAL_LIMITS.items() if k not in settings.model_fields_set}
    return settings.model_copy(update=unset)


async def _run(
    settings: Settings,
    input: Path,
    output: Path,
    errors: Path | None,
    endpoint: str,
    timeout: float | None,
    fresh: bool,
    mode: BatchMode | None,
) -> ExitCode:
    runtime = await Runtime.open(settings)
    try:
        batch = await _find_or_create(runtime, input, endpoint, settings, timeout, fresh, mode)
        if not BatchStatus(batch.status).terminal:
            interrupted = await _execute(runtime, batch, settings, timeout)
            batch = await runtime.batches.get(batch.id)
            if interrupted:
                console.print(
                    f"[yellow]interrupted[/]: {summary(batch)}; "
                    "run the same command again to resume"
                )
                return ExitCode.interrupted
        if batch.status == BatchStatus.failed:
            print_validation_errors(batch)
            return ExitCode.could_not_run
        await _write_outputs(runtime, batch, output, errors)
        console.print(summary(batch))
        where = f"{output}" + (f" (errors in {errors})" if errors else "")
        console.print(f"results in {where}")
        return exit_code_for(batch)
    finally:
        await runtime.close()


async def _find_or_create(
    runtime: Runtime,
    input: Path,
    endpoint: str,
    settings: Settings,
    timeout: float | None,
    fresh: bool,
    mode: BatchMode | None,
) -> BatchRecord:
    key = f"run:{endpoint}:{sha256_of(input)}"
    existing = await runtime.batches.find_by_key(key)
    # Failed validation sent nothing, and its cause may have been the configuration (a model
    # no deployment served), so it is validated again rather than its verdict repeated.
    if existing is not None and (fresh or existing.status == BatchStatus.failed):
        if not BatchStatus(existing.status).terminal:
            # Left running, the old batch would be executed by the next `serve` on this store.
            with contextlib.suppress(Conflict):  # finalizing: nothing is left to send
                await runtime.batches.cancel(existing.id)
        await runtime.batches.forget_key(key)
        existing = None
    if existing is not None:
        if BatchStatus(existing.status).terminal:
            console.print(
                f"{existing.id} already ran on this input ({existing.status}); writing its "
                "results again (--fresh runs the input again)"
            )
        else:
            done = existing.completed_count + existing.failed_count
            console.print(
                f"resuming {existing.id} ({existing.status}, {done} of {existing.total_count} done)"
            )
        return existing
    record = await runtime.files.upload(read_file(input), filename=input.name, purpose="batch")
    options = BatchOptions(max_retries=settings.max_retries, timeout=timeout, mode=mode)
    return await runtime.batches.create(
        BatchCreate(
            input_file_id=record.id,
            endpoint=endpoint,
            completion_window="24h",
            datamill=options,
        ),
        idempotency_key=key,
    )


async def _execute(
    runtime: Runtime, batch: BatchRecord, settings: Settings, timeout: float | None
) -> bool:
    """Run a worker on this batch until it ends; True when interrupted by a signal."""
    (worker,) = runtime.start_side_tasks(
        Role.run,
        options=WorkerOptions(
            concurrency=settings.concurrency,
            max_retries=settings.max_retries,
            timeout=timeout,
            batch_ids=frozenset({batch.id}),
            idle_poll=0.1,
            sweep_interval=0.25,
        ),
    )
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if interrupted.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, leases recover on restart
        interrupted.set()
        console.print("[yellow]stopping: finishing calls in flight (Ctrl-C again to quit now)[/]")
        worker.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    watch = asyncio.create_task(
        watch_batch(runtime, batch.id, stop=interrupted, plain_every=settings.progress_interval)
    )
    # A critical side task failing (the worker) ends the run too, with its message.
    failed = asyncio.create_task(runtime.side_tasks.wait_failed())
    try:
        await asyncio.wait({watch, failed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        failed.cancel()
        watch.cancel()
        await asyncio.gather(watch, failed, return_exceptions=True)
        await runtime.stop_side_tasks()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if runtime.side_tasks.failure is not None:
        raise runtime.side_tasks.failure
    watch.result()  # its own error, if it had one
    return interrupted.is_set()


async def _write_outputs(
    runtime: Runtime, batch: BatchRecord, output: Path, errors: Path | None
) -> None:
    _, successes = await runtime.batches.results(batch.id, ok=True)
    _, failures = await runtime.batches.results(batch.id, ok=False)
    if errors is None:
        await write_atomically(output, successes, failures)
    else:
        await write_atomically(output, successes)
        await write_atomically(errors, failures)
