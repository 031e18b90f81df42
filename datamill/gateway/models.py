"""What `/v1/models` lists and `/v1/models/{model}` answers: the names clients may ask for.

The catalog lists, in OpenAI's Model shape with a ``datamill`` field saying why the name is
served: the aliases of ``datamill.toml``, the model names deployments serve, the pass-through
deployments (called as ``<deployment>/<model>``), and the models each pass-through deployment's
upstream lists in its own ``GET /models`` (when its adapter can ask, `ModelLister`). Upstream
lists (at most `MAX_LISTED` names each) are cached for ``ttl`` seconds; a listing waits at
most ``wait`` seconds for a refresh, then answers with what it has (the refresh goes on in
the background), and an upstream that fails is asked again only after ``retry`` seconds: a
dead upstream never holds the listing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from datamill.clock import Clock
from datamill.errors import DatamillError
from datamill.providers.base import MAX_LISTED_MODELS, Endpoint, ModelLister
from datamill.scheduler.router import DeploymentHandle, Router

log = logging.getLogger("datamill.gateway")

TTL = 300.0
WAIT = 2.0
RETRY = 30.0
_LIST_TIMEOUT = 30.0  # seconds a refresh may take (in the background past `wait`)
# An upstream is untrusted: what is kept of its list is bounded.
MAX_LISTED = MAX_LISTED_MODELS
MAX_ID_CHARS = 256


@dataclass(slots=True)
class _Listed:
    models: list[dict[str, Any]]
    expires: float  # clock.monotonic() after which the upstream is asked again


class ModelCatalog:
    """The model names of one router. Guarantees: a listing never waits more than ``wait``
    seconds on upstreams; at most one refresh per deployment is out at a time."""

    def __init__(
        self,
        router: Router,
        clock: Clock,
        *,
        ttl: float = TTL,
        wait: float = WAIT,
        retry: float = RETRY,
    ) -> None:
        self._router = router
        self._clock = clock
        self._ttl = ttl
        self._wait = wait
        self._retry = retry
        self._listed: dict[str, _Listed] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    async def list_models(self) -> list[dict[str, Any]]:
        """Every name clients may ask for, configured names first."""
        entries = {entry["id"]: entry for entry in self.configured_models()}
        await self._refresh_stale()
        for name, listed in self._listed.items():
            for model in listed.models:
                if model["id"] not in entries and self._serves(model["id"], name):
                    entries[model["id"]] = _entry(model, "upstream", [name])
        return list(entries.values())

    async def get_model(self, model: str) -> dict[str, Any] | None:
        """The Model object of one name; None when no deployment serves it."""
        for entry in await self.list_models():
            if entry["id"] == model:
                return entry
        deployments = self._deployments_for(model)
        if not deployments:
            return None
        return _entry({"id": model}, "passthrough", deployments)

    # -- configured names -------------------------------------------------------------------

    def configured_models(self) -> list[dict[str, Any]]:
        """The names ``datamill.toml`` configures, without asking any upstream."""
        entries: dict[str, dict[str, Any]] = {}
        for alias in self._router.aliases.values():
            entries[alias.name] = _entry({"id": alias.name}, "alias", list(alias.members))
        for handle in self._router.handles:
            config = handle.config
            name = config.public_alias
            if name is None:
                entry = _entry({"id": config.name}, "passthrough", [config.name])
                entry["datamill"]["models"] = list(config.models) if config.models else ["*"]
                entries.setdefault(config.name, entry)
            elif name in entries:
                entries[name]["datamill"]["deployments"].append(config.name)
            else:
                entries[name] = _entry({"id": name}, "deployment", [config.name])
        return list(entries.values())

    def _deployments_for(self, model: str) -> list[str]:
        """The deployments a call for ``model`` may go to, on any endpoint."""
        names: list[str] = []
        for endpoint in Endpoint:
            plan = self._router.plan(model, endpoint)
            for route in plan.routes if plan else ():
                if route.handle.name not in names:
                    names.append(route.handle.name)
        return names

    def _serves(self, model: str, deployment: str) -> bool:
        """Whether a name an upstream listed reaches that deployment (not another one)."""
        return deployment in self._deployments_for(model)

    # -- upstream lists ---------------------------------------------------------------------

    async def _refresh_stale(self) -> None:
        now = self._clock.monotonic()
        pending: list[asyncio.Task[None]] = []
        for handle in self._router.handles:
            if not handle.config.passthrough or not isinstance(handle.provider, ModelLister):
                continue
            listed = self._listed.get(handle.name)
            if listed is not None and listed.expires > now:
                continue
            task = self._refreshing.get(handle.name)
            if task is None:
                task = asyncio.create_task(self._refresh(handle), name=f"models-{handle.name}")
                self._refreshing[handle.name] = task
            pending.append(task)
        if pending:
            # `wait` never cancels: a refresh that outlives it still fills the cache.
            await asyncio.wait(pending, timeout=self._wait)

    async def _refresh(self, handle: DeploymentHandle) -> None:
        provider = handle.provider
        assert isinstance(provider, ModelLister)
        try:
            async with asyncio.timeout(min(handle.config.timeout, _LIST_TIMEOUT)):
                listed = await provider.list_models()
            models = [m for m in listed if len(m["id"]) <= MAX_ID_CHARS][:MAX_LISTED]
            expires = self._clock.monotonic() + self._ttl
        except (DatamillError, TimeoutError) as exc:
            log.warning("could not list the models of %s: %s", handle.name, exc)
            previous = self._listed.get(handle.name)
            models = previous.models if previous else []
            expires = self._clock.monotonic() + self._retry
        except Exception:
            log.exception("listing the models of %s failed", handle.name)
            models, expires = [], self._clock.monotonic() + self._retry
        finally:
            self._refreshing.pop(handle.name, None)
        self._listed[handle.name] = _Listed(models, expires)

    async def aclose(self) -> None:
        """Stop the refreshes still out."""
        tasks = list(self._refreshing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _entry(model: dict[str, Any], kind: str, deployments: list[str]) -> dict[str, Any]:
    """OpenAI's Model object, with ``datamill``: why the name is served, and by whom."""
    return {
        **model,
        "object": "model",
        "created": model.get("created", 0),
        "owned_by": model.get("owned_by", "datamill"),
        "datamill": {"kind": kind, "deployments": deployments},
    }
