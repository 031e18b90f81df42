"""What every command shares: exit codes, settings loading, error reporting, the event loop."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from datamill.errors import ApiError, ConfigError, SideTaskFailed, StorageError
from datamill.logs import JsonFormatter
from datamill.settings import Settings, load_settings

T = TypeVar("T")

# Soft wrap: a line piped to a file or a log stays one line, so it can be grepped and parsed.
console = Console(stderr=True, highlight=False, soft_wrap=True)
stdout = Console(highlight=False, soft_wrap=True)


class ExitCode(IntEnum):
    """What a datamill command's exit status means."""

    ok = 0  # every request succeeded (or the command did what it was asked)
    some_failed = 1  # the batch finished, but some requests ended in the error file
    usage = 2  # bad command-line usage (typer's own)
    could_not_run = 3  # bad configuration, an invalid input file, an unreachable store
    interrupted = 130  # Ctrl-C; `batch run` resumes where it stopped


def fail(
    message: str, *, hint: str | None = None, code: ExitCode = ExitCode.could_not_run
) -> NoReturn:
    # Escaped: messages quote user input and paths, where "[...]" is not markup.
    console.print(f"[bold red]error:[/] {escape(message)}")
    if hint:
        console.print(f"[dim]{escape(hint)}[/]")
    raise typer.Exit(int(code))


def settings_from_env(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        fail(str(exc))


def configure_logging(level: str, log_format: str = "text") -> None:
    """Log to stderr at ``level``: text lines, or JSON objects (`datamill.logs`)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    if level != "debug":
        # Alembic logs two INFO lines each time the schema revision is read: on every start
        # and on every /readyz probe.
        logging.getLogger("alembic").setLevel(logging.WARNING)


# Allocations between two young collections (CPython's default is 700). A batch makes a few
# short-lived objects per request; collecting every 700 allocations spent 2-3% of `batch run`.
_GC_YOUNG_THRESHOLD = 20_000


def quiet_gc() -> None:
    """Keep the garbage collector off the hot path of a long command.

    What the imports made (modules, SQLAlchemy, pydantic: about a million objects) lives as
    long as the process, yet every full collection walked it again: 6 of them took 0.3-0.5 s
    of a 20,000-request `batch run` (7-10% of its CPU). Frozen, they are never scanned; and
    young collections run every 20,000 allocations instead of 700 (bench/overhead.py,
    docs/benchmarks.md)."""
    gc.freeze()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine on uvloop when available; map datamill errors to exits."""
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        loop_factory = None
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(main)
    except ConfigError as exc:
        fail(str(exc))
    except StorageError as exc:
        fail(str(exc), hint="check DATAMILL_DATABASE_URL, or run `datamill migrate`")
    except ApiError as exc:
        fail(exc.message)
    except SideTaskFailed as exc:
        fail(str(exc), hint="its traceback is in the log above")


def print_columns(rows: Sequence[tuple[str, ...]], *, right: int = 99) -> None:
    """Plain aligned columns on stdout, never shortened: ids are what the other commands
    take. Columns from index ``right`` on are right-aligned (numbers)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [
            cell.rjust(width) if i >= right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        stdout.print("  ".join(cells).rstrip(), markup=False, highlight=False)


def print_json(value: object) -> None:
    """A `--json` answer on stdout: the API's objects, indented, nothing else."""
    import orjson

    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def when(moment: float | None) -> str:
    """A Unix time as the CLI's tables show it (UTC, to the second); ``-`` for none."""
    if moment is None:
        return "-"
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S")
