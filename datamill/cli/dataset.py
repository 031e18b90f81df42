"""`datamill dataset ...`: list, create, show, import (a JSONL file, or a batch's answers),
export, dedup, search, delete and restore datasets, through the same `DatasetService` as
`/api/datasets`.

DATASET is a dataset's id (``ds_...``) or its name. Results go to stdout; progress bars and
messages to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple, TypeVar

import orjson
import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from datamill.cli.common import ExitCode, console, print_columns, stdout
from datamill.cli.files import read_file, write_atomically, write_files_atomically
from datamill.cli.store import run_on_store
from datamill.curation.formats.report import ExportReport
from datamill.errors import ApiError, InvalidLines, NotFound
from datamill.protocol.datasets import (
    DatasetCreate,
    ExportFormat,
    ReviewState,
    SampleStatus,
    Visibility,
)
from datamill.render.datasets import dataset_object, sample_object
from datamill.runtime import Runtime

if TYPE_CHECKING:
    from datamill.curation.formats.splits import Splits
    from datamill.curation.service import DatasetView
    from datamill.labelstudio.service import LabelStudioService
    from datamill.storage.datasets import DatasetRecord

app = typer.Typer(help="Datasets of samples: import, export, search, curate.", no_args_is_help=True)

T = TypeVar("T")

DatasetArgument = Annotated[
    str, typer.Argument(metavar="DATASET", help="a dataset id (ds_...) or name")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print the API's JSON object")]
TopicOption = Annotated[str | None, typer.Option(help="only samples of this topic")]
TypeOption = Annotated[str | None, typer.Option("--sample-type", help="only this sample type")]
StatusOption = Annotated[SampleStatus | None, typer.Option(help="only samples in this status")]
ModelOption = Annotated[str | None, typer.Option(help="only samples from this model")]
BatchOption = Annotated[str | None, typer.Option(help="only samples from this batch")]
JobOption = Annotated[str | None, typer.Option(help="only samples from this generation job")]
DeletedOption = Annotated[
    Visibility,
    typer.Option(help="exclude (live samples), include, or only (deleted ones)"),
]


@app.command("list")
def list_datasets(
    deleted: Annotated[bool, typer.Option("--deleted", help="list deleted datasets")] = False,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 100,
    json: JsonOption = False,
) -> None:
    """List datasets, newest first, with their sample counts."""

    async def work(runtime: Runtime) -> list[DatasetView]:
        visibility = Visibility.only if deleted else Visibility.exclude
        views, _ = await runtime.datasets.list_datasets(limit=limit, deleted=visibility)
        return views

    views = run_on_store(work)
    if json:
        stdout.print_json(orjson.dumps([dataset_object(v).model_dump() for v in views]).decode())
        return
    rows = [("id", "name", "samples", "description")]
    rows += [
        (v.record.id, v.record.name, str(v.sample_count), v.record.description or "") for v in views
    ]
    print_columns(rows)


@app.command()
def create(
    name: str,
    description: Annotated[str | None, typer.Option(help="what the dataset holds")] = None,
) -> None:
    """Create an empty dataset; prints its id."""
    request = _checked(lambda: DatasetCreate(name=name, description=description), "NAME")
    view = run_on_store(lambda runtime: runtime.datasets.create(request))
    stdout.print(view.record.id)


def _checked(build: Callable[[], T], hint: str) -> T:
    from pydantic import ValidationError

    try:
        return build()
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise typer.BadParameter(problems, param_hint=hint) from None


@app.command()
def show(dataset: DatasetArgument, json: JsonOption = False) -> None:
    """A dataset's counts by topic, sample type, status and model, its tokens and cost."""

    async def work(runtime: Runtime) -> DatasetView:
        dataset_id = await runtime.datasets.resolve(dataset, deleted=Visibility.include)
        return await runtime.datasets.get(dataset_id, deleted=Visibility.include)

    view = run_on_store(work)
    wire = dataset_object(view)
    if json:
        stdout.print_json(wire.model_dump_json())
        return
    stats = wire.stats
    assert stats is not None
    stdout.print(f"[bold]{escape(wire.name)}[/] {wire.id}")
    if wire.description:
        stdout.print(escape(wire.description))
    if wire.deleted_at is not None:
        stdout.print("[yellow]deleted[/]: `datamill dataset restore` brings it back")
    stdout.print(
        f"{stats.samples} samples ({stats.deleted_samples} deleted), "
        f"{stats.input_tokens} input and {stats.output_tokens} output tokens, "
        f"${stats.cost_usd:.4f}"
    )
    for title, counts in (
        ("topic", stats.by_topic),
        ("sample type", stats.by_sample_type),
        ("status", stats.by_status),
        ("model", stats.by_model),
    ):
        if counts:
            stdout.print()
            print_columns(
                [(title, "samples")] + [(c.value or "-", str(c.count)) for c in counts], right=1
            )


