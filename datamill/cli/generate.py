"""`datamill generate SPEC`: run a generation job in this process, with a progress bar per
cell; `generate preview SPEC` and `generate coverage JOB|DATASET`.

The job is found again by a key made of the spec's hash and the dataset, so after a crash
or Ctrl-C the same command (or ``--resume``) continues it: nothing recorded is lost, and no
cell gets more samples than its target.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from typer.core import TyperGroup

from datamill.cli.common import (
    ExitCode,
    configure_logging,
    console,
    fail,
    run_async,
    settings_from_env,
    stdout,
)
from datamill.engine.worker import WorkerOptions
from datamill.errors import InvalidRequest
from datamill.runtime import Role, Runtime
from datamill.settings import Settings

if TYPE_CHECKING:
    from datamill.generation.service import BudgetOverride
    from datamill.storage.generation import CellRecord, JobRecord

# Cells shown with their own bar at once (the short ones first); the total is always shown.
MAX_BARS = 12


class _DefaultToRun(TyperGroup):
    """`datamill generate SPEC` runs SPEC; `preview` and `coverage` are subcommands."""

    default_command = "run"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default_command, *args]
        return list(super().parse_args(ctx, args))


app = typer.Typer(
    cls=_DefaultToRun,
    help="Generate a synthetic dataset from a spec: `datamill generate SPEC [--resume]`.",
    no_args_is_help=True,
)

SpecArgument = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of tables")]


@app.command("run")
def run(
    spec: SpecArgument,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue the earlier job of SPEC (it must exist)")
    ] = False,
    dataset: Annotated[
        str | None, typer.Option(help="dataset name (default: the spec's dataset)")
    ] = None,
    budget_usd: Annotated[float | None, typer.Option(min=0.0, help="USD the job may spend")] = None,
    budget_requests: Annotated[
        int | None, typer.Option(min=1, help="requests the job may send")
    ] = None,
    budget_seconds: Annotated[
        float | None, typer.Option(min=0.0, help="running seconds the job may take")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="calls in flight")] = None,
) -> None:
    """Generate SPEC's samples now, without a server; rerun the same command to resume.

    Exit status: 0 every target met, 1 stopped by a budget (or stopped) short of a target,
    3 could not run, 130 interrupted.
    """
    # Generation's modules (Jinja2, jsonschema, PyYAML) load when a generate command runs,
    # not with every datamill command.
    from datamill.generation.service import BudgetOverride
    from datamill.generation.spec import read_spec_file, spec_hash

    settings = settings_from_env(concurrency=concurrency)
    configure_logging(
        "warning" if settings.log_level == "info" else settings.log_level, settings.log_format
    )
    try:
        parsed, _ = read_spec_file(spec)
    except InvalidRequest as exc:
        fail(exc.message)
    except OSError as exc:
        fail(f"{spec}: {exc}")
    budget = BudgetOverride(usd=budget_usd, requests=budget_requests, seconds=budget_seconds)
    key = f"generate:{spec_hash(parsed)}:{dataset or parsed.dataset_name}"
    spec_data = parsed.model_dump(mode="json", by_alias=True, exclude_none=True)
    try:
        code = run_async(_run(settings, spec_data, key, dataset, budget, resume))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: run the same command again to resume")
        code = ExitCode.interrupted
    raise typer.Exit(int(code))


async def _run(
    settings: Settings,
    spec_data: dict[str, Any],
    key: str,
    dataset: str | None,
    budget: BudgetOverride,
    resume: bool,
) -> ExitCode:
    runtime = await Runtime.open(settings)
    try:
        service = runtime.generation
        job = await service.find_by_key(key)
        if job is None and resume:
            fail("no earlier job of this spec to resume; run it without --resume")
        if job is None:
            job = await service.create(
                spec_data, dataset=dataset, budget=budget, idempotency_key=key
            )
            console.print(f"started {job.id} into dataset {job.dataset_id}")
        else:
            console.print(f"resuming {job.id} ({job.status}, {job.accepted} accepted)")
            job = await service.resume(job.id, budget=budget if budget.values() else None)
        status = await _drive(runtime, settings, job)
        view = await service.get(job.id)
        print_summary(view.job, view.cells)
        if status == "interrupted":
            console.print("[yellow]interrupted[/]: run the same command again to resume")
            return ExitCode.interrupted
        if view.job.status == "completed":
            return ExitCode.ok
        if view.job.status == "failed":
            console.print(f"[red]failed[/]: {view.job.error}")
            return ExitCode.could_not_run
        return ExitCode.some_failed
    finally:
        await runtime.close()


async def _drive(runtime: Runtime, settings: Settings, job: JobRecord) -> str:
    """Run a worker (for the job's batches, a side task of the runtime's) and the job's
    runner until the job ends; a worker that fails stops the job and raises its failure."""
    options = WorkerOptions(
        concurrency=settings.concurrency,
        max_retries=settings.max_retries,
        idle_poll=0.1,
        sweep_interval=0.25,
    )
    (worker,) = runtime.start_side_tasks(Role.run, options=options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        console.print("[yellow]stopping: recording answers in hand (Ctrl-C again to quit now)[/]")

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    runner = asyncio.create_task(runtime.generation.run_job(job.id, runner_id=worker.id, stop=stop))
    failed = asyncio.create_task(runtime.side_tasks.wait_failed())
    failed.add_done_callback(lambda task: None if task.cancelled() else stop.set())
    try:
        await _watch(runtime, job.id, runner)
        outcome = await runner
    finally:
        failed.cancel()
        await asyncio.gather(failed, return_exceptions=True)
        await runtime.stop_side_tasks()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if runtime.side_tasks.failure is not None:
        raise runtime.side_tasks.failure
    return "interrupted" if stop.is_set() else outcome


async def _watch(runtime: Runtime, job_id: str, runner: asyncio.Task[str]) -> None:
    """A bar for the whole job and one per short cell, until the runner ends."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        console=console,
        transient=False,
    ) as progress:
        total = progress.add_task("[bold]all cells", total=None, detail="")
        bars: dict[tuple[str, str], TaskID] = {}
        while True:
            view = await runtime.generation.get(job_id)
            cells = view.cells
            job = view.job
            progress.update(
                total,
                total=sum(c.target for c in cells),
                completed=sum(c.accepted for c in cells),
                detail=f"{job.rejected} rejected, {job.duplicates} duplicates, ${job.cost:.4f}",
            )
            _cell_bars(progress, bars, cells)
            if runner.done():
                return
            await runtime.clock.sleep(0.2)


