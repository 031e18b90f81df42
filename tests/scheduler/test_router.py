"""`Router`: which deployments serve a model name, under which upstream name, and in which
order one request tries them (`RoutePlan`, `Attempts`)."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.base import Capabilities, Endpoint, ProviderCall, ProviderResponse
from datamill.providers.http import HttpPool
from datamill.providers.openai import OpenAIProvider
from datamill.scheduler.gate import SET_ASIDE_SECONDS, DeploymentGate
from datamill.scheduler.router import Attempts, DeploymentHandle, Router
from datamill.settings import AliasConfig, DeploymentConfig
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


def handle(
    name: str, *, chat_only: bool = False, clock: FakeClock | None = None, **config: Any
) -> DeploymentHandle:
    deployment = DeploymentConfig(name=name, base_url="http://127.0.0.1:9/v1", **config)
    provider = ChatOnlyProvider() if chat_only else OpenAIProvider(deployment, HttpPool())
    gate = DeploymentGate(deployment, clock or FakeClock(), default_concurrency=4)
    return DeploymentHandle(config=deployment, provider=provider, gate=gate)


def routed(router: Router, model: str, endpoint: Endpoint = CHAT) -> tuple[str, str] | None:
    """The route of a plan's first try, when the plan has no choice to make."""
    plan = router.plan(model, endpoint)
    if plan is None:
        return None
    route = plan.order(random.Random(0))[0]
    return (route.handle.name, route.upstream_model)


def names(router: Router, model: str, endpoint: Endpoint = CHAT) -> list[str]:
    plan = router.plan(model, endpoint)
    assert plan is not None
    return [route.handle.name for route in plan.routes]


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
    assert Router([handle("fixed", model="m")]).plan("other", CHAT) is None
    assert Router([]).plan("m", CHAT) is None


def test_get_finds_a_deployment_by_name():
    chat = handle("chat", chat_only=True)
    router = Router([chat, handle("other")])

    assert router.get("chat") is chat
    assert router.get("missing") is None


async def test_aclose_closes_every_provider():
    handles = [handle("a", chat_only=True), handle("b", chat_only=True)]
    await Router(handles).aclose()
    assert [h.provider.closed for h in handles] == [True, True]


def test_pass_through_deployments_that_name_their_models_win_over_catch_alls():
    router = Router(
        [
            handle("openai"),
            handle("anthropic", models=("claude-*",)),
            handle("gemini", models=("gemini-*", "text-embedding-004")),
        ]
    )

    assert routed(router, "claude-sonnet-4") == ("anthropic", "claude-sonnet-4")
    assert routed(router, "gemini-2.5-flash") == ("gemini", "gemini-2.5-flash")
    assert routed(router, "gpt-4o") == ("openai", "gpt-4o")
    assert Router([handle("anthropic", models=("claude-*",))]).plan("gpt-4o", CHAT) is None


def test_deployments_sharing_an_alias_share_its_traffic():
    router = Router([handle("a", model="m1", alias="fast"), handle("b", model="m2", alias="fast")])

    plan = router.plan("fast", CHAT)

    assert [(r.handle.name, r.upstream_model) for r in plan.routes] == [("a", "m1"), ("b", "m2")]
    firsts = Counter(plan.order(random.Random(seed))[0].handle.name for seed in range(400))
    assert 150 < firsts["a"] < 250  # equal weights


def test_an_alias_spreads_first_tries_by_weight_then_falls_back_in_order():
    alias = AliasConfig(
        name="big",
        deployments=[{"name": "a", "weight": 3}, {"name": "b", "weight": 1}, "c"],
        fallbacks=["d", "e"],
    )
    router = Router(
        [handle(n, model=f"model-{n}") for n in "abcde"] + [handle("pass")], aliases=[alias]
    )

    plan = router.plan("big", CHAT)
    assert names(router, "big") == ["a", "b", "c", "d", "e"]
    assert plan.routes[0].upstream_model == "model-a"
    rng = random.Random(1)
    orders = [[r.handle.name for r in plan.order(rng)] for _ in range(1000)]
    firsts = Counter(order[0] for order in orders)
    assert 540 < firsts["a"] < 660  # 3 of 5
    assert 140 < firsts["b"] < 260
    for order in orders:
        assert order[3:] == ["d", "e"]  # fallbacks last, in their order
        rest = [name for name in order[:3] if name != order[0]]
        assert rest == sorted(rest, key=lambda n: {"a": -3, "b": -1, "c": -1}[n])