@app.command("import")
def import_samples(
    dataset: DatasetArgument,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    create_missing: Annotated[
        bool, typer.Option("--create", help="create the dataset (by name) if there is none")
    ] = False,
) -> None:
    """Import FILE (JSONL, one sample per line) into DATASET, all lines or none."""
    size = file.stat().st_size

    async def work(runtime: Runtime) -> ExitCode:
        dataset_id = await _dataset_for_import(runtime, dataset, create=create_missing)
        with _progress(bytes_=True) as progress:
            task = progress.add_task("importing", total=size)

            async def counted() -> AsyncIterator[bytes]:
                async for chunk in read_file(file):
                    progress.advance(task, len(chunk))
                    yield chunk

            try:
                report = await runtime.datasets.import_jsonl(dataset_id, counted())
            except InvalidLines as invalid:
                progress.stop()
                _print_problems(file, invalid)
                return ExitCode.could_not_run
        skipped = f"; {_count(report.duplicates, 'exact duplicate')} skipped"
        console.print(
            f"imported {report.imported} of {report.lines} samples into {dataset_id}"
            + (skipped if report.duplicates else "")
        )
        for duplicate in report.duplicate_lines[:10]:
            console.print(f"  line {duplicate.line}: same content as {duplicate.duplicate_of}")
        if report.duplicates > 10:
            console.print(f"  ... and {report.duplicates - 10} more")
        return ExitCode.ok

    raise typer.Exit(int(run_on_store(work)))


@app.command("import-batch")
def import_batch(
    dataset: DatasetArgument,
    batch_id: Annotated[str, typer.Argument(metavar="BATCH_ID", help="a finished batch")],
    create_missing: Annotated[
        bool, typer.Option("--create", help="create the dataset (by name) if there is none")
    ] = False,
    json: JsonOption = False,
) -> None:
    """Import a finished batch's succeeded answers into DATASET, one sample each (again:
    nothing is added twice)."""
    from datamill.protocol.datasets import BatchImportRequest

    request = _checked(lambda: BatchImportRequest(batch_id=batch_id), "BATCH_ID")

    async def work(runtime: Runtime) -> Any:
        dataset_id = await _dataset_for_import(runtime, dataset, create=create_missing)
        return await runtime.datasets.import_batch(dataset_id, request)

    report = run_on_store(work)
    if json:
        stdout.print_json(report.model_dump_json())
        return
    console.print(
        f"imported {report.imported} of {report.requests} answers of {report.batch_id} into "
        f"{report.dataset_id}"
        + (f"; {report.duplicates} already there" if report.duplicates else "")
    )


async def _dataset_for_import(runtime: Runtime, reference: str, *, create: bool) -> str:
    try:
        return await runtime.datasets.resolve(reference)
    except NotFound as missing:
        if reference.startswith("ds_"):
            raise
        if not create:
            raise NotFound(f"{missing.message}; --create makes it", param="dataset") from None
    view = await runtime.datasets.create(_checked(lambda: DatasetCreate(name=reference), "DATASET"))
    console.print(f"created dataset {escape(reference)} ({view.record.id})")
    return view.record.id


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _print_problems(file: Path, invalid: InvalidLines) -> None:
    console.print(f"[bold red]error:[/] {escape(invalid.message)}")
    for problem in invalid.problems:
        where = f" {problem['param']}" if problem["param"] else ""
        console.print(
            f"  {escape(str(file))}:{problem['line']}{escape(where)}: {escape(problem['message'])}"
        )