def _cell_bars(
    progress: Progress, bars: dict[tuple[str, str], TaskID], cells: list[CellRecord]
) -> None:
    short = [c for c in cells if c.accepted < c.target]
    shown = {(c.topic, c.sample_type) for c in short[:MAX_BARS]}
    for cell in cells:
        key = (cell.topic, cell.sample_type)
        if key not in bars and key in shown:
            name = f"{cell.topic[:28]} / {cell.sample_type[:22]}"
            bars[key] = progress.add_task(name, total=cell.target, detail="")
        if key in bars:
            rejected = sum(cell.rejections.values())
            progress.update(
                bars[key],
                completed=cell.accepted,
                detail=f"{cell.in_flight} in flight, {rejected} rejected",
                visible=key in shown or cell.accepted >= cell.target,
            )


def print_summary(job: JobRecord, cells: list[CellRecord]) -> None:
    target = sum(c.target for c in cells)
    full = sum(c.accepted >= c.target for c in cells)
    reasons: dict[str, int] = {}
    for cell in cells:
        for reason, count in cell.rejections.items():
            reasons[reason] = reasons.get(reason, 0) + count
    rejected = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items())) or "none"
    console.print(
        f"{job.id} {job.status}"
        + (f" ({job.stop_reason})" if job.stop_reason else "")
        + f": {job.accepted} of {target} samples accepted, {full} of {len(cells)} cells full;"
        f" {job.requests} requests, ${job.cost:.4f}; rejected: {rejected}; dataset {job.dataset_id}"
    )


# -- preview and coverage -----------------------------------------------------------------