def test_an_alias_keeps_only_members_serving_the_endpoint():
    alias = AliasConfig(name="x", deployments=["chat"], fallbacks=["both"])
    router = Router([handle("chat", chat_only=True, model="c"), handle("both", model="b")], [alias])

    assert names(router, "x") == ["chat", "both"]
    assert names(router, "x", EMBED) == ["both"]
    only_chat = Router(
        [handle("chat", chat_only=True, model="c")], [AliasConfig(name="y", deployments=["chat"])]
    )
    assert only_chat.plan("y", EMBED) is None


def test_attempts_move_on_after_a_failure_and_start_over_after_a_round():
    alias = AliasConfig(name="x", deployments=["a"], fallbacks=["b", "c"])
    router = Router([handle(n, model=n) for n in "abc"], [alias])
    attempts = Attempts(router.plan("x", CHAT), random.Random(0))

    seen = []
    for _ in range(2):
        seen.append(attempts.next().handle.name)
        while attempts.advance():
            seen.append(attempts.next().handle.name)
    assert seen == ["a", "b", "c", "a", "b", "c"]


def test_attempts_skip_a_cooling_circuit_while_another_can_take_the_call():
    clock = FakeClock()
    handles = [handle(n, model=n, clock=clock) for n in "ab"]
    router = Router(handles, [AliasConfig(name="x", deployments=["a"], fallbacks=["b"])])
    for _ in range(5):
        handles[0].gate.breaker.record_failure()  # a's circuit opens, cooling down 2 s

    attempts = Attempts(router.plan("x", CHAT), random.Random(0))
    assert attempts.next().handle.name == "b"

    clock.advance(2.5)  # a's cooldown is over: the next call to it is its probe
    assert Attempts(router.plan("x", CHAT), random.Random(0)).next().handle.name == "a"


def test_attempts_wait_at_the_current_deployment_when_every_circuit_cools_down():
    clock = FakeClock()
    handles = [handle(n, model=n, clock=clock) for n in "ab"]
    router = Router(handles, [AliasConfig(name="x", deployments=["a"], fallbacks=["b"])])
    for item in handles:
        for _ in range(5):
            item.gate.breaker.record_failure()

    attempts = Attempts(router.plan("x", CHAT), random.Random(0))
    assert attempts.next().handle.name == "a"
    assert attempts.advance()
    assert attempts.next().handle.name == "b"


# -- a deployment that cannot be reached as configured ----------------------------------------


def test_a_dropped_deployment_leaves_the_requests_order_for_good():
    alias = AliasConfig(name="x", deployments=["a"], fallbacks=["b", "c"])
    router = Router([handle(n, model=n) for n in "abc"], [alias])
    attempts = Attempts(router.plan("x", CHAT), random.Random(0))

    assert attempts.next().handle.name == "a"
    assert attempts.drop()  # a's certificate is not trusted, say
    assert attempts.next().handle.name == "b"
    assert attempts.advance()  # b failed with a 500: on to c
    assert attempts.next().handle.name == "c"
    assert not attempts.advance()  # the round is over: back off, then b and c again
    seen = [attempts.next().handle.name]
    while attempts.advance():
        seen.append(attempts.next().handle.name)
    assert seen == ["b", "c"]
    assert attempts.next().handle.name == "b"  # a new round
    assert attempts.drop()  # b cannot be reached either
    assert attempts.next().handle.name == "c"
    assert not attempts.drop()  # the last one: the request ends with its error


async def test_a_deployment_whose_network_setup_failed_is_set_aside_for_other_requests():
    clock = FakeClock()
    handles = [handle(n, model=n, clock=clock) for n in "ab"]
    router = Router(handles, [AliasConfig(name="x", deployments=["a"], fallbacks=["b"])])
    gate = handles[0].gate
    permit = await gate.acquire(1)
    gate.release(
        permit, error=ProviderError(ErrorCategory.network_setup, "certificate verify failed")
    )

    assert handles[0].set_aside
    assert not handles[0].gate.breaker.blocking  # nothing waits for it
    assert gate.snapshot()["set_aside_for"] == SET_ASIDE_SECONDS  # the dashboard shows it
    assert Attempts(router.plan("x", CHAT), random.Random(0)).next().handle.name == "b"
    clock.advance(SET_ASIDE_SECONDS + 1)  # a while later it is tried again
    assert Attempts(router.plan("x", CHAT), random.Random(0)).next().handle.name == "a"
