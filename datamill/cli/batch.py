"""`datamill batch ...`: submit, status, list, cancel, download, and the one-shot `run`.

These commands work on the store named by DATAMILL_HOME / DATAMILL_DATABASE_URL through the
same services the HTTP API uses; a running `datamill serve` or `datamill worker` executes
what `submit` creates. `batch run` executes its batch itself.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from datamill.cli.common import ExitCode, console, run_async, settings_from_env, stdout
from datamill.cli.files import read_file, write_atomically
from datamill.cli.progress import watch_batch
from datamill.cli.reporting import (
    EndpointOption,
    ModeOption,
    detect_endpoint,
    exit_code_for,
    print_validation_errors,
    summary,
)
from datamill.cli.run import run
from datamill.protocol.batches import BatchCreate, BatchMode, BatchOptions, BatchStatus
from datamill.render.batches import batch_datamill, batch_object
from datamill.runtime import Runtime
from datamill.settings import Settings

app = typer.Typer(help="Create, watch and collect batches.", no_args_is_help=True)


async def _open(settings: Settings) -> Runtime:
    return await Runtime.open(settings)


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    endpoint: EndpointOption = None,
    metadata: Annotated[list[str] | None, typer.Option(help="key=value, repeatable")] = None,
    wait: Annotated[bool, typer.Option(help="show progress until the batch ends")] = False,
    mode: ModeOption = None,
) -> None:
    """Upload FILE and create a batch; a running serve or worker executes it."""
    settings = settings_from_env()
    request = _batch_request(detect_endpoint(file, endpoint), metadata, mode)
    raise typer.Exit(int(run_async(_submit(settings, file, request, wait))))


def _batch_request(
    endpoint: str, metadata: list[str] | None, mode: BatchMode | None = None
) -> BatchCreate:
    """The batch to create, checked before anything is uploaded (the file id comes later)."""
    pairs: dict[str, str] = {}
    for item in metadata or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not key=value", param_hint="--metadata")
        pairs[key] = value
    try:
        return BatchCreate(
            input_file_id="pending-upload",
            endpoint=endpoint,
            completion_window="24h",
            metadata=pairs or None,
            datamill=BatchOptions(mode=mode) if mode is not None else None,
        )
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise typer.BadParameter(problems, param_hint="--metadata") from None


async def _submit(settings: Settings, file: Path, request: BatchCreate, wait: bool) -> ExitCode:
    runtime = await _open(settings)
    try:
        record = await runtime.files.upload(read_file(file), filename=file.name, purpose="batch")
        request = request.model_copy(update={"input_file_id": record.id})
        batch = await runtime.batches.create(request)
        stdout.print(batch.id)
        counts = await runtime.operations.counts()
        if not counts["live_workers"]:
            console.print(
                "[yellow]no worker is running[/]: start `datamill serve` or `datamill worker` "
                "to execute it, or use `datamill batch run` for a one-shot local run"
            )
        if not wait:
            return ExitCode.ok
        batch = await watch_batch(runtime, batch.id, plain_every=settings.progress_interval)
        if batch.status == BatchStatus.failed:
            print_validation_errors(batch)
        console.print(summary(batch))
        return exit_code_for(batch)
    finally:
        await runtime.close()


@app.command()
def status(
    batch_id: str,
    json: Annotated[bool, typer.Option("--json", help="print the Batch object as JSON")] = False,
) -> None:
    """Show a batch's status, counts and files."""
    settings = settings_from_env()

    async def main() -> None:
        runtime = await _open(settings)
        try:
            batch = await runtime.batches.get(batch_id)
        finally:
            await runtime.close()
        if json:
            stdout.print_json(batch_object(batch).model_dump_json())
            return
        stdout.print(summary(batch))
        for label, value in (
            ("endpoint", batch.endpoint),
            ("mode", batch_datamill(batch).mode.value),
            ("model", batch.model),
            ("output file", batch.output_file_id),
            ("error file", batch.error_file_id),
        ):
            if value:
                stdout.print(f"  {label:<12} {value}")
        if batch.status == BatchStatus.failed:
            print_validation_errors(batch)

    run_async(main())


@app.command("list")
def list_batches(limit: Annotated[int, typer.Option(min=1, max=100)] = 20) -> None:
    """List the newest batches."""
    settings = settings_from_env()

    async def main() -> None:
        runtime = await _open(settings)
        try:
            records, _ = await runtime.batches.list(limit=limit)
        finally:
            await runtime.close()
        # Plain aligned columns, never shortened (even in a pipe): ids are what the other
        # commands take, and scripts can cut them out.
        rows = [("id", "status", "endpoint", "done", "failed", "total")]
        rows += [
            (
                b.id,
                b.status,
                b.endpoint,
                str(b.completed_count),
                str(b.failed_count),
                str(b.total_count),
            )
            for b in records
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            cells = [
                cell.ljust(w) if i < 3 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ]
            stdout.print("  ".join(cells).rstrip(), markup=False)

    run_async(main())


@app.command()
def cancel(batch_id: str) -> None:
    """Cancel a batch: calls in flight finish, the rest end as batch_cancelled."""
    settings = settings_from_env()

    async def main() -> None:
        runtime = await _open(settings)
        try:
            batch = await runtime.batches.cancel(batch_id)
        finally:
            await runtime.close()
        stdout.print(summary(batch))

    run_async(main())


@app.command()
def download(
    batch_id: str,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="default: stdout")] = None,
    errors: Annotated[Path | None, typer.Option("--errors", help="write error lines here")] = None,
) -> None:
    """Write a batch's output lines (so far, if it still runs) to OUTPUT or stdout."""
    settings = settings_from_env()

    async def main() -> None:
        runtime = await _open(settings)
        try:
            batch, lines = await runtime.batches.results(batch_id, ok=True)
            if not BatchStatus(batch.status).terminal:
                console.print(f"[yellow]batch is {batch.status}[/]: these are partial results")
            if output is None:
                async for chunk in lines:
                    sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
            else:
                await write_atomically(output, lines)
            if errors is not None:
                _, error_lines = await runtime.batches.results(batch_id, ok=False)
                await write_atomically(errors, error_lines)
        finally:
            await runtime.close()

    run_async(main())


app.command("run")(run)
