"""Which deployments serve a model name, and in which order a request tries them.

A model name resolves to a `RoutePlan`, in order of precedence:

1. an alias of ``datamill.toml`` (``[[aliases]]``): its deployments, the first try going to
   one of them chosen by weight, then its fallbacks;
2. the deployments whose alias (by default their upstream model) is the name, with equal
   weights, in the order of the configuration;
3. ``<deployment>/<model>``: that pass-through deployment, with the model passed on;
4. a pass-through deployment whose ``models`` patterns match the name (one that lists
   patterns wins over one that takes any name).

Only deployments whose provider supports the endpoint are in a plan. `Attempts` walks one
request through its plan: a retryable failure moves it to the next deployment, a failed
network setup takes the deployment out of its plan, and a deployment set aside (its circuit
open, its network setup failed lately) is skipped while another one can take the call.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from datamill.providers.types import Endpoint
from datamill.scheduler.gate import DeploymentGate
from datamill.settings import AliasConfig, DeploymentConfig

if TYPE_CHECKING:
    from datamill.providers.base import Provider

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

    @property
    def set_aside(self) -> bool:
        """A call should go to another deployment if it can: this one's circuit is open,
        or it failed its network setup lately (`DeploymentGate.set_aside`)."""
        gate = self.gate
        return gate.breaker.blocking or gate.set_aside


@dataclass(frozen=True, slots=True)
class Route:
    handle: DeploymentHandle
    upstream_model: str


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """The deployments that may serve one model name.

    The first ``len(weights)`` routes share the first tries by weight; the rest are
    fallbacks, in order. A plan of one route has no choice to make."""

    model: str
    routes: tuple[Route, ...]
    weights: tuple[float, ...] = ()

    def order(self, rng: random.Random) -> tuple[Route, ...]:
        """One request's order: a weighted pick first, the other weighted routes by weight
        (heaviest first), then the fallbacks."""
        pool = len(self.weights)
        if pool < 2:
            return self.routes
        first = rng.choices(range(pool), weights=self.weights)[0]
        rest = sorted((i for i in range(pool) if i != first), key=lambda i: -self.weights[i])
        return (
            self.routes[first],
            *(self.routes[i] for i in rest),
            *self.routes[pool:],
        )


class Attempts:
    """One request's way through its plan. `next()` is the route of the next call; after a
    retryable failure, `advance()` moves on to the next deployment and says whether one is
    left in this round (when none is, the caller backs off and a new round starts)."""

    __slots__ = ("_order", "_position", "_tried")

    def __init__(self, plan: RoutePlan, rng: random.Random) -> None:
        self._order = plan.order(rng)
        self._position = 0
        self._tried = 0

    def next(self) -> Route:
        """The route to call now: the current one, unless it is set aside (its circuit is
        open, or its network setup failed) and a later one of this round is not (then that
        one, and the round goes on from it)."""
        order = self._order
        for offset in range(len(order) - self._tried):
            index = (self._position + offset) % len(order)
            if not order[index].handle.set_aside:
                self._position = index
                return order[index]
        return order[self._position]  # every one is open: wait at the current one's gate

    def drop(self) -> bool:
        """Take the current deployment out of this request's order for good (it cannot be
        reached as configured) and go on at the one after it; False when it was the last."""
        order = self._order
        if len(order) == 1:
            return False
        position = self._position
        self._order = order[:position] + order[position + 1 :]
        if position >= len(self._order):
            self._position = 0
        # The round goes on over the deployments left; a round over starts a new one.
        if self._tried >= len(self._order):
            self._tried = 0
        return True

    def advance(self) -> bool:
        """Move to the next deployment; False when every one was tried this round (the
        next round starts again from the first)."""
        self._tried += 1
        self._position = (self._position + 1) % len(self._order)
        if self._tried >= len(self._order):
            self._tried = 0
            self._position = 0
            return False
        return True


class Router:
    def __init__(
        self, handles: Sequence[DeploymentHandle], aliases: Sequence[AliasConfig] = ()
    ) -> None:
        self.handles = list(handles)
        self.aliases = {alias.name: alias for alias in aliases}
        self._by_name = {handle.name: handle for handle in self.handles}
        self._cache: dict[tuple[str, Endpoint], RoutePlan | None] = {}

    def plan(self, model: str, endpoint: Endpoint) -> RoutePlan | None:
        """The plan for ``model`` on ``endpoint``; None when no deployment serves it."""
        key = (model, endpoint)
        if key not in self._cache:
            if len(self._cache) >= _CACHE_SIZE:
                # Pass-through model names come from clients: never let them grow memory.
                self._cache.clear()
            self._cache[key] = self._resolve(model, endpoint)
        return self._cache[key]

    def _resolve(self, model: str, endpoint: Endpoint) -> RoutePlan | None:
        alias = self.aliases.get(model)
        if alias is not None:
            return self._alias_plan(alias, endpoint)
        named = [
            handle
            for handle in self.handles
            if handle.config.public_alias == model and handle.supports(endpoint)
        ]
        if named:
            routes = tuple(Route(h, h.config.upstream_model(model)) for h in named)
            return RoutePlan(model, routes, weights=(1.0,) * len(routes))
        prefix, _, rest = model.partition("/")
        target = self._by_name.get(prefix)
        if rest and target and target.config.passthrough and target.supports(endpoint):
            return RoutePlan(model, (Route(target, rest),))
        takers = [
            handle
            for handle in self.handles
            if handle.config.passthrough
            and handle.supports(endpoint)
            and handle.config.serves(model)
        ]
        if not takers:
            return None
        # A deployment that names its models is more specific than one that takes any.
        takers.sort(key=lambda handle: handle.config.models is None)
        return RoutePlan(model, (Route(takers[0], model),))

    def _alias_plan(self, alias: AliasConfig, endpoint: Endpoint) -> RoutePlan | None:
        weighted = [
            (self._by_name[target.name], target.weight)
            for target in alias.deployments
            if self._by_name[target.name].supports(endpoint)
        ]
        fallbacks = [self._by_name[name] for name in alias.fallbacks]
        fallbacks = [handle for handle in fallbacks if handle.supports(endpoint)]
        handles = [handle for handle, _ in weighted] + fallbacks
        if not handles:
            return None
        routes = tuple(Route(h, h.config.upstream_model(alias.name)) for h in handles)
        return RoutePlan(alias.name, routes, weights=tuple(weight for _, weight in weighted))

    def get(self, name: str) -> DeploymentHandle | None:
        return self._by_name.get(name)

    async def aclose(self) -> None:
        for handle in self.handles:
            await handle.provider.aclose()
