"""Which deployments can run a batch natively, and which mode a batch resolves to.

A deployment offers native batches when its adapter says so (``capabilities.native_batch``)
and has the interface (``provider.native_batches``). ``auto`` picks native only when every
deployment the batch needs offers it and it is cheaper there: each deployment's batch
prices (half its online prices unless configured) are at most its online prices, and one
of them lower. With prices left at zero nothing is cheaper, so ``auto`` stays online.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import TypeVar

from datamill.errors import ErrorCategory, ProviderError
from datamill.protocol.batches import BatchMode
from datamill.providers.base import NativeBatchAPI
from datamill.scheduler.pricing import batch_prices, online_prices
from datamill.scheduler.router import DeploymentHandle, Route, RoutePlan
from datamill.settings import DeploymentConfig

log = logging.getLogger("datamill.engine")
T = TypeVar("T")


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


async def upstream_call(call: Awaitable[T], *, timeout: float, what: str) -> T:
    """Await one call to a native batch API, translating what it may raise into
    `ProviderError`: no answer in ``timeout`` seconds is a ``timeout``, and an adapter that
    fails unexpectedly (a bug) a ``server_error``, as the online executor does."""
    try:
        async with asyncio.timeout(timeout):
            return await call
    except (ProviderError, StopAsyncIteration):
        raise
    except TimeoutError:
        raise ProviderError(
            ErrorCategory.timeout, f"no answer to {what} in {timeout:g} s"
        ) from None
    except Exception as exc:
        log.exception("%s failed unexpectedly", what)
        raise ProviderError(ErrorCategory.server_error, f"{what} failed: {exc!r}") from None


def bounded(iterator: AsyncIterator[T], *, timeout: float, what: str) -> AsyncIterator[T]:
    """``iterator`` with each item due within ``timeout`` seconds (a stalled download must
    not hold a job forever), failures translated as by `upstream_call`."""

    async def items() -> AsyncIterator[T]:
        source = aiter(iterator)
        try:
            while True:
                try:
                    item = await upstream_call(anext(source), timeout=timeout, what=what)
                except StopAsyncIteration:
                    return
                yield item
        finally:
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()

    return items()
