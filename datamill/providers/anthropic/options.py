"""What ``deployments.<name>.options`` may say for an `anthropic` deployment."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from datamill.errors import ConfigError
from datamill.providers.options import parse_options as parse_provider_options
from datamill.settings import DeploymentConfig

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_VERSION = "2023-06-01"


class AnthropicOptions(BaseModel):
    """The options of an `anthropic` deployment; all optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_max_tokens: int = Field(
        default=4096,
        gt=0,
        description="max_tokens sent when the request sets neither max_tokens nor "
        "max_completion_tokens (Anthropic requires one)",
    )
    anthropic_version: str = Field(
        default=DEFAULT_VERSION,
        min_length=1,
        pattern=r"^[0-9A-Za-z._-]+$",
        description="the anthropic-version header",
    )
    beta: list[str] = Field(
        default_factory=list,
        description="beta flags, sent as the anthropic-beta header (comma-separated)",
    )
    json_mode: Literal["tool", "output_format"] = Field(
        default="tool",
        description="how response_format is expressed: a forced tool (every model), or "
        "output_config.format structured outputs (json_schema only, newer models)",
    )
    prompt_caching: bool = Field(
        default=False,
        description="ask Anthropic to cache the prompt (a top-level cache_control marker)",
    )


def parse_options(deployment: DeploymentConfig) -> AnthropicOptions:
    """Validate a deployment's options; `ConfigError` names ``deployments.<name>.options.<key>``."""
    options = parse_provider_options(deployment, AnthropicOptions)
    for flag in options.beta:
        # A header value: a comma or a line break would smuggle in more than one flag.
        if not flag or any(char in flag for char in ",\r\n "):
            raise ConfigError(
                f"deployments.{deployment.name}.options.beta: {flag!r} is not one beta flag"
            )
    return options
