"""Configuration: environment variables plus an optional ``datamill.toml`` of deployments.

`load_settings()` is called once at start-up; the resulting `Settings` is passed in everywhere,
never imported as a global. Invalid configuration raises `ConfigError` naming the key and the fix.
Secrets are `SecretStr`, resolved from the env var *named* in the configuration.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from datamill.errors import ConfigError

ENV_PREFIX = "DATAMILL_"

# The stores datamill runs on, and the async driver each needs.
_ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg", "postgres": "asyncpg"}
_DATABASE_URL = re.compile(r"^(?P<scheme>sqlite|postgresql|postgres)(?:\+(?P<driver>\w+))?://")
_URL_PASSWORD = re.compile(r"(?P<head>://[^/@:]*:)[^/@]*@")
# The userinfo of a URL: everything between the scheme and the last "@" of the authority.
_URL_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")

# Deployment fields datamill sets itself; datamill.toml may not (the key comes from the
# variable named by api_key_env, so no secret ever sits in a config file).
_NOT_IN_CONFIG_FILE = {
    "api_key": "datamill.toml never holds keys; export the key in an environment variable "
    'and name that variable here, e.g. api_key_env = "GROQ_API_KEY"',
    "proxy_url": "datamill.toml never holds secrets; export the proxy URL in an environment "
    'variable and name that variable here, e.g. proxy_env = "CORP_PROXY"',
    "source": "unknown key; check the spelling against docs/configuration.md",
}


class WellKnown(NamedTuple):
    """A key whose presence registers a pass-through deployment."""

    name: str  # the deployment's name
    variable: str  # the environment variable holding the key
    base_url: str
    provider: str = "openai"
    models: tuple[str, ...] | None = None  # the model names it takes (None: any)


WELL_KNOWN_PROVIDERS: tuple[WellKnown, ...] = (
    WellKnown("openai", "OPENAI_API_KEY", "https://api.openai.com/v1"),
    WellKnown("groq", "GROQ_API_KEY", "https://api.groq.com/openai/v1"),
    WellKnown("cerebras", "CEREBRAS_API_KEY", "https://api.cerebras.ai/v1"),
    WellKnown("openrouter", "OPENROUTER_API_KEY", "https://openrouter.ai/api/v1"),
    WellKnown(
        "anthropic", "ANTHROPIC_API_KEY", "https://api.anthropic.com", "anthropic", ("claude-*",)
    ),
    WellKnown(
        "gemini",
        "GEMINI_API_KEY",
        "https://generativelanguage.googleapis.com",
        "gemini",
        ("gemini-*", "gemma-*", "text-embedding-004", "embedding-001"),
    ),
)


def redact_url(url: str) -> str:
    """``url`` as datamill shows it (API, dashboard, logs, messages): credentials in it
    (``https://user:password@host/v1``) become ``***``."""
    return _URL_USERINFO.sub(r"\g<scheme>***@", url)


class DeploymentConfig(BaseModel):
    """One deployment: a provider, where it lives, which model, its limits and its price."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
    provider: str = "openai"
    base_url: str | None = None
    api_key_env: str | None = None
    api_key: SecretStr | None = Field(default=None, exclude=True)
    # The upstream model name. None: pass through whatever model the client asks for.
    model: str | None = None
    # The name clients use; defaults to `model`.
    alias: str | None = None
    # For a pass-through deployment: glob patterns of the model names it serves (None: any).
    models: tuple[str, ...] | None = None
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    max_concurrency: int | None = Field(default=None, gt=0)
    input_price: float = Field(default=0.0, ge=0, description="USD per million input tokens")
    output_price: float = Field(default=0.0, ge=0, description="USD per million output tokens")
    # Cached input tokens (a prompt-cache hit); None: charged as input tokens.
    cached_input_price: float | None = Field(default=None, ge=0)
    # Prices of the provider's native batch API; None: half the online price, as OpenAI,
    # Anthropic and Gemini charge.
    batch_input_price: float | None = Field(default=None, ge=0)
    batch_output_price: float | None = Field(default=None, ge=0)
    timeout: float = Field(default=600.0, gt=0, description="seconds for one provider call")
    # The forward proxy of this deployment's calls, overriding HTTPS_PROXY / HTTP_PROXY /
    # ALL_PROXY / NO_PROXY; "" calls directly. None: those variables decide.
    proxy: str | None = None
    # Instead of `proxy`: the variable holding this deployment's proxy URL, credentials
    # included (http://user:password@host:port); read at load into `proxy_url`.
    proxy_env: str | None = None
    proxy_url: SecretStr | None = Field(default=None, exclude=True)
    # A CA bundle (PEM file, or a directory of hashed certificates) to trust instead of the
    # system's (or SSL_CERT_FILE's); for a server behind a private CA.
    ca_bundle: Path | None = None
    # False skips certificate checks (logged as a warning at start-up): for tests only.
    verify: bool = True
    # Bytes an answer's body may have (decompressed); a larger one fails the call.
    max_answer_bytes: int = Field(default=128 * 1024 * 1024, gt=0)
    # Seconds a streamed answer may stay silent once its head arrived.
    stream_idle_timeout: float = Field(default=300.0, gt=0)
    # Provider-specific options (for `sim`: latency, error rate, rate limit, seed).
    options: dict[str, Any] = Field(default_factory=dict)
    # How it was registered: "config" (datamill.toml), "env" (a well-known key) or "builtin".
    source: Literal["config", "env", "builtin"] = "config"

    @field_validator("base_url")
    @classmethod
    def _base_url_is_http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value

    @field_validator("proxy")
    @classmethod
    def _proxy_is_http(cls, value: str | None) -> str | None:
        if not value:
            return value
        if not value.startswith("http://"):
            raise ValueError(
                'must be an http:// proxy URL (e.g. "http://proxy.internal:3128"), or "" to '
                "call directly"
            )
        if "@" in value.partition("://")[2].partition("/")[0]:
            raise ValueError(
                "datamill.toml never holds secrets: export the proxy URL with its credentials "
                'in a variable and name it in proxy_env (e.g. proxy_env = "CORP_PROXY")'
            )
        return value

    @model_validator(mode="after")
    def _one_proxy(self) -> DeploymentConfig:
        if self.proxy is not None and self.proxy_env is not None:
            raise ValueError(
                "set proxy or proxy_env, not both: proxy_env names the variable holding a "
                "proxy URL with credentials, proxy is one without"
            )
        return self

    def __repr_args__(self) -> Any:
        # A base_url may carry credentials: never show them.
        for name, value in super().__repr_args__():
            if name == "base_url" and isinstance(value, str):
                value = redact_url(value)
            yield name, value

    @property
    def passthrough(self) -> bool:
        """True when the deployment serves model names passed through unchanged (any, or
        those its ``models`` patterns match)."""
        return self.model is None and self.alias is None

    def serves(self, model: str) -> bool:
        """Whether a pass-through deployment takes ``model`` (its patterns match it)."""
        return self.models is None or any(fnmatchcase(model, glob) for glob in self.models)

    @property
    def public_alias(self) -> str | None:
        return self.alias or self.model

    def upstream_model(self, requested: str) -> str:
        return self.model or requested

    def public_view(self) -> dict[str, Any]:
        """What the API may show: never the key, only the name of its variable."""
        return {
            "name": self.name,
            "provider": self.provider,
            "base_url": redact_url(self.base_url) if self.base_url else self.base_url,
            "model": self.model,
            "alias": self.public_alias,
            "passthrough": self.passthrough,
            "models": list(self.models) if self.models is not None else None,
            "api_key_env": self.api_key_env,
            "api_key_set": self.api_key is not None,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "max_concurrency": self.max_concurrency,
            "input_price": self.input_price,
            "output_price": self.output_price,
            "cached_input_price": self.cached_input_price,
            "batch_input_price": self.batch_input_price,
            "batch_output_price": self.batch_output_price,
            "timeout": self.timeout,
            "source": self.source,
        }


class AliasTarget(BaseModel):
    """One deployment of an alias, with its share of the first tries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)


