"""Cost accounting in batches: each result's cost at its deployment's prices, the batch's
total, usage totals by model and deployment, and a budget that stops a batch cleanly."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from datamill.providers.base import Usage
from datamill.scheduler.pricing import call_cost
from datamill.storage.schema import results
from datamill.storage.usage import UsageGroup
from tests.conftest import mock_deployment
from tests.engine.conftest import assert_each_once, error_codes
from tests.helpers import chat_line, jsonl, run_batch

PRICED = {"input_price": 2.0, "output_price": 8.0}


async def recorded(runtime, batch_id: str) -> list:
    async with runtime.database.read() as conn:
        rows = await conn.execute(select(results).where(results.c.batch_id == batch_id))
        return list(rows)


async def test_each_result_and_the_batch_carry_their_cost(make_runtime, mock_provider):
    runtime = await make_runtime(
        [mock_deployment(mock_provider, model="mock-model", alias="priced", **PRICED)]
    )
    batch, outputs, errors = await run_batch(
        runtime, jsonl(chat_line(f"r{i}", model="priced") for i in range(40))
    )

    assert_each_once(outputs, errors, [f"r{i}" for i in range(40)])
    config = runtime.router.get("mock").config
    rows = await recorded(runtime, batch.id)
    for row in rows:
        usage = Usage(input_tokens=row.input_tokens, output_tokens=row.output_tokens)
        assert row.cost == pytest.approx(call_cost(config, usage))
        assert row.cost > 0
        assert row.model == "priced"
    assert batch.cost == pytest.approx(sum(row.cost for row in rows))

    by_model = await runtime.operations.usage(group_by=UsageGroup.model)
    [entry] = by_model["data"]
    assert (entry["key"], entry["source"], entry["requests"]) == ("priced", "batch", 40)
    assert entry["cost_usd"] == pytest.approx(batch.cost)
    assert by_model["total"]["input_tokens"] == batch.input_tokens


async def test_an_alias_totals_its_deployments(make_runtime, make_mock):
    first, second = make_mock(), make_mock()
    runtime = await make_runtime(
        [
            mock_deployment(first, name="one", model="mock-model", **PRICED),
            mock_deployment(second, name="two", model="mock-model", input_price=1.0),
        ],
        aliases=[{"name": "pool", "deployments": ["one", "two"]}],
    )
    batch, _, _ = await run_batch(
        runtime, jsonl(chat_line(f"r{i}", model="pool") for i in range(60))
    )

    by_deployment = {
        entry["key"]: entry
        for entry in (await runtime.operations.usage(group_by=UsageGroup.deployment))["data"]
    }
    assert set(by_deployment) == {"one", "two"}
    assert by_deployment["one"]["requests"] + by_deployment["two"]["requests"] == 60
    [pool] = (await runtime.operations.usage(group_by=UsageGroup.model))["data"]
    assert pool["key"] == "pool"
    assert pool["requests"] == 60
    assert pool["cost_usd"] == pytest.approx(
        by_deployment["one"]["cost_usd"] + by_deployment["two"]["cost_usd"]
    )
    [only] = (await runtime.operations.usage(group_by=UsageGroup.batch))["data"]
    assert (only["key"], only["cost_usd"]) == (batch.id, pytest.approx(batch.cost))


async def run_with_a_budget(make_runtime, make_mock, *, latency_ms: float):
    """400 requests at about $0.01 each against a $0.30 budget, 4 calls at a time; checks
    what every budgeted run must hold and returns the batch and its output lines."""
    mock = make_mock(latency_ms=latency_ms)
    runtime = await make_runtime(
        [
            mock_deployment(
                mock, model="mock-model", alias="dear", input_price=1000.0, output_price=1000.0
            )
        ]
    )
    ids = [f"r{i}" for i in range(400)]
    batch, outputs, errors = await run_batch(
        runtime,
        jsonl(chat_line(i, model="dear") for i in ids),
        budget_usd=0.30,
        worker={"concurrency": 4},
    )

    assert batch.status == "completed"
    assert batch.stop_reason == "budget_exhausted"
    assert_each_once(outputs, errors, ids)
    assert set(error_codes(errors)) == {"budget_exhausted"}
    per_request = batch.cost / len(outputs)
    # Never more than the calls out when the budget was reached (4), however late results
    # are flushed: each call reserved its cost when it was sent.
    assert batch.cost <= 0.30 + 4 * per_request
    assert mock.stats()["completed_keys"] == len(outputs)  # nothing sent past the stop
    return batch, outputs


async def test_a_budget_stops_a_batch_cleanly(make_runtime, make_mock):
    _, outputs = await run_with_a_budget(make_runtime, make_mock, latency_ms=30)

    assert 20 <= len(outputs) < 100


async def test_a_budget_holds_however_slowly_results_are_flushed(
    make_runtime, make_mock, monkeypatch
):
    """A store that takes a quarter of a second per commit (a loaded machine, a distant
    PostgreSQL): the overshoot is still at most the calls in flight, not what was sent
    while a flush ran."""
    from datamill.engine import writer

    original = writer.record_results

    async def slow_record_results(*args, **kwargs):
        await asyncio.sleep(0.25)
        return await original(*args, **kwargs)

    monkeypatch.setattr(writer, "record_results", slow_record_results)

    await run_with_a_budget(make_runtime, make_mock, latency_ms=10)


async def test_a_batch_without_a_budget_is_not_stopped(make_runtime, mock_provider):
    runtime = await make_runtime([mock_deployment(mock_provider, **PRICED)])
    batch, outputs, _ = await run_batch(runtime, jsonl(chat_line(f"r{i}") for i in range(20)))

    assert batch.stop_reason is None
    assert len(outputs) == 20
