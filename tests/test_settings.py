"""Configuration: DATAMILL_* variables, datamill.toml deployments, well-known keys, secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from datamill.errors import ConfigError
from datamill.settings import (
    WELL_KNOWN_PROVIDERS,
    DeploymentConfig,
    Settings,
    load_settings,
    redact_url,
)
from tests.conftest import write_config

SECRET = "sk-test-0123456789-never-shown"


def load(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    return load_settings(env or {}, **overrides)


def config_error(env: dict[str, str] | None = None, **overrides: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load(env, **overrides)
    return str(caught.value)


# -- environment variables ------------------------------------------------------------------

# (field, raw value in DATAMILL_<FIELD>, parsed value): every field the environment sets.
PARSED = [
    ("home", "/srv/datamill", Path("/srv/datamill")),
    ("database_url", "sqlite:////srv/d.db", "sqlite:////srv/d.db"),
    ("host", "0.0.0.0", "0.0.0.0"),
    ("port", "9000", 9000),
    ("bootstrap_admin_key", "dm-" + "k" * 40, SecretStr("dm-" + "k" * 40)),
    ("config", "other.toml", Path("other.toml")),
    ("auto_deployments", "false", False),
    ("max_file_bytes", "1000000", 1_000_000),
    ("max_file_lines", "100000", 100_000),
    ("max_line_bytes", "65536", 65536),
    ("max_body_bytes", "1024", 1024),
    ("max_gateway_body_bytes", "2048", 2048),
    ("allowed_hosts", "datamill.example.com, 10.0.0.5,", ("datamill.example.com", "10.0.0.5")),
    (
        "allowed_origins",
        "https://A.example.com,http://b.example:8080",
        ("https://a.example.com", "http://b.example:8080"),
    ),
    ("workers", "0", 0),
    ("concurrency", "32", 32),
    ("max_retries", "0", 0),
    ("heartbeat_interval", "0.5", 0.5),
    ("worker_ttl", "5", 5.0),
    ("stuck_after", "60", 60.0),
    ("native_poll_interval", "0.5", 0.5),
    ("events_retention", "600", 600.0),
    ("retention_files_days", "30", 30.0),
    ("retention_batch_requests_days", "0.5", 0.5),
    ("retention_call_logs_days", "90", 90.0),
    ("retention_responses_days", "0", 0.0),
    ("events_max_subscribers", "5", 5),
    ("events_max_replay", "50", 50),
    ("sqlite_synchronous", "FULL", "FULL"),
    ("postgres_synchronous_commit", "true", True),
    ("log_level", "debug", "debug"),
    ("log_format", "json", "json"),
    ("progress_interval", "0.5", 0.5),
    ("retention_webhook_deliveries_days", "30", 30.0),
    ("webhooks_allow_private", "true", True),
    ("webhooks_retry_schedule", "5, 300,0.5", (5.0, 300.0, 0.5)),
    ("webhooks_timeout", "2.5", 2.5),
    ("webhooks_poll_interval", "0.1", 0.1),
]

# (field, a value it refuses)
REFUSED = [
    ("bootstrap_admin_key", "too-short"),
    ("database_url", "mysql://db.local/datamill"),
    ("port", "http"),
    ("port", "70000"),
    ("auto_deployments", "maybe"),
    ("max_file_bytes", "0"),
    ("max_file_lines", "-1"),
    ("max_line_bytes", "lots"),
    ("max_body_bytes", "0"),
    ("max_gateway_body_bytes", "-1"),
    ("allowed_origins", "https://a.example.com/path"),
    ("allowed_origins", "a.example.com"),
    ("workers", "-1"),
    ("concurrency", "0"),
    ("max_retries", "-1"),
    ("heartbeat_interval", "0"),
    ("worker_ttl", "soon"),
    ("stuck_after", "-5"),
    ("native_poll_interval", "0"),
    ("events_retention", "0"),
    ("retention_files_days", "-1"),
    ("retention_batch_requests_days", "forever"),
    ("retention_call_logs_days", "-0.5"),
    ("retention_responses_days", "a week"),
    ("events_max_subscribers", "0"),
    ("events_max_replay", "none"),
    ("sqlite_synchronous", "EXTRA"),
    ("postgres_synchronous_commit", "sometimes"),
    ("log_level", "loud"),
    ("log_format", "yaml"),
    ("progress_interval", "0"),
    ("retention_webhook_deliveries_days", "-1"),
    ("webhooks_allow_private", "perhaps"),
    ("webhooks_retry_schedule", "5,-1"),
    ("webhooks_timeout", "0"),
    ("webhooks_poll_interval", "-1"),
]


def test_every_setting_is_covered_here():
    from_env = set(Settings.model_fields) - {"deployments", "aliases"}
    assert {name for name, _, _ in PARSED} == from_env
    assert {name for name, _ in REFUSED} == from_env - {"home", "host", "config", "allowed_hosts"}


def test_defaults_with_an_empty_environment():
    settings = load()

    assert settings.home == Path(".datamill")
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.database_url is None
    assert settings.resolved_database_url == (
        f"sqlite+aiosqlite:///{(Path('.datamill') / 'datamill.db').resolve()}"
    )
    assert settings.uses_sqlite
    assert (settings.max_file_bytes, settings.max_file_lines) == (200 * 1024 * 1024, 50_000)
    assert (settings.workers, settings.concurrency, settings.max_retries) == (1, 256, 5)
    assert settings.auto_deployments is True


@pytest.mark.parametrize(("field", "raw", "parsed"), PARSED, ids=[p[0] for p in PARSED])
def test_each_variable_is_parsed(field: str, raw: str, parsed: Any, tmp_path: Path):
    if field == "config":
        write_config(tmp_path / raw, [])

    settings = load({f"DATAMILL_{field.upper()}": raw})

    assert getattr(settings, field) == parsed


@pytest.mark.parametrize(("field", "raw"), REFUSED, ids=[f"{f}={v}" for f, v in REFUSED])
def test_a_bad_value_names_the_variable(field: str, raw: str):
    message = config_error({f"DATAMILL_{field.upper()}": raw})

    assert message.startswith(f"DATAMILL_{field.upper()}: ")


def test_empty_variables_count_as_unset():
    assert load({"DATAMILL_PORT": "", "DATAMILL_HOME": ""}) == load()


def test_overrides_win_over_the_environment_and_none_is_no_override():
    settings = load({"DATAMILL_PORT": "9000", "DATAMILL_HOST": "0.0.0.0"}, port=9001, host=None)

    assert (settings.host, settings.port) == ("0.0.0.0", 9001)


def test_a_bad_override_names_the_variable_it_stands_for():
    assert config_error(concurrency=0).startswith("DATAMILL_CONCURRENCY: ")


def test_the_process_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DATAMILL_PORT", "8123")

    assert load_settings().port == 8123


@pytest.mark.parametrize(
    ("url", "resolved"),
    [
        ("sqlite:////srv/d.db", "sqlite+aiosqlite:////srv/d.db"),
        ("sqlite+aiosqlite:////srv/d.db", "sqlite+aiosqlite:////srv/d.db"),
        ("postgresql://u@db:5432/dm", "postgresql+asyncpg://u@db:5432/dm"),
        ("postgres://u@db/dm", "postgresql+asyncpg://u@db/dm"),
        ("postgresql+asyncpg://u:pw@db/dm", "postgresql+asyncpg://u:pw@db/dm"),
    ],
)
def test_database_urls_get_the_async_driver(url: str, resolved: str):
    settings = load({"DATAMILL_DATABASE_URL": url})

    assert settings.resolved_database_url == resolved
    assert settings.uses_sqlite == url.startswith("sqlite")


@pytest.mark.parametrize(
    "url", ["nonsense", "mysql://u@db/dm", "postgresql+psycopg2://u@db/dm", "sqlite+pysqlite:///x"]
)
def test_unsupported_database_urls_are_refused(url: str):
    message = config_error({"DATAMILL_DATABASE_URL": url})

    assert message.startswith("DATAMILL_DATABASE_URL: must be a sqlite:///PATH or postgresql://")


# -- datamill.toml --------------------------------------------------------------------------

# Every field datamill.toml may set, with a value that is not its default.
FULL_DEPLOYMENT: dict[str, Any] = {
    "name": "groq-fast",
    "provider": "openai",
    "base_url": "https://api.groq.com/openai/v1/",
    "api_key_env": "TEST_GROQ_KEY",
    "model": "llama-3.1-8b-instant",
    "alias": "fast",
    "models": ["llama-*"],
    "rpm": 30,
    "tpm": 6000,
    "max_concurrency": 4,
    "input_price": 0.05,
    "output_price": 0.08,
    "cached_input_price": 0.01,
    "batch_input_price": 0.025,
    "batch_output_price": 0.04,
    "timeout": 30.0,
    "proxy": "http://proxy.internal:3128",
    "ca_bundle": "/etc/ssl/private-ca.pem",
    "verify": False,
    "max_answer_bytes": 1024,
    "stream_idle_timeout": 5.0,
    "options": {"region": "us"},
}


def test_every_deployment_field_is_read_from_the_file(tmp_path: Path):
    # proxy_env is the other way to give a proxy (tested below); the rest datamill sets.
    unset = {"api_key", "proxy_url", "source", "proxy_env"}
    assert set(FULL_DEPLOYMENT) == set(DeploymentConfig.model_fields) - unset
    write_config(tmp_path / "datamill.toml", [FULL_DEPLOYMENT])

    [deployment] = load({"TEST_GROQ_KEY": SECRET}).deployments

    for field, value in FULL_DEPLOYMENT.items():
        expected = value.rstrip("/") if field == "base_url" else value
        expected = tuple(expected) if isinstance(expected, list) else expected
        expected = Path(expected) if field == "ca_bundle" else expected
        assert getattr(deployment, field) == expected, field
    assert deployment.api_key == SecretStr(SECRET)
    assert deployment.source == "config"
    assert (deployment.public_alias, deployment.passthrough) == ("fast", False)
    assert deployment.upstream_model("fast") == "llama-3.1-8b-instant"


def test_a_minimal_deployment_passes_every_model_through(tmp_path: Path):
    write_config(tmp_path / "datamill.toml", [{"name": "vllm", "base_url": "http://gpu:8000/v1"}])

    [deployment] = load().deployments

    assert deployment.provider == "openai"
    assert deployment.api_key is None
    assert (deployment.model, deployment.alias, deployment.public_alias) == (None, None, None)
    assert deployment.passthrough
    assert deployment.upstream_model("Qwen/Qwen2.5-7B") == "Qwen/Qwen2.5-7B"
    assert (deployment.rpm, deployment.tpm, deployment.max_concurrency) == (None, None, None)
    assert (deployment.input_price, deployment.output_price, deployment.timeout) == (0, 0, 600)


def test_the_alias_defaults_to_the_model(tmp_path: Path):
    write_config(tmp_path / "datamill.toml", [{"name": "s", "provider": "sim", "model": "m1"}])

    [deployment] = load().deployments

    assert (deployment.public_alias, deployment.passthrough) == ("m1", False)


def test_datamill_config_names_another_file(tmp_path: Path):
    write_config(tmp_path / "datamill.toml", [{"name": "from-cwd", "provider": "sim"}])
    other = write_config(tmp_path / "prod.toml", [{"name": "from-env", "provider": "sim"}])

    assert [d.name for d in load().deployments] == ["from-cwd"]
    assert [d.name for d in load({"DATAMILL_CONFIG": str(other)}).deployments] == ["from-env"]


def test_a_missing_config_file_names_the_variable():
    message = config_error({"DATAMILL_CONFIG": "nowhere.toml"})

    assert message.startswith("DATAMILL_CONFIG points to nowhere.toml, which is not a file")
    assert "unset DATAMILL_CONFIG" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[[deployments]]\nname = 'a'\nprovider = 'sim'\nrmp = 5\n",
            "deployments.a.rmp: unknown key",
        ),
        ("[server]\nport = 1\n", "server: unknown key"),
        ("[[deployments]]\nprovider = 'sim'\n", "deployments[0].name: Field required"),
        ("[[deployments]]\nname = 'a b'\nprovider = 'sim'\n", "deployments.a b.name: String"),
        ("[[deployments]]\nname = 'a'\nprovider = 'sim'\nrpm = 0\n", "deployments.a.rpm: Input"),
        ("[[deployments]]\nname = 'a'\nprovider = 'sim'\ntimeout = 0\n", "deployments.a.timeout"),
        (
            "[[deployments]]\nname = 'a'\nprovider = 'sim'\ninput_price = -1\n",
            "deployments.a.input_price",
        ),
        (
            "[[deployments]]\nname = 'a'\nbase_url = 'ftp://x'\n",
            "deployments.a.base_url: must start with http:// or https://",
        ),
        ("deployments = 3\n", "deployments: Input should be a valid list"),
        ("[deployments]\nname = 'a'\n", "deployments: Input should be a valid list"),
        (
            "[[deployments]]\nname = 'a'\nprovider = 'sim'\n[[deployments]]\nname = 'a'\n"
            "provider = 'sim'\n",
            "deployments.a.name: two deployments are named 'a'; give each deployment its own name",
        ),
        ("[[deployments]\nname = 'a'\n", "not valid TOML"),
        ("[[deployments]]\nname = a\n", "not valid TOML"),
    ],
)
def test_file_errors_name_the_file_and_the_key(tmp_path: Path, text: str, expected: str):
    (tmp_path / "datamill.toml").write_text(text)

    message = config_error()

    assert message.startswith("datamill.toml: ")
    assert expected in message


def test_a_file_that_is_not_utf8(tmp_path: Path):
    (tmp_path / "datamill.toml").write_bytes(b"[[deployments]]\nname = '\xff'\n")

    assert config_error() == "datamill.toml: not UTF-8 text"


def test_a_missing_base_url_says_how_to_fix_it(tmp_path: Path):
    write_config(tmp_path / "datamill.toml", [{"name": "groq"}])

    message = config_error()

    assert "deployments.groq.base_url is missing" in message
    assert 'base_url = "https://' in message


def test_only_openai_deployments_need_a_base_url(tmp_path: Path):
    write_config(
        tmp_path / "datamill.toml",
        [{"name": "local", "provider": "sim"}, {"name": "parrot", "provider": "echo"}],
    )

    assert [d.base_url for d in load().deployments] == [None, None]


def test_an_unset_key_variable_names_deployment_variable_and_fix(tmp_path: Path):
    write_config(
        tmp_path / "datamill.toml",
        [{"name": "groq", "base_url": "https://api.groq.com/openai/v1", "api_key_env": "MY_GROQ"}],
    )

    message = config_error()

    assert "deployments.groq.api_key_env names MY_GROQ, which is not set" in message
    assert "export MY_GROQ=..." in message
    assert config_error({"MY_GROQ": ""}) == message  # empty is unset


@pytest.mark.parametrize("key", ["api_key", "proxy_url", "source"])
def test_keys_datamill_sets_itself_are_refused_in_the_file(tmp_path: Path, key: str):
    write_config(
        tmp_path / "datamill.toml",
        [{"name": "groq", "base_url": "https://api.groq.com/openai/v1", key: SECRET}],
    )

    message = config_error()

    assert f"deployments.groq.{key}: " in message
    assert SECRET not in message


def test_proxy_env_reads_the_proxy_url_with_its_credentials_at_load(tmp_path: Path):
    proxy = f"http://team:{SECRET}@proxy.internal:3128"
    write_config(
        tmp_path / "datamill.toml",
        [{"name": "groq", "base_url": "https://api.groq.com/openai/v1", "proxy_env": "CORP"}],
    )

    settings = load({"CORP": proxy})
    [deployment] = settings.deployments

    assert deployment.proxy_env == "CORP"
    assert deployment.proxy_url == SecretStr(proxy)
    assert SECRET not in repr(settings)
    assert SECRET not in str(deployment.public_view())


def test_an_unset_proxy_env_stops_start_up_naming_deployment_variable_and_fix(tmp_path: Path):
    write_config(
        tmp_path / "datamill.toml",
        [{"name": "groq", "base_url": "https://api.groq.com/openai/v1", "proxy_env": "CORP"}],
    )

    message = config_error()

    assert "deployments.groq.proxy_env names CORP, which is not set" in message
    assert "export CORP=http://user:password@proxy:3128" in message
    assert config_error({"CORP": ""}) == message  # empty is unset


def test_proxy_credentials_in_the_file_are_refused_never_shown(tmp_path: Path):
    proxy = f"http://team:{SECRET}@proxy.internal:3128"
    write_config(tmp_path / "datamill.toml", [{"name": "g", "provider": "sim", "proxy": proxy}])

    message = config_error()

    assert "deployments.g.proxy: datamill.toml never holds secrets" in message
    assert 'proxy_env = "CORP_PROXY"' in message
    assert SECRET not in message


def test_proxy_and_proxy_env_exclude_each_other(tmp_path: Path):
    write_config(
        tmp_path / "datamill.toml",
        [{"name": "g", "provider": "sim", "proxy": "http://p:3128", "proxy_env": "CORP"}],
    )

    assert "set proxy or proxy_env, not both" in config_error({"CORP": "http://p:3128"})


def test_a_literal_key_in_the_file_points_to_api_key_env(tmp_path: Path):
    write_config(tmp_path / "datamill.toml", [{"name": "g", "provider": "sim", "api_key": "x"}])

    assert "api_key_env" in config_error()


# -- well-known keys ------------------------------------------------------------------------


@pytest.mark.parametrize("known", WELL_KNOWN_PROVIDERS, ids=lambda known: known.name)
def test_a_well_known_key_registers_a_pass_through_deployment(known):
    settings = load({known.variable: SECRET})

    [deployment] = settings.deployments
    assert (deployment.name, deployment.provider, deployment.base_url) == (
        known.name,
        known.provider,
        known.base_url,
    )
    assert (deployment.api_key_env, deployment.api_key) == (known.variable, SecretStr(SECRET))
    assert deployment.source == "env"
    assert deployment.passthrough
    assert deployment.models == known.models
    assert not settings.simulated


def test_every_well_known_key_is_covered():
    assert [known.variable for known in WELL_KNOWN_PROVIDERS] == [
        "OPENAI_API_KEY",
        "GROQ_API_KEY",
        "CEREBRAS_API_KEY",
        "OPENROUTER_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
    ]


async def test_well_known_keys_route_each_model_family_to_its_provider():
    from datamill.clock import SystemClock
    from datamill.providers.base import Endpoint
    from datamill.providers.http import HttpPool
    from datamill.runtime import build_router

    settings = load({"OPENAI_API_KEY": "a", "ANTHROPIC_API_KEY": "b", "GEMINI_API_KEY": "c"})
    http = HttpPool()
    router = build_router(settings, http, SystemClock())
    chat = Endpoint.chat_completions

    def served_by(model: str, endpoint: Endpoint = chat) -> str:
        return router.plan(model, endpoint).routes[0].handle.name

    assert served_by("claude-sonnet-4-5") == "anthropic"
    assert served_by("gemini-2.5-flash") == "gemini"
    assert served_by("gpt-4.1-mini") == "openai"
    assert served_by("text-embedding-3-small", Endpoint.embeddings) == "openai"
    assert served_by("text-embedding-004", Endpoint.embeddings) == "gemini"
    await router.aclose()
    await http.aclose()


def test_openai_base_url_is_honoured_with_or_without_a_key():
    keyless = load({"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1/"}).deployments
    with_key = load({"OPENAI_BASE_URL": "http://vllm:8000/v1", "OPENAI_API_KEY": SECRET})

    assert [(d.name, d.base_url, d.api_key) for d in keyless] == [
        ("openai", "http://127.0.0.1:11434/v1", None)
    ]
    [deployment] = with_key.deployments
    assert (deployment.base_url, deployment.api_key) == ("http://vllm:8000/v1", SecretStr(SECRET))


def test_a_bad_openai_base_url_names_the_variable():
    message = config_error({"OPENAI_BASE_URL": "localhost:8000", "OPENAI_API_KEY": SECRET})

    assert message.startswith("OPENAI_BASE_URL must start with http:// or https://")
    assert SECRET not in message


def test_several_keys_register_several_deployments_after_the_file(tmp_path: Path):
    write_config(tmp_path / "datamill.toml", [{"name": "local", "provider": "sim"}])

    settings = load({"GROQ_API_KEY": "g", "OPENROUTER_API_KEY": "o"})

    assert [(d.name, d.source) for d in settings.deployments] == [
        ("local", "config"),
        ("groq", "env"),
        ("openrouter", "env"),
    ]


def test_the_file_wins_a_name_clash(tmp_path: Path):
    write_config(
        tmp_path / "datamill.toml",
        [{"name": "groq", "base_url": "https://proxy.example/groq/v1", "model": "llama"}],
    )

    settings = load({"GROQ_API_KEY": SECRET})

    [deployment] = settings.deployments
    assert (deployment.base_url, deployment.source, deployment.api_key) == (
        "https://proxy.example/groq/v1",
        "config",
        None,
    )


def test_auto_deployments_can_be_turned_off():
    settings = load({"DATAMILL_AUTO_DEPLOYMENTS": "false", "OPENAI_API_KEY": SECRET})

    assert [(d.name, d.source) for d in settings.deployments] == [("sim", "builtin")]
    assert settings.simulated


# -- nothing configured -----------------------------------------------------------------------


def test_nothing_configured_means_the_builtin_simulator():
    settings = load()

    [deployment] = settings.deployments
    assert (deployment.name, deployment.provider, deployment.source) == ("sim", "sim", "builtin")
    assert deployment.passthrough
    assert settings.simulated


def test_a_configured_deployment_replaces_the_simulator(tmp_path: Path):
    write_config(tmp_path / "datamill.toml", [{"name": "vllm", "base_url": "http://gpu/v1"}])

    settings = load()

    assert [d.name for d in settings.deployments] == ["vllm"]
    assert not settings.simulated


def test_configured_sim_deployments_are_simulated(tmp_path: Path):
    write_config(
        tmp_path / "datamill.toml",
        [{"name": "fast", "provider": "sim"}, {"name": "slow", "provider": "sim", "alias": "s"}],
    )

    settings = load()

    assert [d.source for d in settings.deployments] == ["config", "config"]
    assert settings.simulated


# -- secrets --------------------------------------------------------------------------------


def test_keys_never_show_in_repr_dumps_or_public_views(tmp_path: Path):
    write_config(
        tmp_path / "datamill.toml",
        [{"name": "groq", "base_url": "https://api.groq.com/openai/v1", "api_key_env": "K"}],
    )
    settings = load({"K": SECRET, "OPENAI_API_KEY": SECRET, "CEREBRAS_API_KEY": SECRET})

    views = [d.public_view() for d in settings.deployments]
    shown = [
        repr(settings),
        str(settings),
        *(repr(d) for d in settings.deployments),
        orjson.dumps(views).decode(),
        orjson.dumps([d.model_dump(mode="json") for d in settings.deployments]).decode(),
        settings.model_dump_json(),
    ]
    assert all(SECRET not in text for text in shown)
    assert all(view["api_key_set"] for view in views)
    assert [view["api_key_env"] for view in views] == ["K", "OPENAI_API_KEY", "CEREBRAS_API_KEY"]
    assert all(d.api_key.get_secret_value() == SECRET for d in settings.deployments)


def test_public_view_shows_what_the_api_may_show():
    [deployment] = load({"GROQ_API_KEY": SECRET}).deployments

    assert set(deployment.public_view()) == {
        "name",
        "provider",
        "base_url",
        "model",
        "alias",
        "passthrough",
        "models",
        "api_key_env",
        "api_key_set",
        "rpm",
        "tpm",
        "max_concurrency",
        "input_price",
        "output_price",
        "cached_input_price",
        "batch_input_price",
        "batch_output_price",
        "timeout",
        "source",
    }


def test_a_database_password_is_masked_in_repr():
    url = f"postgresql://datamill:{SECRET}@db.internal:5432/datamill"

    settings = load({"DATAMILL_DATABASE_URL": url})

    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert "postgresql://datamill:***@db.internal:5432/datamill" in repr(settings)
    assert SECRET in settings.resolved_database_url  # still usable to connect


@pytest.mark.parametrize(
    ("env", "text"),
    [
        ({"DATAMILL_DATABASE_URL": f"mysql://u:{SECRET}@db/dm"}, None),
        ({"DATAMILL_PORT": SECRET}, None),
        ({}, f"[[deployments]]\nname = 'g'\nbase_url = '{SECRET}'\n"),
        ({}, f"[[deployments]]\nname = 'g'\nprovider = 'sim'\nrpm = '{SECRET}'\n"),
        ({}, f"[[deployments]]\nname = 'g'\nprovider = 'sim'\napi_key = '{SECRET}'\n"),
    ],
)
def test_config_errors_never_quote_values(tmp_path: Path, env: dict[str, str], text: str | None):
    if text is not None:
        (tmp_path / "datamill.toml").write_text(text)

    assert SECRET not in config_error(env)


# -- aliases ----------------------------------------------------------------------------------

SIMS = "".join(
    f"[[deployments]]\nname = '{name}'\nprovider = 'sim'\nmodel = 'm-{name}'\n"
    for name in ("a", "b", "c")
)


def test_aliases_with_weights_shorthands_and_fallbacks(tmp_path: Path):
    (tmp_path / "datamill.toml").write_text(
        SIMS
        + "[[aliases]]\nname = 'big'\n"
        + "deployments = [{ name = 'a', weight = 3 }, { name = 'b' }]\nfallbacks = ['c']\n"
        + "[[aliases]]\nname = 'small'\ndeployments = ['c', 'a']\n"
    )

    big, small = load().aliases

    assert (big.name, [(t.name, t.weight) for t in big.deployments]) == (
        "big",
        [("a", 3.0), ("b", 1.0)],
    )
    assert big.fallbacks == ("c",)
    assert big.members == ("a", "b", "c")
    assert [(t.name, t.weight) for t in small.deployments] == [("c", 1.0), ("a", 1.0)]
    assert small.fallbacks == ()


def test_aliases_may_name_deployments_registered_from_the_environment(tmp_path: Path):
    (tmp_path / "datamill.toml").write_text(
        "[[aliases]]\nname = 'gpt'\ndeployments = ['openai', 'groq']\n"
    )

    [alias] = load({"OPENAI_API_KEY": "sk-1", "GROQ_API_KEY": "gsk-1"}).aliases

    assert alias.members == ("openai", "groq")


@pytest.mark.parametrize(
    ("aliases", "expected"),
    [
        (
            "[[aliases]]\nname = 'x'\ndeployments = ['a', 'zz']\n",
            "aliases.x: no deployment is named 'zz'; known deployments: a, b, c",
        ),
        (
            "[[aliases]]\nname = 'x'\ndeployments = ['a']\nfallbacks = ['a']\n",
            "aliases.x: a listed more than once",
        ),
        (
            "[[aliases]]\nname = 'x'\ndeployments = ['a']\n" * 2,
            "aliases.x.name: two aliases are named 'x'",
        ),
        (
            "[[aliases]]\nname = 'm-a'\ndeployments = ['b']\n",
            "aliases.m-a.name: deployment 'a' already serves 'm-a'",
        ),
        (
            "[[aliases]]\nname = 'x'\ndeployments = [{ name = 'a', weight = 0 }]\n",
            "aliases.x.deployments.0.weight: Input should be greater than 0",
        ),
        (
            "[[aliases]]\nname = 'x'\ndeployments = []\n",
            "aliases.x.deployments: Tuple should have at least 1 item",
        ),
        ("[[aliases]]\nname = 'x'\ndeployments = ['a']\nfallback = ['b']\n", "fallback: unknown"),
    ],
)
def test_alias_errors_name_the_alias_and_the_key(tmp_path: Path, aliases: str, expected: str):
    (tmp_path / "datamill.toml").write_text(SIMS + aliases)

    assert expected in config_error()


def test_pass_through_model_patterns(tmp_path: Path):
    write_config(
        tmp_path / "datamill.toml",
        [{"name": "claude", "provider": "sim", "models": ["claude-*", "haiku"]}],
    )

    [deployment] = load().deployments

    assert deployment.passthrough
    assert deployment.serves("claude-sonnet-4")
    assert deployment.serves("haiku")
    assert not deployment.serves("gpt-4o")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pa:ss@host/v1", "https://***@host/v1"),
        ("http://token@10.0.0.1:8000/v1?x=@y", "http://***@10.0.0.1:8000/v1?x=@y"),
        ("https://a@b@host/v1/x@y", "https://***@host/v1/x@y"),
        ("https://host/v1/users/@me", "https://host/v1/users/@me"),
    ],
)
def test_credentials_in_a_url_are_redacted(url: str, shown: str):
    assert redact_url(url) == shown
    deployment = DeploymentConfig(name="d", base_url=url)
    assert deployment.public_view()["base_url"] == shown
    assert "pa:ss" not in repr(deployment)
    assert "token" not in repr(deployment)
