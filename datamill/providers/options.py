"""A deployment's provider-specific ``options``, validated by the provider's own model."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from datamill.errors import ConfigError
from datamill.settings import DeploymentConfig

Options = TypeVar("Options", bound=BaseModel)


def parse_options(deployment: DeploymentConfig, model: type[Options]) -> Options:
    """``deployment.options`` as ``model`` (which forbids unknown keys); a `ConfigError`
    names each problem as ``deployments.<name>.options.<key>``, and an unknown key is told
    what the provider accepts. Values are never quoted: they could be secrets."""
    try:
        return model.model_validate(deployment.options)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"]) or "(options)"
            message = error["msg"]
            if error["type"] == "extra_forbidden":
                accepted = ", ".join(model.model_fields)
                message = f"unknown option; {deployment.provider} accepts {accepted}"
            problems.append(f"deployments.{deployment.name}.options.{key}: {message}")
        raise ConfigError("; ".join(problems)) from None
