"""Fixtures of the browser tests: one `datamill serve` in front of the mock provider and one
headless Chromium per module (Debian's, at /usr/bin/chromium: never a downloaded browser).

Without Chromium (or the playwright package) the browser tests are skipped, and fail under
``CI=true``. Every page load is watched: a request to any host but this server is blocked and
fails the test, and so does an error in the page's console.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from datamill_testing.mock_process import MockProviderProcess
from datamill_testing.mock_provider import MockConfig
from tests.conftest import write_config
from tests.helpers import CHAT, chat_line, jsonl

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Route

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "tests" / ".artifacts" / "screenshots"
WIDTHS = (1280, 390)
_ISOLATED_PREFIXES = ("DATAMILL_", "OPENAI_", "GROQ_", "CEREBRAS_", "OPENROUTER_", "ANTHROPIC_")
_MOCK_DEFAULTS = MockConfig().model_dump()
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Dashboard:
    """A running server and what the tests do to it without a browser."""

    url: str
    mock: MockProviderProcess
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> `keys create --json`
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        # The helpers act with the first key made, if any (local mode needs none).
        first = next(iter(self.keys.values()), None)
        headers = {"Authorization": f"Bearer {first['key']}"} if first else {}
        self.http = httpx.Client(base_url=self.url, trust_env=False, timeout=10, headers=headers)

    def cli(self, *args: str) -> str:
        """Run ``datamill ARGS`` on this server's store; returns what it printed."""
        return run_cli(self.env, *args)

    def submit(self, lines: list[dict[str, Any]], **metadata: str) -> dict[str, Any]:
        """Upload ``lines`` and create a batch of them; returns the Batch object."""
        uploaded = self.http.post(
            "/v1/files", files={"file": ("input.jsonl", jsonl(lines))}, data={"purpose": "batch"}
        )
        uploaded.raise_for_status()
        body = {
            "input_file_id": uploaded.json()["id"],
            "endpoint": CHAT,
            "completion_window": "24h",
        }
        created = self.http.post("/v1/batches", json={**body, "metadata": metadata or None})
        created.raise_for_status()
        batch: dict[str, Any] = created.json()
        return batch

    def batch(self, batch_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.http.get(f"/v1/batches/{batch_id}").raise_for_status().json()
        return answer

    def wait_for(self, batch_id: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (batch := self.batch(batch_id))["status"] not in statuses:
            assert time.monotonic() < deadline, f"still {batch['status']}: {batch}"
            time.sleep(0.1)
        return batch


def run_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "datamill.cli.main", *args],
        cwd=env["DATAMILL_HOME"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=START_TIMEOUT,
    )
    assert done.returncode == 0, f"datamill {' '.join(args)}: {done.stderr.decode()}"
    return done.stdout.decode()


def _start(home: Path, mock: MockProviderProcess, *, roles: tuple[str, ...] = ()) -> Dashboard:
    """Serve the dashboard from ``home``; with ``roles``, first make a key of each role in
    the default project (which ends local mode)."""
    home.mkdir(parents=True, exist_ok=True)
    config = write_config(
        home / "datamill.toml",
        # Few calls at once: a batch of a hundred lines on a 40 ms mock takes a few seconds,
        # long enough to watch it move (and to cancel one).
        [
            {
                "name": "mock",
                "provider": "openai",
                "base_url": mock.base_url,
                "max_concurrency": 2,
                "input_price": 2.5,
                "output_price": 10.0,
            },
            # Generation jobs need schema-valid JSON answers: the simulator gives them.
            {
                "name": "sim",
                "provider": "sim",
                "model": "sim-model",
                "options": {"latency_ms": 5},
                "input_price": 0.5,
                "output_price": 1.5,
            },
        ],
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(_ISOLATED_PREFIXES)}
    env.update(
        DATAMILL_HOME=str(home),
        DATAMILL_CONFIG=str(config),
        DATAMILL_AUTO_DEPLOYMENTS="false",
        DATAMILL_LOG_LEVEL="warning",
        DATAMILL_HEARTBEAT_INTERVAL="0.5",
        DATAMILL_WEBHOOKS_ALLOW_PRIVATE="true",  # the Webhooks page's receiver is on loopback
    )
    keys = {
        role: json.loads(
            run_cli(env, "keys", "create", "--project", "default", "--role", role, "--json")
        )
        for role in roles
    }
    log = home / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "datamill.cli.main", "serve", "--port", str(port)],
            cwd=home,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    dashboard = Dashboard(f"http://127.0.0.1:{port}", mock, process, log, env, keys)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise AssertionError(f"datamill serve exited:\n{log.read_text(errors='replace')}")
        try:
            if dashboard.http.get("/healthz", timeout=1).status_code == 200:
                return dashboard
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no /healthz after {START_TIMEOUT} s")
        time.sleep(0.1)


def serve_dashboard(
    tmp_path_factory: pytest.TempPathFactory, *, roles: tuple[str, ...] = ()
) -> Iterator[Dashboard]:
    """A module's server (see `_start`), stopped at the end of the module."""
    with MockProviderProcess() as mock:
        running = _start(tmp_path_factory.mktemp("dashboard"), mock, roles=roles)
        try:
            yield running
        finally:
            running.http.close()
            running.process.terminate()
            try:
                running.process.wait(15)
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait()


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """A server in local mode (no key)."""
    yield from serve_dashboard(tmp_path_factory)


