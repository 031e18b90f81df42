"""What every benchmark shares: inputs, stores, the mock provider, timing processes.

Each benchmark script runs its contenders as separate processes against one mock provider
(another process), and measures each contender's wall time and CPU from the operating
system's own accounting (``wait4`` rusage for processes that end, ``/proc/<pid>/stat`` for
servers that keep running). The mock's CPU is never counted. Each script prints one line:
``name key=value ...``.
"""

from __future__ import annotations

import compileall
import contextlib
import functools
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from datamill_testing.mock_process import MockProviderProcess
from datamill_testing.postgres import TemporaryPostgres

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
_TICKS = os.sysconf("SC_CLK_TCK")


def datamill_command(*args: str) -> list[str]:
    _compile_datamill()
    return [PYTHON, "-m", "datamill.cli.main", *args]


@functools.cache
def _compile_datamill() -> None:
    """datamill's bytecode and its mocks', as `make install` leaves them: an editable checkout
    has none, and with PYTHONDONTWRITEBYTECODE set every timed process would compile its
    sources again."""
    import datamill
    import datamill_testing

    for package in (datamill, datamill_testing):
        compileall.compile_dir(Path(package.__file__).parent, quiet=1)


def write_chat_input(path: Path, requests: int, *, model: str = "mock-model") -> Path:
    """A batch input of ``requests`` small chat completions, custom ids ``r0`` ... ``rN-1``."""
    with path.open("wb") as handle:
        for n in range(requests):
            line = {
                "custom_id": f"r{n}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": model,
                    "messages": [{"role": "user", "content": f"Say something about {n}."}],
                    "max_tokens": 32,
                },
            }
            handle.write(orjson.dumps(line) + b"\n")
    return path


def count_custom_ids(*paths: Path) -> tuple[int, int]:
    """(lines, distinct custom ids) across result files."""
    seen: set[str] = set()
    lines = 0
    for path in paths:
        if not path.exists():
            continue
        with path.open("rb") as handle:
            for raw in handle:
                lines += 1
                seen.add(orjson.loads(raw)["custom_id"])
    return lines, len(seen)


@dataclass(frozen=True, slots=True)
class Finished:
    """A contender process that ran to its end."""

    returncode: int
    wall: float
    cpu: float  # user + system seconds
    peak_rss_mb: float
    output: str

    def per_request_us(self, requests: int) -> float:
        return self.cpu / requests * 1e6


def run_process(
    command: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 3600,
) -> Finished:
    """Run a command to its end; its wall time, CPU and peak memory from ``wait4``."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            list(command),
            env={**os.environ, **(env or {})},
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.01)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        log.seek(0)
        output = log.read().decode("utf-8", "replace")
    return Finished(
        returncode=process.returncode,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,
        output=output,
    )


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def process_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sqlite_url(home: Path) -> str:
    """The store datamill keeps in ``home`` by default."""
    return f"sqlite+aiosqlite:///{home / 'datamill.db'}"


@contextlib.contextmanager
def store(kind: str) -> Iterator[tuple[str, Path]]:
    """(database URL, DATAMILL_HOME) for a fresh store: SQLite in a temporary home, or a
    throwaway PostgreSQL with its default (durable) settings."""
    with tempfile.TemporaryDirectory(prefix="datamill-bench-") as home:
        if kind == "sqlite":
            yield sqlite_url(Path(home)), Path(home)
            return
        with TemporaryPostgres(durable=True) as server:
            yield server.url, Path(home)


@contextlib.contextmanager
def mock_provider(**config: object) -> Iterator[MockProviderProcess]:
    with MockProviderProcess(**config) as mock:
        yield mock


def datamill_env(url: str, home: Path, mock: MockProviderProcess, **extra: str) -> dict[str, str]:
    return {
        "DATAMILL_HOME": str(home),
        "DATAMILL_DATABASE_URL": url,
        "DATAMILL_AUTO_DEPLOYMENTS": "true",
        "OPENAI_BASE_URL": mock.base_url,
        "OPENAI_API_KEY": "bench",
        "DATAMILL_MAX_FILE_LINES": "2000000",
        "DATAMILL_MAX_FILE_BYTES": str(2 * 1024**3),
        **extra,
    }


def deployment_toml(
    base_url: str, *, rpm: int | None = None, max_concurrency: int | None = None
) -> str:
    """One pass-through deployment on the mock; a limit only where it is told."""
    lines = [
        "[[deployments]]",
        'name = "mock"',
        'provider = "openai"',
        f'base_url = "{base_url}"',
        'api_key_env = "OPENAI_API_KEY"',
    ]
    if rpm is not None:
        lines.append(f"rpm = {rpm}")
    if max_concurrency is not None:
        lines.append(f"max_concurrency = {max_concurrency}")
    return "\n".join(lines) + "\n"


def told_env(home: Path, mock: MockProviderProcess, **limits: int | None) -> dict[str, str]:
    """Environment entries that configure the mock deployment with ``limits`` told."""
    config = home / "datamill.toml"
    config.write_text(deployment_toml(mock.base_url, **limits))
    return {"DATAMILL_CONFIG": str(config), "DATAMILL_AUTO_DEPLOYMENTS": "false"}


def machine() -> str:
    cores = os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return f"{platform.machine()} {cores} cores {memory:.0f} GB Python {platform.python_version()}"


def line(name: str, **figures: object) -> str:
    """One line of figures: ``name key=value ...`` (floats with sensible precision)."""
    parts = [name]
    for key, value in figures.items():
        if isinstance(value, float):
            value = f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
        parts.append(f"{key}={value}")
    return " ".join(parts)


def own_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