def _progress(*, bytes_: bool) -> Progress:
    counter = (DownloadColumn(), TransferSpeedColumn()) if bytes_ else (MofNCompleteColumn(),)
    return Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        *counter,
        TimeElapsedColumn(),
        console=console,
        transient=True,
        # Bars are for people: in a pipe or a log only the summary lines are printed.
        disable=not console.is_terminal,
    )


@app.command()
def export(
    dataset: DatasetArgument,
    output_name: Annotated[
        str | None,
        typer.Option("-o", "--output", help="a file, or a directory (ending in /): default stdout"),
    ] = None,
    export_format: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="jsonl, openai-chat, icl, csv, parquet (datamill[export]) or label-studio",
        ),
    ] = ExportFormat.jsonl,
    topic: TopicOption = None,
    sample_type: TypeOption = None,
    status: StatusOption = None,
    model: ModelOption = None,
    query: Annotated[str | None, typer.Option("-q", "--query", help="search syntax")] = None,
    deleted: DeletedOption = Visibility.exclude,
    split: Annotated[
        str | None,
        typer.Option("--split", help="named fractions: train=0.8,validation=0.1,test=0.1"),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="the seed of --split")] = 0,
    user_field: Annotated[
        str | None, typer.Option(help="openai-chat/icl: the content field of the user message")
    ] = None,
    assistant_field: Annotated[
        str | None, typer.Option(help="openai-chat/icl: the field of the assistant message")
    ] = None,
    system: Annotated[
        str | None, typer.Option(help="openai-chat/icl: a system message for every example")
    ] = None,
    batch_id: BatchOption = None,
    job_id: JobOption = None,
    review_state: Annotated[
        str | None,
        typer.Option(help="only samples in these review states: approved,edited"),
    ] = None,
) -> None:
    """Write DATASET's samples (those matching the filters) in a format, one file per split
    with --split."""
    from datamill.curation.exports import EXTENSIONS, ExportOptions
    from datamill.curation.formats.chat import ChatMapping
    from datamill.curation.lookups import SampleQuery  # loaded by the commands that use it

    splits = None if split is None else _checked_splits(split)
    output = None if output_name is None else Path(output_name)
    to_directory = output_name is not None and (
        Path(output_name).is_dir() or output_name.endswith(("/", "\\"))
    )
    if output is None and (export_format is ExportFormat.parquet or splits is not None):
        why = "Parquet is binary" if splits is None else "--split writes a file per split"
        raise typer.BadParameter(f"{why}: write to a file or a directory", param_hint="--output")
    filters = SampleQuery(
        topic=topic,
        sample_type=sample_type,
        status=status,
        model=model,
        q=query,
        deleted=deleted,
        batch_id=batch_id,
        job_id=job_id,
        review_state=_review_states(review_state),
    )
    mapping = ChatMapping(user_field=user_field, assistant_field=assistant_field, system=system)
    extension = EXTENSIONS[export_format]

    async def work(runtime: Runtime) -> tuple[DatasetRecord, list[_Written]]:
        dataset_id = await runtime.datasets.resolve(dataset)
        total = await runtime.datasets.count_samples(dataset_id, filters)
        with _progress(bytes_=False) as progress:
            task = progress.add_task("exporting", total=total)

            def advance(count: int) -> None:
                progress.advance(task, count)

            tasks = _label_studio(runtime) if export_format is ExportFormat.label_studio else None
            if splits is not None:
                assert output is not None
                options = ExportOptions(mapping=mapping, splits=splits, seed=seed)
                if tasks is not None:
                    record, reports, tagged = await tasks.export_splits(
                        dataset_id, filters, options, on_page=advance
                    )
                else:
                    record, reports, tagged = await runtime.datasets.export_splits(
                        dataset_id, filters, export_format, options, on_page=advance
                    )
                paths = {
                    name: _split_path(output, to_directory, record.name, name, extension)
                    for name in splits.names
                }
                await write_files_atomically(paths, tagged)
                if tasks is not None:
                    await _write_config(tasks, record, output, to_directory)
                return record, [_Written(name, paths[name], reports[name]) for name in paths]
            report = ExportReport()
            if tasks is not None:
                record, chunks = await tasks.export(
                    dataset_id, filters, on_page=advance, report=report
                )
            else:
                record, chunks = await runtime.datasets.export(
                    dataset_id,
                    filters,
                    export_format,
                    on_page=advance,
                    options=ExportOptions(mapping=mapping),
                    report=report,
                )
            if output is None:
                async for chunk in chunks:
                    sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
                return record, [_Written(None, None, report)]
            path = _split_path(output, to_directory, record.name, None, extension)
            await write_atomically(path, chunks)
            if tasks is not None:
                await _write_config(tasks, record, path, False)
            return record, [_Written(None, path, report)]

    record, written = run_on_store(work)
    for item in written:
        _print_export(item)
    if to_directory and export_format is ExportFormat.parquet:
        assert output is not None
        _write_card(output, record, written, splits=split, seed=seed)


