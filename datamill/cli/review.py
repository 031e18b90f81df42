"""`datamill review ...`: reviews of a dataset's samples (Label Studio's annotations
imported, `cli.label_studio`)."""

from __future__ import annotations

import typer

from datamill.cli import label_studio

app = typer.Typer(help="Review datasets: Label Studio annotations imported.", no_args_is_help=True)
app.command("import-label-studio")(label_studio.import_label_studio)