class AliasConfig(BaseModel):
    """A model name served by several deployments: the first try goes to one of
    ``deployments`` (chosen by weight), a retryable failure or an open circuit moves the
    request to the others (by weight), then to ``fallbacks`` in order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    deployments: tuple[AliasTarget, ...] = Field(min_length=1)
    fallbacks: tuple[str, ...] = ()

    @field_validator("deployments", mode="before")
    @classmethod
    def _names_are_targets(cls, value: Any) -> Any:
        # `deployments = ["a", "b"]` is short for equal weights.
        if isinstance(value, list | tuple):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @property
    def members(self) -> tuple[str, ...]:
        """Every deployment the alias may use, in the order of its table."""
        return tuple(target.name for target in self.deployments) + self.fallbacks


class ConfigFile(BaseModel):
    """The shape of ``datamill.toml``."""

    model_config = ConfigDict(extra="forbid")

    deployments: list[DeploymentConfig] = Field(default_factory=list)
    aliases: list[AliasConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_unique(self) -> ConfigFile:
        seen: set[str] = set()
        for deployment in self.deployments:
            if deployment.name in seen:
                raise ValueError(
                    f"deployments.{deployment.name}.name: two deployments are named "
                    f"{deployment.name!r}; give each deployment its own name"
                )
            seen.add(deployment.name)
        return self


class Settings(BaseModel):
    """Everything datamill is configured with. Field names map to ``DATAMILL_<NAME>``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Field(default=Path(".datamill"), description="state directory (SQLite, logs)")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite in DATAMILL_HOME"
    )
    host: str = Field(default="127.0.0.1", description="address `serve` binds")
    port: int = Field(default=8000, ge=0, le=65535, description="port `serve` binds")
    bootstrap_admin_key: SecretStr | None = Field(
        default=None,
        exclude=True,
        min_length=32,
        description="`serve` stores it as the default project's first admin key if none exists",
    )
    config: Path | None = Field(default=None, description="path of datamill.toml")
    auto_deployments: bool = Field(
        default=True, description="register deployments for well-known API keys in the env"
    )
    max_file_bytes: int = Field(default=200 * 1024 * 1024, gt=0, description="upload size limit")
    max_file_lines: int = Field(default=50_000, gt=0, description="requests per batch file")
    max_line_bytes: int = Field(default=8 * 1024 * 1024, gt=0, description="one JSONL line")
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024, gt=0, description="a JSON request body (413 beyond)"
    )
    max_gateway_body_bytes: int = Field(
        default=32 * 1024 * 1024, gt=0, description="a gateway request body (413 beyond)"
    )
    allowed_hosts: tuple[str, ...] | None = Field(
        default=None,
        description="Host names the server answers to besides loopback and its bind address "
        "(comma-separated; * for any)",
    )
    allowed_origins: tuple[str, ...] | None = Field(
        default=None,
        description="web origins (scheme://host[:port]) besides the server's own that may "
        "send state-changing requests (comma-separated)",
    )
    workers: int = Field(default=1, ge=0, description="in-process workers run by `serve`")
    concurrency: int = Field(default=256, gt=0, description="provider calls in flight per worker")
    max_retries: int = Field(default=5, ge=0, description="retries of a retryable failure")
    heartbeat_interval: float = Field(default=2.0, gt=0, description="worker heartbeat seconds")
    worker_ttl: float = Field(
        default=15.0, gt=0, description="seconds without heartbeat before its claims are taken over"
    )
    stuck_after: float = Field(
        default=300.0, gt=0, description="seconds without progress before a batch is stuck"
    )
    native_poll_interval: float = Field(
        default=30.0, gt=0, description="seconds between two polls of a provider's batch job"
    )
    events_retention: float = Field(
        default=3600.0, gt=0, description="seconds the event stream's events are kept"
    )
    # Retention, run by the workers' maintenance sweep; 0 keeps forever.
    retention_files_days: float = Field(
        default=0.0, ge=0, description="days a file is kept (never one an unfinished batch names)"
    )
    retention_batch_requests_days: float = Field(
        default=0.0, ge=0, description="days a finished batch's request and result rows are kept"
    )
    retention_call_logs_days: float = Field(
        default=0.0, ge=0, description="days the gateway's call log rows are kept"
    )
    retention_responses_days: float = Field(
        default=0.0, ge=0, description="days stored /v1/responses objects are kept"
    )
    retention_webhook_deliveries_days: float = Field(
        default=0.0, ge=0, description="days a webhook delivery stays in the delivery log"
    )
    events_max_subscribers: int = Field(
        default=100, gt=0, description="event stream clients served at once (503 beyond)"
    )
    events_max_replay: int = Field(
        default=10_000, gt=0, description="events replayed to a resuming client (a reset beyond)"
    )
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL"] = Field(
        default="NORMAL", description="SQLite durability: NORMAL survives process crashes"
    )
    postgres_synchronous_commit: bool = Field(
        default=False,
        description="lease and result commits wait for PostgreSQL's WAL flush (a PostgreSQL "
        "crash then loses none of them; off, it can lose the last ones, which run again)",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info")
    log_format: Literal["text", "json"] = Field(
        default="text", description="log lines as text, or as one JSON object each"
    )
    progress_interval: float = Field(
        default=5.0, gt=0, description="seconds between progress lines when not on a terminal"
    )
    webhooks_allow_private: bool = Field(
        default=False,
        description="webhooks may go to loopback, private, link-local and other non-public "
        "addresses",
    )
    webhooks_retry_schedule: tuple[float, ...] = Field(
        default=(5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0),
        description="seconds before each retry of a failed webhook delivery (comma-separated; "
        "jittered by up to 10%); after the last, the delivery failed",
    )
    webhooks_timeout: float = Field(
        default=15.0, gt=0, description="seconds a webhook receiver has to answer"
    )
    webhooks_poll_interval: float = Field(
        default=1.0, gt=0, description="seconds between two looks for new webhook messages"
    )
    deployments: tuple[DeploymentConfig, ...] = ()
    aliases: tuple[AliasConfig, ...] = ()

    @field_validator("allowed_hosts", "allowed_origins", "webhooks_retry_schedule", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins_are_origins(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for origin in value or ():
            scheme, _, rest = origin.partition("://")
            if scheme not in {"http", "https"} or not rest or "/" in rest:
                raise ValueError(
                    f"{origin!r} is not a web origin; write scheme://host[:port], "
                    "e.g. https://datamill.example.com"
                )
        return tuple(origin.lower() for origin in value) if value is not None else None

    @field_validator("webhooks_retry_schedule")
    @classmethod
    def _schedule_not_negative(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 <= delay < 1e9 for delay in value):
            raise ValueError("each retry delay must be a number of seconds, 0 or more")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_supported(cls, value: str | None) -> str | None:
        if not value:
            return value
        match = _DATABASE_URL.match(value)
        if match is None or match["driver"] not in (None, _ASYNC_DRIVERS[match["scheme"]]):
            raise ValueError(
                "must be a sqlite:///PATH or postgresql://USER@HOST:PORT/DB URL "
                "(or unset it for SQLite in DATAMILL_HOME)"
            )
        return value

    def __repr_args__(self) -> Any:
        # A database URL may carry a password: never show it.
        for name, value in super().__repr_args__():
            if name == "database_url" and isinstance(value, str):
                value = _URL_PASSWORD.sub(r"\g<head>***@", value)
            yield name, value

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL, with the async driver datamill uses for its store."""
        if not self.database_url:
            return f"sqlite+aiosqlite:///{(self.home / 'datamill.db').resolve()}"
        match = _DATABASE_URL.match(self.database_url)
        if match is None or match["driver"]:
            return self.database_url
        scheme = "sqlite" if match["scheme"] == "sqlite" else "postgresql"
        return f"{scheme}+{_ASYNC_DRIVERS[scheme]}{self.database_url[match.end('scheme') :]}"

    @property
    def uses_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def simulated(self) -> bool:
        """True when every answer comes from the `sim` provider (built in or configured)."""
        return all(d.provider == "sim" for d in self.deployments)


# Settings fields read from the environment, with how to parse them.
_ENV_FIELDS = [name for name in Settings.model_fields if name not in {"deployments", "aliases"}]


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read the environment (and datamill.toml) into a validated `Settings`.

    ``overrides`` win over the environment (the CLI's flags use them).
    """
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    for name in _ENV_FIELDS:
        key = ENV_PREFIX + name.upper()
        if key in env and env[key] != "":
            values[name] = env[key]
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        base = Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, prefix=ENV_PREFIX, upper=True)) from None

    path = _config_path(base)
    parsed = _read_config_file(path, env) if path is not None else ConfigFile()
    deployments = list(parsed.deployments)
    if base.auto_deployments:
        taken = {d.name for d in deployments}
        deployments += [d for d in _deployments_from_env(env) if d.name not in taken]
    if not deployments:
        deployments.append(
            DeploymentConfig(name="sim", provider="sim", source="builtin", timeout=60.0)
        )
    _check_aliases(parsed.aliases, deployments, path)
    return base.model_copy(
        update={"deployments": tuple(deployments), "aliases": tuple(parsed.aliases)}
    )


def _check_aliases(
    aliases: list[AliasConfig], deployments: list[DeploymentConfig], path: Path | None
) -> None:
    """Aliases name existing deployments, once each, and no alias hides a deployment's."""
    where = f"{path}: " if path is not None else ""
    names = {d.name for d in deployments}
    public = {d.public_alias: d.name for d in deployments if d.public_alias}
    seen: set[str] = set()
    for alias in aliases:
        key = f"aliases.{alias.name}"
        if alias.name in seen:
            raise ConfigError(f"{where}{key}.name: two aliases are named {alias.name!r}")
        seen.add(alias.name)
        if alias.name in public:
            raise ConfigError(
                f"{where}{key}.name: deployment {public[alias.name]!r} already serves "
                f"{alias.name!r}; rename the alias, or list that deployment in it"
            )
        members = alias.members
        for member in members:
            if member not in names:
                raise ConfigError(
                    f"{where}{key}: no deployment is named {member!r}; "
                    f"known deployments: {', '.join(sorted(names))}"
                )
        repeated = sorted({m for m in members if members.count(m) > 1})
        if repeated:
            raise ConfigError(f"{where}{key}: {', '.join(repeated)} listed more than once")


def _config_path(settings: Settings) -> Path | None:
    if settings.config is not None:
        if not settings.config.is_file():
            raise ConfigError(
                f"DATAMILL_CONFIG points to {settings.config}, which is not a file; "
                "fix the path or unset DATAMILL_CONFIG"
            )
        return settings.config
    default = Path("datamill.toml")
    return default if default.is_file() else None


def _read_config_file(path: Path, env: Mapping[str, str]) -> ConfigFile:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    tables: dict[str, list[Any]] = {}
    for name in ("deployments", "aliases"):
        entries = raw.get(name)
        tables[name] = entries if isinstance(entries, list) else []
    _reject_internal_keys(tables["deployments"], path)
    try:
        parsed = ConfigFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc, tables=tables)}") from None
    return parsed.model_copy(
        update={"deployments": [_with_secrets(d, env, path) for d in parsed.deployments]}
    )


