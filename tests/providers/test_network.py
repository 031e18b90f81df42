"""Proxies and TLS trust, against real servers on loopback: the mock provider served over
https with a CA made for the test, and a forward proxy speaking real CONNECT."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from datamill.errors import ConfigError, ErrorCategory, ProviderError
from datamill.providers.base import Endpoint, ProviderCall
from datamill.providers.http import HttpPool, transport_error
from datamill.providers.http1 import Target
from datamill.providers.network import NoProxy, network_for
from datamill.providers.openai import OpenAIProvider
from datamill.settings import DeploymentConfig
from datamill_testing.mock_provider import start_mock
from datamill_testing.proxy import ForwardProxy
from datamill_testing.tls import PrivateCA, make_private_ca
from tests.helpers import chat_line, jsonl, run_batch

C = ErrorCategory


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    # The way out to a provider does not depend on the store: SQLite is enough here.
    return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def ca(tmp_path: Path) -> PrivateCA:
    return make_private_ca(tmp_path / "ca")


@pytest.fixture
async def tls_mock(ca: PrivateCA) -> AsyncIterator[str]:
    """The mock provider over https, its certificate signed by the test's own CA."""
    runner, port = await start_mock(ssl_context=ca.server_context())
    yield f"https://127.0.0.1:{port}/v1"
    await runner.cleanup()


@pytest.fixture
async def plain_mock() -> AsyncIterator[str]:
    runner, port = await start_mock()
    yield f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[HttpPool]:
    pool = HttpPool()
    yield pool
    await pool.aclose()


def provider_for(base_url: str, http: HttpPool, **fields: Any) -> OpenAIProvider:
    deployment = DeploymentConfig(name="d", base_url=base_url, **fields)
    return OpenAIProvider(deployment, http.using(network_for(deployment)))


def chat_call() -> ProviderCall:
    body = {"model": "mock-model", "messages": [{"role": "user", "content": "hello"}]}
    return ProviderCall(Endpoint.chat_completions, body, timeout=10, raw=orjson.dumps(body))


async def failure(provider: OpenAIProvider) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await provider.complete(chat_call())
    return caught.value


def authority(url: str) -> str:
    return url.split("/")[2]


# -- end to end -------------------------------------------------------------------------------


async def test_a_batch_runs_through_a_proxy_to_a_server_behind_a_private_ca(
    make_runtime, monkeypatch, ca, tls_mock
):
    async with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        runtime = await make_runtime(
            [{"name": "vllm", "base_url": tls_mock, "ca_bundle": str(ca.ca_file)}]
        )
        batch, outputs, errors = await run_batch(
            runtime, jsonl(chat_line(f"r{i}") for i in range(20))
        )

    assert (batch.status, batch.completed_count, errors) == ("completed", 20, [])
    assert {line["response"]["body"]["object"] for line in outputs} == {"chat.completion"}
    # Every connection was a tunnel through the proxy, to the server's address.
    assert proxy.connects
    assert set(proxy.connects) == {authority(tls_mock)}


async def test_an_untrusted_certificate_ends_the_batch_at_once_saying_how_to_fix_it(
    make_runtime, tls_mock
):
    runtime = await make_runtime([{"name": "vllm", "base_url": tls_mock}])
    batch, outputs, errors = await run_batch(
        runtime, jsonl(chat_line(f"r{i}") for i in range(3)), worker={"max_retries": 1}
    )

    assert (batch.status, batch.failed_count, outputs) == ("completed", 3, [])
    assert {line["error"]["code"] for line in errors} == {"network_setup"}
    message = errors[0]["error"]["message"]
    assert f"certificate verify failed for https://{authority(tls_mock)}" in message
    assert "ca_bundle" in message
    assert "SSL_CERT_FILE" in message


# -- proxies ----------------------------------------------------------------------------------


async def test_a_proxy_needing_basic_auth_gets_the_credentials_of_its_url(
    monkeypatch, http, ca, tls_mock
):
    async with ForwardProxy(credentials=("team", "p@ss:word")) as proxy:
        monkeypatch.setenv("https_proxy", f"http://team:p%40ss%3Aword@127.0.0.1:{proxy.port}")
        answer = await provider_for(tls_mock, http, ca_bundle=ca.ca_file).complete(chat_call())

    assert orjson.loads(answer.body)["object"] == "chat.completion"
    assert proxy.connects == [authority(tls_mock)]


