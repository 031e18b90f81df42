"""`datamill serve`: the banner, the default address, a clean stop, and refusing bad config."""

from __future__ import annotations

import signal
import socket
import subprocess
import urllib.error
from pathlib import Path

import pytest

from datamill_testing.mock_process import MockProviderProcess
from tests.cli.conftest import RunCli, StartServer, free_port, http_get
from tests.conftest import write_config

pytestmark = pytest.mark.slow


def _listening_addresses(port: int) -> set[str]:
    """The IPv4 addresses a socket listens on at ``port`` (Linux /proc/net/tcp)."""
    table = Path("/proc/net/tcp")
    if not table.exists():
        pytest.skip("needs /proc/net/tcp")
    found = set()
    for row in table.read_text().splitlines()[1:]:
        local, state = row.split()[1], row.split()[3]
        address, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def test_banner_names_url_store_deployments_and_how_to_stop(
    start_server: StartServer, isolated_environment: Path
):
    server = start_server()
    server.process.wait_for_output("stop")

    banner = " ".join(server.process.stderr.split())
    assert f"serving http://127.0.0.1:{server.port}" in banner
    assert f"store sqlite:{isolated_environment.resolve() / 'datamill.db'}" in banner
    assert "deployments sim (sim, any model, in-process)" in banner
    assert "answers are SIMULATED" in banner
    assert "Ctrl-C" in banner
    assert _listening_addresses(server.port) == {"127.0.0.1"}
    status, info = http_get(f"{server.url}/api/info")
    assert status == 200
    assert info["simulated"] is True


def test_banner_lists_a_provider_from_the_environment(
    start_server: StartServer, mock_provider: MockProviderProcess
):
    server = start_server(
        env={"OPENAI_BASE_URL": mock_provider.base_url, "OPENAI_API_KEY": "sk-secret-value"}
    )
    server.process.wait_for_output("stop")

    banner = " ".join(server.process.stderr.split())
    assert f"openai (openai, any model, {mock_provider.base_url})" in banner
    assert "SIMULATED" not in banner
    assert "sk-secret-value" not in banner
    _, info = http_get(f"{server.url}/api/info")
    assert "sk-secret-value" not in str(info)
    assert info["simulated"] is False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_shuts_the_server_down_cleanly(start_server: StartServer, signum: int):
    server = start_server()

    server.process.signal(signum)
    try:
        stopped = server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running 30 s after {signum!r}:\n{server.process.stderr}")

    assert stopped.code == 0, stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert "Application shutdown complete" in stopped.stderr
    with pytest.raises(urllib.error.URLError, match="refused"):
        http_get(f"{server.url}/healthz", timeout=1)


def test_invalid_config_stops_start_up_before_binding(run_cli: RunCli, tmp_path: Path):
    port = free_port()
    write_config(
        tmp_path / "datamill.toml",
        [{"name": "groq", "base_url": "https://api.groq.com/openai/v1", "max_concurency": 4}],
    )

    bad_file = run_cli("serve", "--port", str(port), timeout=30)
    bad_env = run_cli("serve", "--port", str(port), env={"DATAMILL_WORKERS": "-1"}, timeout=30)

    assert bad_file.code == 3
    assert "deployments.groq.max_concurency: unknown key" in bad_file.output
    assert bad_env.code == 3
    assert "DATAMILL_WORKERS" in bad_env.output
    assert "serving" not in bad_file.output + bad_env.output
    assert "Traceback" not in bad_file.stderr + bad_env.stderr


def test_invalid_provider_options_stop_start_up(run_cli: RunCli, tmp_path: Path):
    write_config(
        tmp_path / "datamill.toml",
        [{"name": "fake", "provider": "sim", "options": {"latency_ms": -5}}],
    )

    done = run_cli("serve", "--port", str(free_port()), timeout=30)

    assert done.code == 3
    assert "deployments.fake.options.latency_ms" in done.output
    assert "serving" not in done.output