def _entry_key(table: str, entries: list[Any], index: int) -> str:
    """How messages name entry ``index`` of a table: by its name when it has a usable one."""
    entry = entries[index] if 0 <= index < len(entries) else None
    name = entry.get("name") if isinstance(entry, dict) else None
    if isinstance(name, str) and name:
        return f"{table}.{name}"
    return f"{table}[{index}]"


def _reject_internal_keys(entries: list[Any], path: Path) -> None:
    problems = [
        f"{_entry_key('deployments', entries, index)}.{key}: {_NOT_IN_CONFIG_FILE[key]}"
        for index, entry in enumerate(entries)
        if isinstance(entry, dict)
        for key in entry
        if key in _NOT_IN_CONFIG_FILE
    ]
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))


# A deployment's secrets from the environment: the field naming the variable, the field that
# receives its value, and how to set the variable.
_SECRETS = {"api_key_env": "api_key", "proxy_env": "proxy_url"}
_SECRET_FIXES = {
    "api_key_env": "... or remove api_key_env for a server that needs no key",
    "proxy_env": "http://user:password@proxy:3128 or remove proxy_env",
}


def secret_from_env(
    deployment: DeploymentConfig, variable_field: str, env: Mapping[str, str]
) -> str:
    """The value of the variable ``variable_field`` (``api_key_env``, ``proxy_env``) names;
    `ConfigError` saying how to set it when it is unset or empty."""
    variable = getattr(deployment, variable_field)
    value = env.get(variable) if variable else None
    if not value:
        raise ConfigError(
            f"deployments.{deployment.name}.{variable_field} names {variable}, which is not "
            f"set; export {variable}={_SECRET_FIXES[variable_field]}"
        )
    return value