async def test_wrong_proxy_credentials_fail_final_naming_the_proxy_and_its_answer(
    monkeypatch, http, ca, tls_mock
):
    async with ForwardProxy(credentials=("team", "right")) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://team:wrong@127.0.0.1:{proxy.port}")
        error = await failure(provider_for(tls_mock, http, ca_bundle=ca.ca_file))

    assert error.category is C.network_setup
    assert not error.category.retryable
    assert f"the proxy {proxy.url} refused CONNECT {authority(tls_mock)}: 407" in error.message
    assert "wrong" not in error.message  # never the credentials


async def test_a_proxy_that_refuses_fails_the_call_naming_it(monkeypatch, http, ca, tls_mock):
    async with ForwardProxy(refuse=403) as proxy:
        monkeypatch.setenv("ALL_PROXY", proxy.url)
        error = await failure(provider_for(tls_mock, http, ca_bundle=ca.ca_file))

    assert error.category is C.network_setup
    assert error.message.startswith(f"the proxy {proxy.url} refused CONNECT")
    assert "403" in error.message
    assert "NO_PROXY" in error.message


async def test_a_proxy_that_cannot_reach_the_server_is_a_retryable_connection_failure(
    monkeypatch, http
):
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    async with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        error = await failure(provider_for(f"https://127.0.0.1:{port}/v1", http))

    assert error.category is C.connection
    assert "502" in error.message


async def test_no_proxy_calls_its_hosts_directly(monkeypatch, http, ca, tls_mock):
    async with ForwardProxy(refuse=403) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "example.com,127.0.0.1")
        answer = await provider_for(tls_mock, http, ca_bundle=ca.ca_file).complete(chat_call())

    assert answer.status_code == 200
    assert proxy.connects == []


@pytest.mark.parametrize(
    "no_proxy", ["127.0.0.0/8", "example.com 127.0.0.1", "LOCALHOST,::1,127.0.0.1/32"]
)
async def test_no_proxy_ranges_and_addresses_call_directly(
    monkeypatch, http, ca, tls_mock, no_proxy
):
    async with ForwardProxy(refuse=403) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("no_proxy", no_proxy)
        answer = await provider_for(tls_mock, http, ca_bundle=ca.ca_file).complete(chat_call())

    assert answer.status_code == 200
    assert proxy.connects == []


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "direct"),
    [
        ("*", "api.openai.com", 443, True),
        ("", "api.openai.com", 443, False),
        # names match themselves and their subdomains, case-insensitively
        ("example.com", "example.com", 443, True),
        ("example.com", "api.example.com", 443, True),
        ("example.com", "myexample.com", 443, False),
        ("example.com", "example.com.org", 443, False),
        (".example.com", "api.example.com", 443, True),
        (".example.com", "example.com", 443, True),  # a leading dot changes nothing (curl)
        ("*.example.com", "api.example.com", 443, True),
        ("Example.COM", "API.example.com", 443, True),
        ("example.com", "example.com.", 443, True),  # the root's dot
        # separators: commas, spaces, or both
        ("a.test, b.test", "b.test", 443, True),
        ("a.test b.test", "b.test", 443, True),
        ("a.test,,  ,b.test", "b.test", 443, True),
        # host:port entries match that port only
        ("vllm.internal:8000", "vllm.internal", 8000, True),
        ("vllm.internal:8000", "vllm.internal", 443, False),
        # addresses, and CIDR ranges of IPv4 and IPv6
        ("10.1.2.3", "10.1.2.3", 443, True),
        ("10.1.2.3", "10.1.2.4", 443, False),
        ("10.0.0.0/8", "10.200.3.4", 443, True),
        ("10.0.0.0/8", "11.0.0.1", 443, False),
        ("192.168.1.7/16", "192.168.200.1", 443, True),  # host bits ignored
        ("10.1.2.3:8000", "10.1.2.3", 8000, True),
        ("10.1.2.3:8000", "10.1.2.3", 443, False),
        ("::1", "::1", 443, True),
        ("::1", "[::1]", 443, True),
        ("[::1]", "::1", 443, True),
        ("[::1]:8000", "::1", 8000, True),
        ("[::1]:8000", "::1", 443, False),
        ("fd00::/8", "fd12:3456::1", 443, True),
        ("fd00::/8", "fe80::1", 443, False),
        # an address entry never matches a name, nor a name an address
        ("10.0.0.0/8", "ten.internal", 443, False),
        ("localhost", "127.0.0.1", 443, False),
        # malformed entries are skipped, the others still count
        ("host:port:x,good.test", "good.test", 443, True),
        ("bad:port", "bad", 443, False),
    ],
)
def test_no_proxy_reads_entries_as_curl_and_requests_do(no_proxy, host, port, direct):
    assert NoProxy.parse(no_proxy).bypasses(host, port) is direct