def _review_states(text: str | None) -> tuple[ReviewState, ...]:
    if text is None:
        return ()
    try:
        return tuple(ReviewState(part.strip()) for part in text.split(","))
    except ValueError:
        known = ", ".join(ReviewState)
        raise typer.BadParameter(
            f"{text!r}: give review states separated by commas ({known})",
            param_hint="--review-state",
        ) from None


def _label_studio(runtime: Runtime) -> LabelStudioService:
    from datamill.labelstudio.service import label_studio_service

    return label_studio_service(runtime)


async def _write_config(
    service: LabelStudioService, record: DatasetRecord, output: Path, to_directory: bool
) -> None:
    """The tasks' labeling config beside them: ``PATH.config.xml``, or in a directory
    ``DIR/NAME.config.xml``."""
    config = await service.config(record.id, project_id=record.project_id)
    if to_directory:
        path = output / f"{record.name}.config.xml"
    else:
        path = output.with_name(f"{output.name}.config.xml")

    async def chunks() -> AsyncIterator[bytes]:
        yield config.encode()

    await write_atomically(path, chunks())
    console.print(f"wrote the Label Studio labeling config to {escape(str(path))}")


class _Written(NamedTuple):
    split: str | None
    path: Path | None
    report: ExportReport


def _checked_splits(text: str) -> Splits:
    from datamill.curation.formats.splits import parse_splits

    try:
        return parse_splits(text, param="--split")
    except ApiError as exc:
        raise typer.BadParameter(exc.message, param_hint="--split") from None


def _split_path(output: Path, to_directory: bool, name: str, split: str | None, ext: str) -> Path:
    """Where a split goes: DIR/SPLIT.EXT (DIR/NAME.EXT without splits), or PATH with the
    split before its suffix (out.jsonl -> out.train.jsonl)."""
    if to_directory:
        return output / f"{split or name}.{ext}"
    if split is None:
        return output
    return output.with_name(f"{output.stem}.{split}{output.suffix}")


def _print_export(item: _Written) -> None:
    report = item.report
    where = "stdout" if item.path is None else escape(str(item.path))
    console.print(f"exported {report.exported} samples to {where}")
    if report.left_out:
        reasons = ", ".join(f"{n} {reason}" for reason, n in report.left_out.most_common())
        console.print(
            f"  left out {report.left_out_count} failing the fine-tuning checks: {reasons}"
        )
        for sample in report.left_out_samples[:5]:
            console.print(f"    {sample['id']}: {', '.join(sample['errors'])}")
    if report.warnings:
        warned = ", ".join(f"{n} {warning}" for warning, n in report.warnings.most_common())
        console.print(f"  warnings: {warned}")


def _write_card(
    directory: Path,
    record: DatasetRecord,
    written: list[_Written],
    *,
    splits: str | None,
    seed: int,
) -> None:
    from datamill.curation.formats.card import dataset_card

    files = {item.split or "train": item.path.name for item in written if item.path is not None}
    counts = {item.split or "train": item.report.exported for item in written}
    card = dataset_card(
        record.name,
        record.description,
        files,
        counts,
        splits=splits,
        seed=seed if splits is not None else None,
        columns=written[0].report.columns if written else (),
    )
    (directory / "README.md").write_text(card, encoding="utf-8")
    console.print(f"wrote the dataset card {escape(str(directory / 'README.md'))}")


