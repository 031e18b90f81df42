"""`BudgetLedger`: reservations at admission, settled at the answer, waiting near the budget."""

from __future__ import annotations

import asyncio

from datamill.engine.budgets import BudgetLedger


async def test_a_batch_without_a_budget_is_always_admitted():
    ledger = BudgetLedger()
    reservation = await ledger.admit("b", 5.0)
    assert reservation is not None
    reservation.settle(100.0)
    assert ledger.spent("b") == 0.0


async def test_calls_wait_while_those_in_flight_could_spend_the_rest():
    exhausted: list[str] = []
    ledger = BudgetLedger(on_exhausted=exhausted.append)
    ledger.refresh({"b": (1.0, 0.5)})  # $0.50 of $1 spent

    first = await ledger.admit("b", 0.3)
    assert first is not None
    waiting = asyncio.create_task(ledger.admit("b", 0.3))  # 0.5 + 0.3 + 0.3 > 1
    await asyncio.sleep(0)
    assert not waiting.done()

    first.settle(0.2)  # cheaper than reserved: 0.7 spent, and the mean cost is now 0.2
    second = await asyncio.wait_for(waiting, 1)
    assert second is not None
    assert second.estimate == 0.2
    second.settle(0.4)  # 1.1 spent: over

    assert exhausted == ["b"]
    assert await ledger.admit("b", 0.01) is None


async def test_a_call_alone_is_admitted_even_when_its_estimate_is_large():
    ledger = BudgetLedger()
    ledger.refresh({"b": (1.0, 0.9)})
    reservation = await ledger.admit("b", 50.0)  # nothing in flight: only spend stops it
    assert reservation is not None
    reservation.settle(None)  # it failed: nothing spent, the reservation given back
    again = await ledger.admit("b", 50.0)
    assert again is not None


async def test_flushed_costs_move_from_answered_to_stored():
    ledger = BudgetLedger()
    ledger.refresh({"b": (10.0, 1.0)})
    reservation = await ledger.admit("b", 1.0)
    assert reservation is not None
    reservation.settle(2.0)
    assert ledger.spent("b") == 3.0
    ledger.flushed("b", 2.0)
    assert ledger.spent("b") == 3.0
    marks = ledger.mark()
    ledger.refresh({"b": (10.0, 3.0)}, marks)  # read after the flush: the store holds it
    assert ledger.spent("b") == 3.0


async def test_a_flush_during_the_stores_read_is_never_lost():
    ledger = BudgetLedger()
    ledger.refresh({"b": (10.0, 1.0)})
    reservation = await ledger.admit("b", 1.0)
    assert reservation is not None
    reservation.settle(2.0)
    marks = ledger.mark()  # the sweep starts reading the store...
    ledger.flushed("b", 2.0)  # ...a flush commits meanwhile, after the read saw 1.0
    ledger.refresh({"b": (10.0, 1.0)}, marks)
    assert ledger.spent("b") == 3.0  # not 1.0: the flush is still counted