def test_a_proxy_from_the_environment_honours_no_proxy_ranges():
    environ = {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "10.0.0.0/8,.corp"}
    network = network_for(DeploymentConfig(name="d", base_url="https://x/v1"), environ)

    assert network.proxy_for("https", "10.9.8.7", 443) is None
    assert network.proxy_for("https", "vllm.corp", 443) is None
    assert network.proxy_for("https", "api.openai.com", 443) is not None


async def test_plain_http_goes_through_the_proxy_in_absolute_form(monkeypatch, http, plain_mock):
    async with ForwardProxy(credentials=("u", "p")) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://u:p@127.0.0.1:{proxy.port}")
        provider = provider_for(plain_mock, http)
        for _ in range(3):  # one kept-alive connection to the proxy carries them all
            assert (await provider.complete(chat_call())).status_code == 200

    assert proxy.requests == [f"{plain_mock}/chat/completions"] * 3
    assert proxy.connects == []


async def test_a_proxy_refusing_a_plain_http_request_is_named_too(monkeypatch, http, plain_mock):
    async with ForwardProxy(credentials=("u", "p")) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)  # no credentials
        error = await failure(provider_for(plain_mock, http))

    assert error.category is C.network_setup
    assert error.message.startswith(f"the proxy {proxy.url} refused the request: 407")
    assert 'Basic realm="test"' in error.message


async def test_a_deployment_proxy_overrides_the_environment(monkeypatch, http, ca, tls_mock):
    async with ForwardProxy(refuse=403) as refusing, ForwardProxy() as chosen:
        monkeypatch.setenv("HTTPS_PROXY", refusing.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the deployment's proxy ignores it too
        via = provider_for(tls_mock, http, ca_bundle=ca.ca_file, proxy=chosen.url)
        assert (await via.complete(chat_call())).status_code == 200
        monkeypatch.delenv("NO_PROXY")
        direct = provider_for(tls_mock, http, ca_bundle=ca.ca_file, proxy="")
        assert (await direct.complete(chat_call())).status_code == 200

    assert chosen.connects == [authority(tls_mock)]
    assert refusing.connects == []


async def test_a_batch_runs_through_the_proxy_named_by_proxy_env_and_logs_no_password(
    make_runtime, monkeypatch, ca, tls_mock, caplog
):
    password = "pr0xy-s3cret:pw"
    async with (
        ForwardProxy(credentials=("team", password)) as chosen,
        ForwardProxy(refuse=403) as refusing,
    ):
        monkeypatch.setenv("HTTPS_PROXY", refusing.url)  # proxy_env overrides the environment
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # ... and NO_PROXY, as proxy does
        # Read at load, as make_settings hands TEST_KEY_* variables to load_settings.
        monkeypatch.setenv(
            "TEST_KEY_PROXY", f"http://team:pr0xy-s3cret%3Apw@127.0.0.1:{chosen.port}"
        )
        with caplog.at_level(logging.DEBUG):
            runtime = await make_runtime(
                [
                    {
                        "name": "vllm",
                        "base_url": tls_mock,
                        "ca_bundle": str(ca.ca_file),
                        "proxy_env": "TEST_KEY_PROXY",
                    }
                ]
            )
            batch, _outputs, errors = await run_batch(
                runtime, jsonl(chat_line(f"r{i}") for i in range(5))
            )
            shown = repr(runtime.settings) + repr(
                [network_for(d) for d in runtime.settings.deployments]
            )

    assert (batch.status, batch.completed_count, errors) == ("completed", 5, [])
    assert set(chosen.connects) == {authority(tls_mock)}
    assert refusing.connects == []
    assert "s3cret" not in caplog.text
    assert "s3cret" not in shown
    assert "dGVhbTpwcjB4eS1zM2NyZXQ6cHc" not in shown  # nor its base64 (team:password)


async def test_wrong_credentials_in_proxy_env_fail_naming_the_proxy_never_the_password(
    monkeypatch, http, ca, tls_mock
):
    async with ForwardProxy(credentials=("team", "right")) as proxy:
        monkeypatch.setenv("CORP_PROXY", f"http://team:wr0ng-pass@127.0.0.1:{proxy.port}")
        error = await failure(
            provider_for(tls_mock, http, ca_bundle=ca.ca_file, proxy_env="CORP_PROXY")
        )

    assert error.category is C.network_setup
    assert f"the proxy {proxy.url} refused CONNECT {authority(tls_mock)}: 407" in error.message
    assert "wr0ng-pass" not in error.message


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "proxy_env names CORP_PROXY, which is not set"),
        ("socks5://u:s3cret@proxy:1080", "socks5:// proxies are not supported"),
        ("http://u:s3cret@[proxy:3128", "not a proxy URL"),
        ("http://u:s3cret@proxy:port", "the proxy's port is not a number"),
    ],
)
def test_a_bad_proxy_env_stops_start_up_naming_it_never_its_value(monkeypatch, value, problem):
    if value is not None:
        monkeypatch.setenv("CORP_PROXY", value)
    deployment = DeploymentConfig(name="d", base_url="https://x/v1", proxy_env="CORP_PROXY")
    with pytest.raises(ConfigError) as caught:
        network_for(deployment)

    assert str(caught.value).startswith("deployments.d.proxy_env")
    assert problem in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_unsupported_proxies_stop_start_up_naming_the_variable(monkeypatch):
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(ConfigError, match=r"ALL_PROXY: socks5:// proxies are not supported"):
        network_for(DeploymentConfig(name="d", base_url="https://api.example.com/v1"))


