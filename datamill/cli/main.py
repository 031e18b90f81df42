"""The `datamill` command."""

from __future__ import annotations

import contextlib
import logging
import os
import sys

import typer

from datamill import __version__
from datamill.cli import (
    access,
    backup,
    batch,
    dataset,
    generate,
    review,
    schemas,
    server,
    webhooks,
)
from datamill.cli.common import quiet_gc

app = typer.Typer(
    name="datamill",
    help="A self-hosted LLM data engine: an OpenAI-compatible Batch API on any provider.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(server.serve)
app.command()(server.worker)
app.command()(server.migrate)
app.command()(backup.backup)
app.command()(backup.restore)
app.add_typer(batch.app, name="batch")
app.add_typer(dataset.app, name="dataset")
app.add_typer(review.app, name="review")
app.add_typer(generate.app, name="generate")
app.add_typer(review.app, name="review")
app.add_typer(access.projects_app, name="projects")
app.add_typer(access.keys_app, name="keys")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(schemas.app, name="schemas")


@app.command()
def version() -> None:
    """Print datamill's version."""
    print(__version__)


def main() -> None:
    """The `datamill` process: the command, then an exit without teardown."""
    quiet_gc()  # only here: in a test runner's process, freezing would keep its garbage
    try:
        app()
    except SystemExit as done:
        code = done.code
    else:
        code = 0
    _exit_now(code if isinstance(code, int) else 1 if code else 0)


def _exit_now(code: int) -> None:
    """Leave without the interpreter's teardown, which frees every object one by one (0.1 to
    0.2 s after a large batch). Commands have closed their stores and written their files by
    now; only the standard streams and log handlers still need flushing."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
