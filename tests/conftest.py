"""Shared fixtures. Storage and engine tests run on both stores through `store_url`.

PostgreSQL: one throwaway server per session (``initdb`` in a temporary directory, trust
auth, a free port on 127.0.0.1), one migrated template database, and a fresh database per
test cloned from it. With ``CI=true`` a test that needs PostgreSQL fails when the server
cannot start; elsewhere it is skipped with the reason.

In parallel (pytest-xdist, ``make test``) every worker is a session of its own: its own
PostgreSQL server, mock provider and temporary directories, so workers share nothing.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from datamill.runtime import Runtime
from datamill.settings import Settings, load_settings
from datamill_testing.mock_process import MockProviderProcess
from datamill_testing.postgres import PostgresUnavailable, TemporaryPostgres

ISOLATED_PREFIXES = (
    "DATAMILL_",
    "OPENAI_",
    "GROQ_",
    "CEREBRAS_",
    "OPENROUTER_",
    "ANTHROPIC_",
    "GEMINI_",
    # Provider calls read these (providers/network.py): a developer's proxy must not route
    # the tests' loopback calls.
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "all_proxy",
    "no_proxy",
    "SSL_CERT_",
)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: two workers per CPU this process may use, at most 8. Most of a test's time
    is spent waiting (for a subprocess, a server, a poll): run serially, the suite keeps one
    core 40% busy. On 2 busy cores, 4 workers ran the suite in 7.6 minutes where 2 took 9.3."""
    return min(2 * len(os.sched_getaffinity(0)), 8)


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No test sees the developer's keys, config or DATAMILL_HOME; each runs in its own cwd."""
    for name in list(os.environ):
        if name.startswith(ISOLATED_PREFIXES):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("DATAMILL_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return home


# -- PostgreSQL ---------------------------------------------------------------------------

_TEMPLATE = "datamill_template"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TemporaryPostgres]:
    server = TemporaryPostgres()
    try:
        server.start()
    except PostgresUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI=true: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        asyncio.run(_create_template(server))
        yield server
    finally:
        server.stop()


async def _create_template(server: TemporaryPostgres) -> None:
    from datamill.storage import migrate
    from datamill.storage.database import Database

    conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="postgres")
    try:
        await conn.execute(f"CREATE DATABASE {_TEMPLATE}")
    finally:
        await conn.close()
    database = Database.open(server.database_url(_TEMPLATE))
    try:
        await migrate.upgrade(database)
    finally:
        await database.dispose()


def fresh_postgres_database(
    server: TemporaryPostgres, *, migrated: bool = True
) -> tuple[str, Callable[[], None]]:
    """A new database, cloned from the migrated template (or empty when not ``migrated``);
    returns (url, drop)."""
    name = f"t_{secrets.token_hex(6)}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    template = f" TEMPLATE {_TEMPLATE}" if migrated else ""
    asyncio.run(run(f"CREATE DATABASE {name}{template}"))

    def drop() -> None:
        asyncio.run(run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))

    return server.database_url(name), drop


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty, migrated store: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
        return
    server: TemporaryPostgres = request.getfixturevalue("postgres_server")
    url, drop = fresh_postgres_database(server)
    try:
        yield url
    finally:
        drop()


# -- configuration and runtimes -------------------------------------------------------------


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(
    path: Path, deployments: list[dict[str, Any]], aliases: list[dict[str, Any]] = ()
) -> Path:
    """Write a datamill.toml listing ``deployments`` (and ``aliases``)."""
    blocks = []
    for table, entries in (("deployments", deployments), ("aliases", aliases)):
        for entry in entries:
            lines = [f"[[{table}]]"] + [f"{k} = {toml_value(v)}" for k, v in entry.items()]
            blocks.append("\n".join(lines))
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path, store_url: str) -> SettingsFactory:
    """Settings on the test's store. ``deployments`` and ``aliases`` (dicts) go to a
    datamill.toml; other keyword arguments are settings overrides."""

    def make(
        deployments: list[dict[str, Any]] | None = None,
        aliases: list[dict[str, Any]] = (),
        **overrides: Any,
    ) -> Settings:
        env = {
            "DATAMILL_HOME": str(tmp_path / "home"),
            "DATAMILL_DATABASE_URL": store_url,
            "DATAMILL_AUTO_DEPLOYMENTS": "false",
        }
        if deployments is not None:
            path = tmp_path / f"datamill-{secrets.token_hex(3)}.toml"
            env["DATAMILL_CONFIG"] = str(write_config(path, deployments, aliases))
        env.update({k: v for k, v in os.environ.items() if k.startswith("TEST_KEY_")})
        return load_settings(env, **overrides)

    return make


RuntimeFactory = Callable[..., Awaitable[Runtime]]


@pytest.fixture
async def make_runtime(make_settings: SettingsFactory) -> AsyncIterator[RuntimeFactory]:
    """Open runtimes on the test's store; all are closed at the end."""
    opened: list[Runtime] = []

    async def make(
        deployments: list[dict[str, Any]] | None = None,
        *,
        aliases: list[dict[str, Any]] = (),
        clock: Any = None,
        **overrides: Any,
    ) -> Runtime:
        settings = make_settings(deployments, aliases, **overrides)
        runtime = await Runtime.open(settings, clock=clock)
        opened.append(runtime)
        return runtime

    yield make
    for runtime in opened:
        await runtime.close()


# -- the mock provider ----------------------------------------------------------------------


@pytest.fixture
def mock_provider() -> Iterator[MockProviderProcess]:
    """A real OpenAI-compatible HTTP server on 127.0.0.1 with fault switches and counters."""
    with MockProviderProcess() as process:
        yield process


def mock_deployment(mock: MockProviderProcess, **fields: Any) -> dict[str, Any]:
    """A pass-through `openai` deployment pointing at the mock provider."""
    return {"name": "mock", "provider": "openai", "base_url": mock.base_url, **fields}


MockFactory = Callable[..., MockProviderProcess]


@pytest.fixture
def make_mock() -> Iterator[MockFactory]:
    """Mock providers started with a config that survives ``restart()``; all are stopped."""
    started: list[MockProviderProcess] = []

    def make(**config: Any) -> MockProviderProcess:
        process = MockProviderProcess(**config).start()
        started.append(process)
        return process

    yield make
    for process in started:
        process.stop()
