"""Aliases over several deployments in a batch: a deployment that fails, whose circuit
is open, or that cannot be reached as configured hands its requests to the next one;
nothing is lost or answered twice."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from datamill.gateway.requests import GatewayRequest
from datamill.providers.base import Endpoint
from datamill.storage.schema import results
from datamill_testing.mock_provider import start_mock
from datamill_testing.tls import make_private_ca
from tests.conftest import mock_deployment
from tests.engine.conftest import assert_each_once
from tests.helpers import chat_line, jsonl, run_batch


async def deployments_that_answered(runtime, batch_id: str) -> Counter[str]:
    async with runtime.database.read() as conn:
        rows = await conn.execute(
            select(results.c.deployment).where(results.c.batch_id == batch_id)
        )
        return Counter(rows.scalars())


def alias_over(first, second, **fields) -> tuple[list[dict], list[dict]]:
    deployments = [
        mock_deployment(first, name="primary", model="mock-model"),
        mock_deployment(second, name="backup", model="mock-model-2"),
    ]
    return deployments, [{"name": "smart", "deployments": ["primary"], "fallbacks": ["backup"]}]


async def test_a_failing_deployment_falls_back_and_its_circuit_stops_the_tries(
    make_runtime, make_mock
):
    broken, healthy = make_mock(force_status=500), make_mock()
    deployments, aliases = alias_over(broken, healthy)
    runtime = await make_runtime(deployments, aliases=aliases)
    ids = [f"r{i}" for i in range(300)]

    batch, outputs, errors = await run_batch(
        runtime, jsonl(chat_line(i, model="smart") for i in ids), worker={"concurrency": 16}
    )

    assert batch.status == "completed"
    assert_each_once(outputs, errors, ids)
    assert errors == []
    assert await deployments_that_answered(runtime, batch.id) == Counter({"backup": 300})
    # The backup got the upstream model of its own deployment.
    assert {line["response"]["body"]["model"] for line in outputs} == {"mock-model-2"}
    assert healthy.stats()["ok_repeats"] == 0
    # Once its circuit opened, the broken deployment was skipped: it saw a handful of calls
    # (the failures that opened it, those already out, and cooldown probes), not 300.
    assert 5 <= broken.stats()["total"] < 100
    assert runtime.router.get("primary").gate.breaker.opens >= 1


async def test_the_weighted_deployments_share_a_batch(make_runtime, make_mock):
    first, second = make_mock(), make_mock()
    deployments = [
        mock_deployment(first, name="one", model="mock-model"),
        mock_deployment(second, name="two", model="mock-model"),
    ]
    aliases = [{"name": "both", "deployments": [{"name": "one", "weight": 3}, {"name": "two"}]}]
    runtime = await make_runtime(deployments, aliases=aliases)
    ids = [f"r{i}" for i in range(400)]

    batch, outputs, errors = await run_batch(
        runtime, jsonl(chat_line(i, model="both") for i in ids)
    )

    assert_each_once(outputs, errors, ids)
    shares = await deployments_that_answered(runtime, batch.id)
    assert shares["one"] + shares["two"] == 400
    assert 240 < shares["one"] < 360  # about 3 in 4
    assert first.stats()["total"] + second.stats()["total"] == 400  # no call wasted


async def test_final_errors_do_not_fall_back(make_runtime, make_mock):
    first, second = make_mock(), make_mock()
    deployments, aliases = alias_over(first, second)
    runtime = await make_runtime(deployments, aliases=aliases)
    first.control(force_status=400)

    _, outputs, errors = await run_batch(runtime, jsonl([chat_line("only", model="smart")]))

    assert outputs == []
    assert [line["datamill_category"] for line in errors] == ["bad_request"]
    assert second.stats()["total"] == 0


# -- a deployment that cannot be reached as configured ----------------------------------------


@pytest.fixture
async def untrusted_mock(tmp_path: Path) -> AsyncIterator[str]:
    """The mock provider over https, its certificate signed by a CA nobody trusts here."""
    ca = make_private_ca(tmp_path / "ca")
    runner, port = await start_mock(ssl_context=ca.server_context())
    yield f"https://127.0.0.1:{port}/v1"
    await runner.cleanup()


async def test_a_deployment_with_an_untrusted_certificate_hands_its_requests_on(
    make_runtime, make_mock, untrusted_mock
):
    healthy = make_mock()
    deployments = [
        {"name": "untrusted", "base_url": untrusted_mock, "model": "mock-model"},
        mock_deployment(healthy, name="healthy", model="mock-model"),
    ]
    aliases = [{"name": "smart", "deployments": ["untrusted", "healthy"]}]  # half the first tries
    runtime = await make_runtime(deployments, aliases=aliases)
    ids = [f"r{i}" for i in range(40)]

    # No retry to spend: a request that met the certificate moved on without counting a
    # failure, so it never waited for a backoff either.
    batch, outputs, errors = await run_batch(
        runtime, jsonl(chat_line(i, model="smart") for i in ids), worker={"max_retries": 0}
    )

    assert batch.status == "completed"
    assert_each_once(outputs, errors, ids)
    assert errors == []
    assert await deployments_that_answered(runtime, batch.id) == Counter({"healthy": 40})
    stats = healthy.stats()
    assert (stats["completed_keys"], stats["ok_repeats"]) == (40, 0)
    untrusted = runtime.router.get("untrusted")
    assert untrusted.gate.stats.errors >= 1  # some requests went there first
    # Once it failed, the others were sent to the healthy one first.
    assert untrusted.set_aside
    assert untrusted.gate.breaker.opens == 0  # set aside, not a circuit anyone waits for


@pytest.mark.parametrize("members", [["untrusted"], ["untrusted", "untrusted-too"]])
async def test_with_no_deployment_left_the_batch_fails_fast_naming_the_cause(
    make_runtime, untrusted_mock, members
):
    deployments = [
        {"name": name, "base_url": untrusted_mock, "model": "mock-model"}
        for name in ("untrusted", "untrusted-too")
    ]
    runtime = await make_runtime(deployments, aliases=[{"name": "smart", "deployments": members}])
    ids = [f"r{i}" for i in range(20)]

    start = time.monotonic()
    batch, outputs, errors = await run_batch(
        runtime, jsonl(chat_line(i, model="smart") for i in ids)
    )
    elapsed = time.monotonic() - start

    assert (batch.status, batch.failed_count, outputs) == ("completed", 20, [])
    assert_each_once(outputs, errors, ids)
    assert {line["datamill_category"] for line in errors} == {"network_setup"}
    for line in errors:
        assert "certificate verify failed" in line["error"]["message"]
        assert "ca_bundle" in line["error"]["message"]
    # Fast: no backoff, and no wait for the deployment set aside (a minute).
    assert elapsed < 20


async def test_the_gateway_hands_a_call_on_from_an_untrusted_certificate(
    make_runtime, make_mock, untrusted_mock
):
    healthy = make_mock()
    deployments = [
        {"name": "untrusted", "base_url": untrusted_mock, "model": "mock-model"},
        mock_deployment(healthy, name="healthy", model="mock-model"),
    ]
    # The untrusted one first, always: without the hand-over every call would fail.
    aliases = [{"name": "smart", "deployments": ["untrusted"], "fallbacks": ["healthy"]}]
    runtime = await make_runtime(deployments, aliases=aliases)
    body = {"model": "smart", "messages": [{"role": "user", "content": "hi"}]}

    answer = await runtime.gateway.complete(
        GatewayRequest(Endpoint.chat_completions, body, orjson.dumps(body), "smart")
    )

    assert answer.deployment == "healthy"
    assert healthy.stats()["completed_keys"] == 1
    assert runtime.router.get("untrusted").set_aside
