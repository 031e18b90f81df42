"""The `datamill` command."""

from __future__ import annotations

import typer

from datamill import __version__
from datamill.cli import batch, server

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
app.add_typer(batch.app, name="batch")


@app.command()
def version() -> None:
    """Print datamill's version."""
    print(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