@app.command()
def dedup(
    dataset: DatasetArgument,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="only report the duplicates; delete nothing")
    ] = False,
    threshold: Annotated[
        float | None,
        typer.Option(min=0.5, max=1.0, help="the embedding cosine of a paraphrase (0.74)"),
    ] = None,
    topic: TopicOption = None,
    sample_type: TypeOption = None,
    model: ModelOption = None,
    batch_id: BatchOption = None,
    job_id: JobOption = None,
    json: JsonOption = False,
) -> None:
    """Find DATASET's near-duplicates (among the samples matching the filters, compared
    with the whole dataset) and delete them, keeping the earliest of each group."""
    from datamill.protocol.dedup import DedupRequest

    given = {
        "dry_run": dry_run,
        "threshold": threshold,
        "topic": topic,
        "sample_type": sample_type,
        "model": model,
        "batch_id": batch_id,
        "job_id": job_id,
    }
    request = _checked(
        lambda: DedupRequest(**{k: v for k, v in given.items() if v is not None}), "DATASET"
    )

    async def work(runtime: Runtime) -> Any:
        dataset_id = await runtime.datasets.resolve(dataset)
        with _progress(bytes_=False) as progress:
            task = progress.add_task("dedup", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            return await runtime.datasets.dedup(dataset_id, request, progress=advance)

    report = run_on_store(work)
    if json:
        stdout.print_json(report.model_dump_json())
        return
    verb = "would delete" if report.dry_run else "deleted"
    count = report.duplicates if report.dry_run else report.deleted
    console.print(
        f"{report.scanned} samples checked: {_count(report.duplicates, 'duplicate')} in "
        f"{_count(len(report.groups), 'group')}; {verb} {count}"
        f" ({report.embedded} embedded, {report.reused} vectors reused,"
        f" {report.confirmed} texts of close pairs through the transformer)"
    )
    for group in report.groups[:10]:
        found = ", ".join(f"{d.sample_id} ({d.kind} {d.score:.2f})" for d in group.duplicates[:5])
        console.print(f"  {group.kept} kept; {found}")
    if len(report.groups) > 10:
        console.print(f"  ... and {len(report.groups) - 10} more groups")


@app.command()
def search(
    dataset: DatasetArgument,
    query: Annotated[str, typer.Argument(metavar="QUERY", help='words, "phrases", -excluded')],
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    topic: TopicOption = None,
    sample_type: TypeOption = None,
    batch_id: BatchOption = None,
    job_id: JobOption = None,
    json: JsonOption = False,
) -> None:
    """The newest samples of DATASET matching QUERY: id, topic, type and content."""

    async def work(runtime: Runtime) -> list[Any]:
        from datamill.curation.lookups import SampleQuery

        dataset_id = await runtime.datasets.resolve(dataset)
        filters = SampleQuery(
            topic=topic, sample_type=sample_type, q=query, batch_id=batch_id, job_id=job_id
        )
        records, _ = await runtime.datasets.list_samples(dataset_id, filters, limit=limit)
        return records

    records = run_on_store(work)
    if json:
        stdout.print_json(orjson.dumps([sample_object(r).model_dump() for r in records]).decode())
        return
    rows = [("id", "topic", "type", "content")]
    rows += [(r.id, r.topic or "-", r.sample_type or "-", _excerpt(r.content)) for r in records]
    print_columns(rows)
    console.print(
        f"{len(records)} samples" + (" (more with --limit)" if len(records) == limit else "")
    )


def _excerpt(content: dict[str, Any], width: int = 80) -> str:
    text = orjson.dumps(content).decode()
    return text if len(text) <= width else text[: width - 3] + "..."


@app.command()
def delete(dataset: DatasetArgument) -> None:
    """Delete DATASET: hidden with its samples, until `dataset restore`."""

    async def work(runtime: Runtime) -> str:
        dataset_id = await runtime.datasets.resolve(dataset)
        await runtime.datasets.delete(dataset_id)
        return dataset_id

    dataset_id = run_on_store(work)
    console.print(f"deleted {dataset_id}; `datamill dataset restore {dataset_id}` brings it back")


@app.command()
def restore(dataset: DatasetArgument) -> None:
    """Restore a deleted DATASET (by id, or the newest deleted one of that name)."""

    async def work(runtime: Runtime) -> DatasetView:
        dataset_id = await runtime.datasets.resolve(dataset, deleted=Visibility.only)
        return await runtime.datasets.restore(dataset_id)

    view = run_on_store(work)
    console.print(f"restored {view.record.name} ({view.record.id}): {view.sample_count} samples")
