"""`Router`: which deployment serves a model name, and under which upstream name."""

from __future__ import annotations

from typing import Any

from datamill.providers.base import Capabilities, Endpoint, ProviderCall, ProviderResponse
from datamill.providers.http import HttpPool
from datamill.providers.openai import OpenAIProvider
from datamill.scheduler.gate import DeploymentGate
from datamill.scheduler.router import DeploymentHandle, Router
from datamill.settings import DeploymentConfig
from tests.scheduler.conftest import FakeClock

CHAT = Endpoint.chat_completions
EMBED = Endpoint.embeddings


class ChatOnlyProvider:
    """A provider with no embeddings, as a third-party plugin might be."""

    capabilities = Capabilities(chat=True, embeddings=False)

    def __init__(self) -> None:
        self.closed = False

    async def complete(self, call: ProviderCall) -> ProviderResponse:
        raise NotImplementedError

    async def embed(self, call: ProviderCall) -> ProviderResponse:
        raise NotImplementedError

    async def aclose(self) -> None:
        self.closed = True


def handle(name: str, *, chat_only: bool = False, **config: Any) -> DeploymentHandle:
    deployment = DeploymentConfig(name=name, base_url="http://127.0.0.1:9/v1", **config)
    provider = ChatOnlyProvider() if chat_only else OpenAIProvider(deployment, HttpPool())
    gate = DeploymentGate(deployment, FakeClock(), default_concurrency=4)
    return DeploymentHandle(config=deployment, provider=provider, gate=gate)


def routed(router: Router, model: str, endpoint: Endpoint = CHAT) -> tuple[str, str] | None:
    route = router.route(model, endpoint)
    return (route.handle.name, route.upstream_model) if route else None


def test_a_model_alias_maps_to_its_upstream_model():
    router = Router(
        [
            handle("any"),  # pass-through, listed first
            handle("groq", model="llama-3.1-8b-instant", alias="fast"),
            handle("local", model="qwen2.5"),
        ]
    )

    assert routed(router, "fast") == ("groq", "llama-3.1-8b-instant")
    # With no alias, the upstream model name is the public name.
    assert routed(router, "qwen2.5") == ("local", "qwen2.5")


def test_deployment_slash_model_addresses_a_pass_through_deployment():
    router = Router([handle("first"), handle("groq"), handle("fixed", model="m")])

    assert routed(router, "groq/llama-3.3-70b") == ("groq", "llama-3.3-70b")
    # Only the first slash splits: the rest is the upstream model, slashes and all.
    assert routed(router, "groq/meta-llama/Llama-3") == ("groq", "meta-llama/Llama-3")
    # A deployment with a fixed model is not addressed this way...
    assert routed(router, "fixed/other") == ("first", "fixed/other")
    # ...and an unknown prefix is just part of a model name.
    assert routed(router, "meta-llama/Llama-3") == ("first", "meta-llama/Llama-3")


def test_other_names_fall_back_to_the_first_pass_through_deployment():
    router = Router([handle("fixed", model="m"), handle("p1"), handle("p2")])

    assert routed(router, "gpt-4o-mini") == ("p1", "gpt-4o-mini")


def test_endpoint_capability_is_respected():
    router = Router(
        [
            handle("chat-alias", chat_only=True, model="small"),
            handle("chat-any", chat_only=True),
            handle("embedder"),
        ]
    )

    assert routed(router, "small") == ("chat-alias", "small")
    assert routed(router, "small", EMBED) == ("embedder", "small")
    assert routed(router, "text-embedding-3-small", EMBED) == ("embedder", "text-embedding-3-small")
    assert routed(router, "chat-any/x", EMBED) == ("embedder", "chat-any/x")
    assert routed(router, "chat-any/x") == ("chat-any", "x")


def test_no_route_is_none():
    router = Router([handle("fixed", model="m"), handle("chat", chat_only=True)])

    assert routed(router, "m") == ("fixed", "m")
    assert routed(router, "unknown", EMBED) is None
    assert routed(router, "m", EMBED) == ("fixed", "m")
    assert Router([handle("fixed", model="m")]).route("other", CHAT) is None
    assert Router([]).route("m", CHAT) is None


def test_get_finds_a_deployment_by_name():
    chat = handle("chat", chat_only=True)
    router = Router([chat, handle("other")])

    assert router.get("chat") is chat
    assert router.get("missing") is None


async def test_aclose_closes_every_provider():
    handles = [handle("a", chat_only=True), handle("b", chat_only=True)]
    await Router(handles).aclose()
    assert [h.provider.closed for h in handles] == [True, True]
