"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` in a temporary
directory, trust auth, a free port on 127.0.0.1, stopped and deleted at the end.

``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType


class PostgresUnavailable(RuntimeError):
    """PostgreSQL binaries are missing or the server would not start."""


def find_tool(name: str) -> str:
    """The absolute path of a PostgreSQL server tool: on PATH, or in Debian's versioned
    directories (``/usr/lib/postgresql/<version>/bin``), newest version first."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
        reverse=True,
    )
    if candidates:
        return str(candidates[0])
    raise PostgresUnavailable(
        f"{name} not found; install PostgreSQL (Debian: apt-get install -y postgresql)"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TemporaryPostgres:
    def __init__(self, *, durable: bool = False) -> None:
        """``durable``: keep PostgreSQL's default fsync and commit settings (benchmarks);
        tests turn them off, since they never outlive the server."""
        self.durable = durable
        self.port = 0
        self._dir: Path | None = None
        self._as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        """An asyncpg SQLAlchemy URL for the ``postgres`` database."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        if self._as_root:
            args = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(_quote(a) for a in args)]
        return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)

    def start(self) -> TemporaryPostgres:
        initdb, pg_ctl = find_tool("initdb"), find_tool("pg_ctl")
        self._dir = Path(tempfile.mkdtemp(prefix="datamill-pg-"))
        if self._as_root:
            shutil.chown(self._dir, "postgres", "postgres")
        data = self._dir / "data"
        done = self._run(
            [
                initdb,
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "-A",
                "trust",
            ]
        )
        if done.returncode != 0:
            self._cleanup()
            raise PostgresUnavailable(f"initdb failed: {done.stderr.strip()}")
        self.port = _free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self._dir} "
        options += "-c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        done = self._run(
            [
                pg_ctl,
                "-D",
                str(data),
                "-l",
                str(self._dir / "pg.log"),
                "-o",
                options,
                "-w",
                "start",
            ]
        )
        if done.returncode != 0:
            log = (self._dir / "pg.log").read_text(errors="replace")[-2000:]
            self._cleanup()
            raise PostgresUnavailable(f"pg_ctl start failed: {done.stderr.strip()} {log}")
        return self

    def stop(self) -> None:
        if self._dir is None:
            return
        self._run(
            [find_tool("pg_ctl"), "-D", str(self._dir / "data"), "-m", "immediate", "-w", "stop"]
        )
        self._cleanup()

    def _cleanup(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> TemporaryPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\"'\"'") + "'"