@pytest.fixture
def mock(dashboard: Dashboard) -> Iterator[MockProviderProcess]:
    """The module's mock provider, with default switches before and after the test."""
    dashboard.mock.control(**_MOCK_DEFAULTS)
    yield dashboard.mock
    dashboard.mock.control(**_MOCK_DEFAULTS)


# -- the browser ------------------------------------------------------------------------------


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the browser tests need Chromium under CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        _unavailable(f"the playwright package is missing ({exc}); run `make install`")
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing; `apt-get install -y chromium` (make test does)")
    playwright = sync_playwright().start()
    try:
        try:
            launched = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
        except Error as exc:
            _unavailable(f"Chromium did not start: {exc}")
        yield launched
        launched.close()
    finally:
        playwright.stop()


@dataclass
class Watch:
    """What a browser context did that a test must not allow."""

    base: str
    foreign: list[str] = field(default_factory=list)  # requests to other hosts (blocked)
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    allowed: tuple[str, ...] = ()  # console errors a test expects

    def check(self) -> None:
        assert not self.foreign, f"requests left this server: {self.foreign}"
        unexpected = [e for e in self.errors if not any(a in e for a in self.allowed)]
        assert not unexpected, f"errors in the page: {unexpected}"


@dataclass
class Browsing:
    """A browser context on the dashboard, at one width and colour scheme."""

    context: BrowserContext
    watch: Watch

    def open(self, path: str) -> Page:
        page = self.context.new_page()
        page.on("console", lambda message: self._console(message))
        page.on("pageerror", lambda error: self.watch.errors.append(f"pageerror: {error}"))
        page.goto(self.watch.base + path)
        return page

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.watch.errors.append(f"{message.text} at {message.location.get('url')}")


def _new_browsing(
    browser: Browser,
    base: str,
    *,
    width: int = 1280,
    scheme: str = "light",
    allow: tuple[str, ...] = (),
) -> Browsing:
    context = browser.new_context(
        viewport={"width": width, "height": 900},
        color_scheme=scheme,  # type: ignore[arg-type]
        accept_downloads=True,
    )
    context.set_default_timeout(20_000)
    watch = Watch(base, allowed=allow)

    def gate(route: Route) -> None:
        if route.request.url.startswith(base):
            route.continue_()
        else:
            watch.foreign.append(route.request.url)
            route.abort()

    context.route("**/*", gate)
    return Browsing(context, watch)


@pytest.fixture
def browse(browser: Browser, dashboard: Dashboard) -> Iterator[Any]:
    """``browse(width=1280, scheme="light", allow=())``: a fresh context, checked and closed
    at the end; ``allow``: console errors the test expects (parts of their text)."""
    opened: list[Browsing] = []

    def open_context(**options: Any) -> Browsing:
        browsing = _new_browsing(browser, dashboard.url, **options)
        opened.append(browsing)
        return browsing

    yield open_context
    for browsing in opened:
        browsing.context.close()
    for browsing in opened:
        browsing.watch.check()


def screenshot(page: Page, name: str, width: int) -> Path:
    """Save the page to tests/.artifacts/screenshots/<name>-<width>.png (ignored by git)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}-{width}.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    if os.environ.get("UPDATE_DOC_IMAGES") == "1":
        shutil.copyfile(path, ROOT / "docs" / "images" / f"dashboard-{name}-{width}.png")
    return path


def generation_spec(*, per_cell: int = 3, topics: int = 3) -> dict[str, Any]:
    """A small generation spec on the server's `sim` deployment."""
    return {
        "name": "support-faq",
        "model": "sim-model",
        "topics": {"items": ["billing", "shipping", "returns", "accounts"][:topics]},
        "sample_types": [
            {
                "name": name,
                "template": "A {{ sample_type }} on {{ topic }} for {{ variation.parties }}",
                "schema": {
                    "type": "object",
                    "required": ["question", "answer"],
                    "additionalProperties": False,
                    "properties": {
                        "question": {"type": "string", "minLength": 20},
                        "answer": {"type": "string", "minLength": 60},
                    },
                },
            }
            for name in ("qa", "troubleshooting")
        ],
        "target": {"per_cell": per_cell},
        "dedup": {"near": False},
        "loop": {"batch_size": 20},
    }


def requests(
    count: int, *, rejected: set[int] = frozenset(), prefix: str = "r"
) -> list[dict[str, Any]]:
    """``count`` chat lines; those in ``rejected`` ask for a model the mock refuses (400)."""
    return [
        chat_line(f"{prefix}{i}", model="reject-me" if i in rejected else "mock-model")
        for i in range(count)
    ]


@pytest.fixture
async def dashboard_http() -> Any:
    """An app on a fresh local store, no worker, and an httpx client in front of it (the
    pages without a browser); the client carries ``app`` and ``runtime``."""
    from datamill.api.app import create_app
    from datamill.runtime import Runtime
    from datamill.settings import load_settings

    async with await Runtime.open(load_settings({})) as runtime:
        app = create_app(runtime=runtime, workers=0)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost"
        ) as http:
            http.app = app  # type: ignore[attr-defined]
            http.runtime = runtime  # type: ignore[attr-defined]
            yield http
