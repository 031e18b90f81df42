"""Which deployments can run a batch natively, and which mode a batch resolves to.

A deployment offers native batches when its adapter says so (``capabilities.native_batch``)
and has the interface (``provider.native_batches``). ``auto`` picks native only when every
deployment the batch needs offers it and it is cheaper there: each deployment's batch
prices (half its online prices unless configured) are at most its online prices, and one
of them lower. With prices left at zero nothing is cheaper, so ``auto`` stays online.
"""

from __future__ import annotations

from collections.abc import Iterable

from datamill.protocol.batches import BatchMode
from datamill.providers.base import NativeBatchAPI
from datamill.scheduler.pricing import batch_prices, online_prices
from datamill.scheduler.router import DeploymentHandle, Route, RoutePlan
from datamill.settings import DeploymentConfig


def native_api(handle: DeploymentHandle) -> NativeBatchAPI | None:
    """The deployment's native batch API, or None when it has none."""
    provider = handle.provider
    if not provider.capabilities.native_batch:
        return None
    api: NativeBatchAPI | None = getattr(provider, "native_batches", None)
    return api


def native_route(plan: RoutePlan) -> Route | None:
    """The route a request of ``plan`` takes in a native batch: the first deployment of
    the plan that has a batch API (an upstream batch cannot fall back mid-way)."""
    for route in plan.routes:
        if native_api(route.handle) is not None:
            return route
    return None


def native_is_cheaper(config: DeploymentConfig) -> bool:
    batch, online = batch_prices(config), online_prices(config)
    native_prices = (batch.input, batch.output)
    online_pair = (online.input, online.output)
    no_dearer = all(n <= o for n, o in zip(native_prices, online_pair, strict=True))
    return no_dearer and any(n < o for n, o in zip(native_prices, online_pair, strict=True))


def resolve_mode(requested: BatchMode, handles: Iterable[DeploymentHandle]) -> BatchMode:
    """online or native for a batch whose requests route to ``handles`` (validated: a
    ``native`` batch's deployments all offer native batches)."""
    if requested is not BatchMode.auto:
        return requested
    used = list(handles)
    if used and all(native_api(h) is not None and native_is_cheaper(h.config) for h in used):
        return BatchMode.native
    return BatchMode.online
