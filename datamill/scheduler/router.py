"""Which deployment serves a model name.

In order: a deployment whose alias is the name (the alias defaults to the deployment's
upstream model); ``<deployment>/<model>`` addressing a pass-through deployment by name; else
the first pass-through deployment that supports the endpoint. Weights and fallbacks across
several deployments come with model aliases (a later issue).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from datamill.providers.base import Endpoint, Provider
from datamill.scheduler.gate import DeploymentGate
from datamill.settings import DeploymentConfig

_CACHE_SIZE = 4096


@dataclass(slots=True)
class DeploymentHandle:
    """A deployment as the engine uses it: its config, adapter and gate."""

    config: DeploymentConfig
    provider: Provider
    gate: DeploymentGate

    @property
    def name(self) -> str:
        return self.config.name

    def supports(self, endpoint: Endpoint) -> bool:
        capabilities = self.provider.capabilities
        return capabilities.embeddings if endpoint is Endpoint.embeddings else capabilities.chat


@dataclass(frozen=True, slots=True)
class Route:
    handle: DeploymentHandle
    upstream_model: str


class Router:
    def __init__(self, handles: Sequence[DeploymentHandle]) -> None:
        self.handles = list(handles)
        self._by_name = {handle.name: handle for handle in self.handles}
        self._cache: dict[tuple[str, Endpoint], Route | None] = {}

    def route(self, model: str, endpoint: Endpoint) -> Route | None:
        key = (model, endpoint)
        if key not in self._cache:
            if len(self._cache) >= _CACHE_SIZE:
                # Pass-through model names come from clients: never let them grow memory.
                self._cache.clear()
            self._cache[key] = self._resolve(model, endpoint)
        return self._cache[key]

    def _resolve(self, model: str, endpoint: Endpoint) -> Route | None:
        for handle in self.handles:
            if handle.config.public_alias == model and handle.supports(endpoint):
                return Route(handle, handle.config.upstream_model(model))
        prefix, _, rest = model.partition("/")
        named = self._by_name.get(prefix)
        if rest and named and named.config.passthrough and named.supports(endpoint):
            return Route(named, rest)
        for handle in self.handles:
            if handle.config.passthrough and handle.supports(endpoint):
                return Route(handle, model)
        return None

    def get(self, name: str) -> DeploymentHandle | None:
        return self._by_name.get(name)

    async def aclose(self) -> None:
        for handle in self.handles:
            await handle.provider.aclose()