def test_datamill_toml_never_holds_proxy_credentials():
    with pytest.raises(ValueError, match="proxy_env"):
        DeploymentConfig(name="d", base_url="https://x/v1", proxy="http://u:secret@proxy:3128")
    with pytest.raises(ValueError, match="http://"):
        DeploymentConfig(name="d", base_url="https://x/v1", proxy="socks5://proxy:1080")


def test_without_a_proxy_targets_are_what_they_were():
    deployment = DeploymentConfig(name="d", base_url="https://api.example.com/v1")
    network = network_for(deployment, environ={})
    target = HttpPool().using(network).prepare(f"{deployment.base_url}/chat/completions", {})

    assert target.origin.proxy is None
    assert target.origin.context is None
    assert target.head == Target.prepare(f"{deployment.base_url}/chat/completions", {}).head


# -- trust ------------------------------------------------------------------------------------


async def test_ssl_cert_file_is_trusted(monkeypatch, ca, tls_mock):
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_file))
    http = HttpPool()  # the process's default context is made on first use, from the env
    try:
        answer = await provider_for(tls_mock, http).complete(chat_call())
    finally:
        await http.aclose()

    assert answer.status_code == 200


@pytest.fixture
def ca_directory(ca: PrivateCA, tmp_path: Path) -> Path:
    """The CA in a directory as OpenSSL looks one up: named by the hash of its subject."""
    digest = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(ca.ca_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    if digest.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the openssl command is required under CI=true")
        pytest.skip("the openssl command is not available")
    directory = tmp_path / "certs"
    directory.mkdir()
    (directory / f"{digest.stdout.strip()}.0").write_bytes(ca.ca_file.read_bytes())
    return directory


async def test_a_ca_directory_is_trusted(http, ca_directory, tls_mock):
    answer = await provider_for(tls_mock, http, ca_bundle=ca_directory).complete(chat_call())

    assert answer.status_code == 200


async def test_verify_false_works_and_warns_at_start_up_naming_the_deployment(
    http, tls_mock, caplog
):
    with caplog.at_level(logging.WARNING, logger="datamill.providers"):
        provider = provider_for(tls_mock, http, verify=False)

    assert (await provider.complete(chat_call())).status_code == 200
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "deployment d" in record.getMessage()
    assert "NOT verified" in record.getMessage()


def test_an_unreadable_ca_bundle_stops_start_up(tmp_path):
    deployment = DeploymentConfig(name="d", base_url="https://x/v1", ca_bundle=tmp_path / "no")
    with pytest.raises(ConfigError, match=r"deployments\.d\.ca_bundle: cannot read"):
        network_for(deployment)


async def test_https_to_a_plain_http_server_fails_final_naming_the_handshake(http, plain_mock):
    error = await failure(provider_for(plain_mock.replace("http://", "https://"), http))

    assert error.category is C.network_setup
    assert "TLS handshake with https://127.0.0.1" in error.message


def test_an_unknown_host_is_final_and_a_passing_dns_failure_is_retried():
    target = Target.prepare("https://no-such-host.invalid/v1/chat/completions", {})
    unknown = transport_error(
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"), target
    )
    passing = transport_error(
        socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"), target
    )

    assert unknown.category is C.network_setup
    assert "unknown host no-such-host.invalid" in unknown.message
    assert passing.category is C.connection


async def test_a_proxy_setting_stops_start_up_only_for_deployments_that_call_out(
    make_runtime, monkeypatch
):
    monkeypatch.setenv("HTTPS_PROXY", "socks5://127.0.0.1:1080")

    runtime = await make_runtime([{"name": "sim", "provider": "sim"}])
    assert [handle.name for handle in runtime.router.handles] == ["sim"]
    with pytest.raises(ConfigError, match="HTTPS_PROXY: socks5:// proxies are not supported"):
        await make_runtime([{"name": "vllm", "base_url": "https://vllm.internal/v1"}])