def _with_secrets(
    deployment: DeploymentConfig, env: Mapping[str, str], path: Path
) -> DeploymentConfig:
    # Only `openai` needs an address from the file; `sim` and plugins check their own options.
    if deployment.provider == "openai" and deployment.base_url is None:
        raise ConfigError(
            f"{path}: deployments.{deployment.name}.base_url is missing; "
            'set the provider\'s API address, e.g. base_url = "https://api.groq.com/openai/v1"'
        )
    secrets: dict[str, SecretStr] = {}
    for variable_field, secret in _SECRETS.items():
        if getattr(deployment, variable_field) is not None:
            try:
                value = secret_from_env(deployment, variable_field, env)
            except ConfigError as exc:
                raise ConfigError(f"{path}: {exc}") from None
            secrets[secret] = SecretStr(value)
    return deployment.model_copy(update=secrets) if secrets else deployment


def _deployments_from_env(env: Mapping[str, str]) -> list[DeploymentConfig]:
    found: list[DeploymentConfig] = []
    for known in WELL_KNOWN_PROVIDERS:
        key = env.get(known.variable)
        base_url = env.get("OPENAI_BASE_URL") if known.name == "openai" else None
        if not key and not base_url:
            continue
        if base_url and not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                "OPENAI_BASE_URL must start with http:// or https:// "
                '(for example "http://127.0.0.1:8080/v1"); fix it or unset it'
            )
        found.append(
            DeploymentConfig(
                name=known.name,
                provider=known.provider,
                base_url=base_url or known.base_url,
                api_key_env=known.variable if key else None,
                api_key=SecretStr(key) if key else None,
                models=known.models,
                source="env",
            )
        )
    return found


def _describe(
    exc: ValidationError,
    *,
    prefix: str = "",
    upper: bool = False,
    tables: Mapping[str, list[Any]] | None = None,
) -> str:
    """Turn pydantic's errors into 'key: problem' lines a user can act on. Never the input
    value: it could be a secret."""
    lines = []
    for error in exc.errors():
        parts = [str(p) for p in error["loc"]]
        if tables is not None and len(parts) >= 2 and parts[0] in tables:
            # Name the entry as the file does, not by its position in a list.
            parts[:2] = [_entry_key(parts[0], tables[parts[0]], int(parts[1]))]
        message = error["msg"]
        if error["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key; check the spelling against docs/configuration.md"
        if not parts:
            lines.append(message)  # a whole-file check; the message names its key
            continue
        key = ".".join(parts)
        if upper:
            key = prefix + key.upper()
        lines.append(f"{key}: {message}")
    return "; ".join(lines)
