"""Spending budgets of batches, as one worker sees them: a call reserves its estimated cost
when it is admitted, and the reservation is settled to the real cost as soon as the answer
arrives, before any flush.

A budgeted batch's spend is what the store last said (read by the sweep), plus what this
worker's flushes added since, plus the answers not flushed yet. A call is admitted while
that spend is under the budget, and waits while the calls in flight might take it over
(spend + their reservations + its own estimate past the budget): once they settle, it is
admitted or the batch is stopped. So a budget is overshot by at most what the calls in
flight at the moment it was reached cost, however late results are flushed.

The estimate is the batch's mean real cost per call once one answer came back, and before
that the request's own tokens (its prompt, and its output budget) at the deployment's
prices.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Account:
    budget: float
    stored: float = 0.0  # the batch's cost as the store last said
    flushed_total: float = 0.0  # recorded by this worker's flushes, ever
    flushed_base: float = 0.0  # the part of flushed_total that ``stored`` may include
    unflushed: float = 0.0  # answered, not flushed yet
    reserved: float = 0.0  # estimates of the calls in flight
    in_flight: int = 0
    settled_calls: int = 0
    settled_cost: float = 0.0
    told: bool = False  # on_exhausted was called
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def spent(self) -> float:
        return self.stored + (self.flushed_total - self.flushed_base) + self.unflushed

    def mean_cost(self) -> float | None:
        return self.settled_cost / self.settled_calls if self.settled_calls else None


class Reservation:
    """One admitted call's share of its batch's budget, until `settle` (once) gives it back."""

    __slots__ = ("_ledger", "batch_id", "estimate")

    def __init__(self, batch_id: str, estimate: float, ledger: BudgetLedger | None) -> None:
        self.batch_id = batch_id
        self.estimate = estimate
        self._ledger = ledger

    @classmethod
    def free(cls, batch_id: str) -> Reservation:
        """The reservation of a call whose batch has no budget: settling it does nothing."""
        return cls(batch_id, 0.0, None)

    def settle(self, cost: float | None) -> None:
        """The call is over: ``cost`` USD when it was answered, None when it cost nothing
        (a failure, or never sent)."""
        ledger, self._ledger = self._ledger, None
        if ledger is not None:
            ledger.settle(self, cost)


class BudgetLedger:
    """Every budgeted batch's spend and reservations in this worker. ``on_exhausted(batch
    id)`` is called once a batch's known spend reaches its budget (it may be called again
    after a refresh)."""

    def __init__(self, on_exhausted: Callable[[str], None] | None = None) -> None:
        self._accounts: dict[str, _Account] = {}
        self._on_exhausted = on_exhausted

    def mark(self) -> dict[str, float]:
        """What this worker's flushes recorded so far, per batch: take it just before the
        store is read, and hand it to `refresh` with what was read."""
        return {batch_id: account.flushed_total for batch_id, account in self._accounts.items()}

    def refresh(
        self, costs: dict[str, tuple[float, float]], marks: dict[str, float] | None = None
    ) -> None:
        """The store's view: ``{batch id: (budget, cost)}`` of the running budgeted batches,
        read after ``marks`` was taken. Flushes counted before the mark are in ``cost``;
        later ones may not be, and keep counting (a flush that reached the store just
        before the read is then counted twice until the next refresh: never too little)."""
        marks = marks or {}
        for batch_id in list(self._accounts):
            if batch_id not in costs and not self._accounts[batch_id].in_flight:
                del self._accounts[batch_id]
        for batch_id, (budget, cost) in costs.items():
            account = self._accounts.get(batch_id)
            if account is None:
                self._accounts[batch_id] = _Account(budget=budget, stored=cost)
                continue
            account.budget = budget
            account.stored = cost
            account.flushed_base = marks.get(batch_id, account.flushed_base)
            account.changed.set()  # another worker's spend may change a waiting call's fate

    def budgeted(self, batch_id: str) -> bool:
        return batch_id in self._accounts

    def exhausted(self, batch_id: str) -> bool:
        """Whether the batch has spent its budget (by what is known, not reserved)."""
        account = self._accounts.get(batch_id)
        return account is not None and account.spent >= account.budget

    async def admit(self, batch_id: str, estimate: float) -> Reservation | None:
        """Reserve ``estimate`` USD for a call of the batch; waits while the calls in flight
        could take the batch past its budget. None when the budget is spent (send nothing);
        a batch without a budget is always admitted."""
        account = self._accounts.get(batch_id)
        if account is None:
            return Reservation.free(batch_id)
        while True:
            if account.spent >= account.budget:
                self._exhausted(batch_id, account)
                return None
            guess = account.mean_cost()
            cost = estimate if guess is None else guess
            if not account.in_flight or account.spent + account.reserved + cost <= account.budget:
                account.reserved += cost
                account.in_flight += 1
                return Reservation(batch_id, cost, self)
            account.changed.clear()
            await account.changed.wait()

    def settle(self, reservation: Reservation, cost: float | None) -> None:
        """Called by `Reservation.settle`: the reservation is given back, ``cost`` counted."""
        account = self._accounts.get(reservation.batch_id)
        if account is None:
            return
        account.reserved = max(0.0, account.reserved - reservation.estimate)
        account.in_flight -= 1
        if cost is not None:
            account.unflushed += cost
            account.settled_calls += 1
            account.settled_cost += cost
            if account.spent >= account.budget:
                self._exhausted(reservation.batch_id, account)
        account.changed.set()

    def _exhausted(self, batch_id: str, account: _Account) -> None:
        if not account.told and self._on_exhausted is not None:
            account.told = True
            self._on_exhausted(batch_id)

    def flushed(self, batch_id: str, cost: float) -> None:
        """``cost`` USD of the batch's results reached the store."""
        account = self._accounts.get(batch_id)
        if account is None:
            return
        account.unflushed = max(0.0, account.unflushed - cost)
        account.flushed_total += cost

    def spent(self, batch_id: str) -> float:
        account = self._accounts.get(batch_id)
        return account.spent if account is not None else 0.0
