"""`datamill review import-label-studio`: Label Studio's annotation export applied to a
dataset's samples as reviews, through the same `LabelStudioService` as the API. (The tasks
and their labeling config are written by `datamill dataset export --format label-studio`.)"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from datamill.cli.common import console, stdout
from datamill.cli.files import read_file
from datamill.cli.store import run_on_store
from datamill.protocol.labelstudio import LabelStudioImportReport
from datamill.runtime import Runtime

# Problems printed at most; --json has them all (the first 1000).
SHOWN_PROBLEMS = 20


def import_label_studio(
    dataset: Annotated[str, typer.Argument(metavar="DATASET", help="a dataset id or name")],
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="Label Studio's JSON export"
        ),
    ],
    json: Annotated[bool, typer.Option("--json", help="print the API's JSON report")] = False,
) -> None:
    """Apply FILE, Label Studio's JSON (or JSON_MIN) export of DATASET's tasks, to its
    samples as reviews; importing the same file again writes nothing."""
    from datamill.labelstudio.service import label_studio_service

    async def work(runtime: Runtime) -> LabelStudioImportReport:
        dataset_id = await runtime.datasets.resolve(dataset)
        service = label_studio_service(runtime)
        with Progress(
            TextColumn("[bold]{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        ) as progress:
            bar = progress.add_task("importing", total=None)

            def advance(done: int, tasks: int) -> None:
                progress.update(bar, completed=done, total=tasks)

            return await service.import_annotations(dataset_id, read_file(file), on_task=advance)

    report = run_on_store(work)
    if json:
        stdout.print_json(report.model_dump_json())
        return
    console.print(
        f"{report.tasks} tasks, {report.annotations} annotations ({report.format}): "
        f"{report.applied} applied ({report.created} new, {report.replaced} replaced, "
        f"{report.edits} with edits), {report.unchanged} already imported, "
        f"{report.cancelled} cancelled, {report.superseded} superseded, "
        f"{report.gold} gold, {report.errors} errors"
    )
    for problem in report.problems[:SHOWN_PROBLEMS]:
        where = f"task {problem.task}" + (f" ({problem.task_id})" if problem.task_id else "")
        if problem.annotation_id:
            where += f", annotation {problem.annotation_id}"
        console.print(f"  {escape(where)}: {escape(problem.message)}")
    if report.errors > SHOWN_PROBLEMS:
        console.print(f"  ... and {report.errors - SHOWN_PROBLEMS} more (--json lists them)")
