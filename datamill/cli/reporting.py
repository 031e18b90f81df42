"""Helpers the batch commands share: endpoint detection, summaries, exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.markup import escape

from datamill.cli.common import ExitCode, console
from datamill.protocol.batches import BATCH_ENDPOINTS, BatchMode, BatchStatus
from datamill.storage.records import BatchRecord

EndpointOption = Annotated[
    str | None,
    typer.Option(
        help="/v1/chat/completions, /v1/embeddings or /v1/responses (default: the first line's url)"
    ),
]

ModeOption = Annotated[
    BatchMode | None,
    typer.Option(
        help="online (call the provider per request), native (the provider's own batch "
        "API, about half price) or auto (native when every deployment has it and it is "
        "cheaper); default online",
        case_sensitive=False,
    ),
]


def detect_endpoint(path: Path, given: str | None) -> str:
    if given is not None:
        if given not in BATCH_ENDPOINTS:
            raise typer.BadParameter(
                f"must be one of {', '.join(BATCH_ENDPOINTS)}", param_hint="--endpoint"
            )
        return given
    with path.open("rb") as handle:
        for raw in handle:
            if raw.strip():
                try:
                    url = orjson.loads(raw).get("url")
                except (orjson.JSONDecodeError, AttributeError):
                    break
                if url in BATCH_ENDPOINTS:
                    return str(url)
                break
    return BATCH_ENDPOINTS[0]


def summary(batch: BatchRecord) -> str:
    return (
        f"{batch.id} {batch.status}: {batch.completed_count} succeeded, "
        f"{batch.failed_count} failed of {batch.total_count}"
    )


def exit_code_for(batch: BatchRecord) -> ExitCode:
    if batch.status == BatchStatus.failed:
        return ExitCode.could_not_run
    return ExitCode.some_failed if batch.failed_count else ExitCode.ok


def print_validation_errors(batch: BatchRecord, limit: int = 20) -> None:
    console.print(f"[bold red]batch {batch.id} failed validation[/]; nothing was sent:")
    for error in (batch.errors or [])[:limit]:
        where = f"line {error['line']}" if error.get("line") else "file"
        # Escaped: "[code]" would otherwise be read as rich markup and vanish.
        console.print(escape(f"  {where}: [{error['code']}] {error['message']}"))