@app.command("preview")
def preview_command(
    spec: SpecArgument,
    topic: Annotated[
        str | None, typer.Option(help="the topic to preview (default: the first)")
    ] = None,
    sample_type: Annotated[str | None, typer.Option(help="only this sample type")] = None,
    as_json: JsonOption = False,
) -> None:
    """Run one request per sample type now and show the prompt, the answer, the sample, why
    it would be rejected, and the estimated cost of the whole job."""
    from datamill.generation.spec import inline_files, read_spec_file

    settings = settings_from_env()
    configure_logging(
        "warning" if settings.log_level == "info" else settings.log_level, settings.log_format
    )
    try:
        _, data = read_spec_file(spec)
        data = inline_files(data, spec.parent)
    except InvalidRequest as exc:
        fail(exc.message)
    report = run_async(_preview(settings, data, topic, sample_type))
    if as_json:
        stdout.print_json(orjson.dumps(report).decode())
        return
    for item in report["samples"]:
        verdict = (
            "[green]accepted[/]" if item["accepted"] else f"[red]rejected: {item['rejection']}[/]"
        )
        stdout.rule(f"{item['sample_type']} / {item['topic']}")
        stdout.print("[bold]prompt[/]")
        for message in item["prompt"]:
            stdout.print(f"  {message['role']}: {message['content']}", markup=False)
        stdout.print("[bold]sample[/]")
        stdout.print_json(orjson.dumps(item["sample"]).decode()) if item[
            "sample"
        ] else stdout.print("  (none)")
        stdout.print(f"{verdict} {item.get('detail') or ''}")
    estimate = report["estimate"]
    stdout.print(
        f"estimate: {estimate['requests']} requests for {estimate['target']} samples "
        f"(acceptance {estimate['acceptance']:.0%}), about ${estimate['cost_usd']:.2f}"
    )


async def _preview(
    settings: Settings, data: dict[str, Any], topic: str | None, sample_type: str | None
) -> dict[str, Any]:
    runtime = await Runtime.open(settings)
    try:
        return await runtime.generation.preview(data, topic=topic, sample_type=sample_type)
    finally:
        await runtime.close()


@app.command("coverage")
def coverage_command(
    reference: Annotated[str, typer.Argument(help="a job id (gen_...), or a dataset id or name")],
    diversity: Annotated[
        bool, typer.Option(help="measure diversity (embeds up to 1,000 samples)")
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Counts per topic x type against targets, rejections, duplicates, diversity."""
    settings = settings_from_env()
    configure_logging(
        "warning" if settings.log_level == "info" else settings.log_level, settings.log_format
    )
    report = run_async(_coverage(settings, reference, diversity))
    if as_json:
        stdout.print_json(orjson.dumps(report).decode())
        return
    table = Table("topic", "sample type", "accepted", "target", "rejected")
    for cell in report["cells"]:
        rejected = ", ".join(f"{n} {r}" for r, n in sorted((cell.get("rejected") or {}).items()))
        table.add_row(
            str(cell["topic"]),
            str(cell["sample_type"]),
            str(cell["accepted"]),
            str(cell.get("target", "-")),
            rejected or "-",
        )
    stdout.print(table)
    if report.get("job_id"):
        stdout.print(
            f"{report['accepted']} of {report['target']} accepted; duplicate rate "
            f"{report['duplicate_rate']:.1%}; rejected: {report['rejected_by_reason'] or 'none'}"
        )
    if report.get("diversity"):
        d = report["diversity"]
        stdout.print(
            f"diversity: mean pairwise distance {d['mean_pairwise_distance']:.3f} "
            f"({d['embedded']} samples), distinct-1 {d['distinct_1']:.3f}, "
            f"distinct-2 {d['distinct_2']:.3f}"
        )


async def _coverage(settings: Settings, reference: str, diversity: bool) -> dict[str, Any]:
    runtime = await Runtime.open(settings)
    try:
        if reference.startswith("gen_"):
            return await runtime.generation.coverage(reference, diversity=diversity)
        dataset_id = await runtime.datasets.resolve(reference)
        return await runtime.generation.dataset_coverage(dataset_id, diversity=diversity)
    finally:
        await runtime.close()
