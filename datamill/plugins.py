"""Provider plugins. Built-in providers are registered exactly like third-party ones: by a
``module:factory`` reference, third-party ones through the ``datamill.providers`` entry-point
group of their package."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from datamill.errors import ConfigError
from datamill.providers.base import Provider, ProviderContext, ProviderFactory
from datamill.settings import DeploymentConfig

ENTRY_POINT_GROUP = "datamill.providers"

DEFAULT_PROVIDERS: dict[str, str] = {
    "anthropic": "datamill.providers.anthropic:create_anthropic_provider",
    "gemini": "datamill.providers.gemini:create_gemini_provider",
    "openai": "datamill.providers.openai:create_openai_provider",
    "sim": "datamill.providers.sim:create_sim_provider",
}


def _load(reference: str) -> ProviderFactory:
    module_name, _, attribute = reference.partition(":")
    factory: ProviderFactory = getattr(importlib.import_module(module_name), attribute)
    return factory


def provider_references() -> dict[str, str]:
    """Provider type name -> ``module:factory``; installed plugins may add or replace."""
    references = dict(DEFAULT_PROVIDERS)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        references[entry.name] = entry.value
    return references


def create_provider(deployment: DeploymentConfig, context: ProviderContext) -> Provider:
    references = provider_references()
    reference = references.get(deployment.provider)
    if reference is None:
        known = ", ".join(sorted(references))
        raise ConfigError(
            f"deployments.{deployment.name}.provider: {deployment.provider!r} is not a known "
            f"provider (known: {known}); fix the name or install the plugin that provides it"
        )
    return _load(reference)(deployment, context)
