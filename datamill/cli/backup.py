"""`datamill backup PATH` and `datamill restore PATH`."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.status import Status

from datamill.cli.common import console, fail, run_async, settings_from_env
from datamill.storage import backup as backups

T = TypeVar("T")


def backup(
    path: Annotated[Path, typer.Argument(dir_okay=False, help="the backup file to write")],
) -> None:
    """Back the store up to PATH, consistently, while servers and workers keep running."""
    url = settings_from_env().resolved_database_url
    started = time.monotonic()
    # A first line for logs: the spinner below is shown on a terminal only.
    console.print(f"backing up {escape(backups.describe(url))} to {escape(str(path))}")
    with console.status("backing up the store") as status:
        size = _run(backups.backup(url, path, progress=_show(status)))
    console.print(
        f"backed up to {escape(str(path))} ({_size(size)}, {time.monotonic() - started:.1f} s)"
    )


def restore(
    path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="a backup file")
    ],
    force: Annotated[
        bool, typer.Option(help="replace what the store holds instead of refusing")
    ] = False,
) -> None:
    """Restore the backup PATH into the store; its unfinished batches resume on its workers.

    Stop the servers and workers of the target store first."""
    url = settings_from_env().resolved_database_url
    started = time.monotonic()
    console.print(f"restoring {escape(str(path))} into {escape(backups.describe(url))}")
    with console.status("restoring the store") as status:
        done = _run(backups.restore(url, path, force=force, progress=_show(status)))
    took = f"restored {escape(str(path))} ({time.monotonic() - started:.1f} s)"
    left = done.released
    if not done.dead_workers:
        console.print(f"{took}; no worker was running when the backup was taken")
        return
    workers = f"{done.dead_workers} worker" + ("" if done.dead_workers == 1 else "s")
    console.print(
        f"{took}; the backup's {workers} left {left.requests:,} requests and "
        f"{left.batches:,} batches unfinished: they are free again, start a server or a "
        "worker to finish them"
    )


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; a backup's own error is told as it is (it says what to do)."""

    async def told() -> T:
        try:
            return await work
        except backups.BackupError as exc:
            fail(str(exc))

    return run_async(told())


def _show(status: Status) -> Callable[[str], None]:
    """Progress: the spinner's text follows the work (a table, a step)."""

    def show(line: str) -> None:
        status.update(escape(line))

    return show


def _size(size: int) -> str:
    if size < 1024:
        return f"{size:,} bytes"
    scaled = float(size)
    for unit in ("KB", "MB", "GB"):
        scaled /= 1024
        if scaled < 1024 or unit == "GB":
            break
    return f"{scaled:,.1f} {unit}"
