"""`RetryDecision`: what a failed call does next, for batch calls (``max_retries``) and
interactive ones (one round, no backoff); `backoff_delay`: how long it waits."""

from __future__ import annotations

import random

import pytest

from datamill.errors import AdapterFailed, ErrorCategory, ProviderError
from datamill.scheduler.gate import MAX_PAUSE
from datamill.scheduler.retry import MAX_DELAY, RetryAction, RetryDecision, backoff_delay
from datamill.scheduler.router import Attempts, Route, RoutePlan
from tests.scheduler.test_router import handle

C = ErrorCategory
A = RetryAction


def attempts(*names: str) -> Attempts:
    """A plan over ``names``, in that order (no weights: no choice to make)."""
    routes = tuple(Route(handle(name), "m") for name in names)
    return Attempts(RoutePlan("m", routes), random.Random(0))


def error(category: ErrorCategory, retry_after: float | None = None) -> ProviderError:
    return ProviderError(category, category.value, retry_after=retry_after)


@pytest.mark.parametrize(
    ("category", "one", "two"),
    [
        # Retryable: the next deployment now; once every one was tried, a backoff (batch)
        # or the end (interactive).
        (C.server_error, (A.retry, A.back_off), (A.retry, A.give_up)),
        (C.timeout, (A.retry, A.back_off), (A.retry, A.give_up)),
        (C.connection, (A.retry, A.back_off), (A.retry, A.give_up)),
        (C.rate_limited, (A.retry, A.back_off), (A.retry, A.give_up)),
        # Final whatever is left.
        (C.auth, (A.give_up, A.give_up), (A.give_up, A.give_up)),
        (C.bad_request, (A.give_up, A.give_up), (A.give_up, A.give_up)),
        (C.content_filter, (A.give_up, A.give_up), (A.give_up, A.give_up)),
        (C.not_found, (A.give_up, A.give_up), (A.give_up, A.give_up)),
        # The deployment dropped for the next one, until none is left.
        (C.network_setup, (A.set_aside, A.give_up), (A.set_aside, A.give_up)),
    ],
)
def test_the_decision_table(category: ErrorCategory, one, two):
    """Two deployments, two failures in a row: batch calls (``one``), then interactive
    ones (``two``)."""
    for max_retries, expected in ((5, one), (None, two)):
        decision = RetryDecision(attempts("a", "b"), max_retries=max_retries, rng=random.Random(0))
        got = (
            decision.after(error(category), tries=1),
            decision.after(error(category), tries=2),
        )
        assert got == expected, (max_retries, got)


def test_a_set_aside_deployment_is_skipped_without_spending_a_retry():
    plan = attempts("a", "b", "c")
    decision = RetryDecision(plan, max_retries=0, rng=random.Random(0))

    assert decision.after(error(C.network_setup), tries=1) is A.set_aside
    assert decision.failures == 0
    assert plan.next().handle.name == "b"
    # The first failure that spends a retry is over a max_retries of 0.
    assert decision.after(error(C.server_error), tries=2) is A.give_up


def test_max_retries_counts_failures_but_not_429s():
    decision = RetryDecision(attempts("a"), max_retries=2, rng=random.Random(0))

    for tries in range(1, 6):
        assert decision.after(error(C.rate_limited, 1.0), tries=tries) is A.back_off
    assert decision.failures == 0
    assert decision.after(error(C.server_error), tries=6) is A.back_off
    assert decision.after(error(C.timeout), tries=7) is A.back_off
    assert decision.after(error(C.connection), tries=8) is A.give_up
    assert decision.failures == 3


def test_an_adapter_bug_is_a_server_error():
    decision = RetryDecision(attempts("a", "b"), max_retries=1, rng=random.Random(0))

    assert decision.after(AdapterFailed("a adapter failed: KeyError('x')"), tries=1) is A.retry
    assert decision.failures == 1


def test_the_delay_obeys_retry_after_up_to_max_pause():
    decision = RetryDecision(attempts("a"), max_retries=5, rng=random.Random(0))

    assert decision.after(error(C.rate_limited, 7.0), tries=1) is A.back_off
    assert 7.0 <= decision.delay() <= 7.7
    decision.after(error(C.rate_limited, 10 * MAX_PAUSE), tries=2)
    assert MAX_PAUSE <= decision.delay() <= MAX_PAUSE + 1.0


def test_without_a_hint_the_delay_grows_with_the_tries():
    decision = RetryDecision(attempts("a"), max_retries=50, rng=random.Random(0))

    decision.after(error(C.server_error), tries=1)
    assert 0.25 <= decision.delay() <= 0.5
    decision.after(error(C.server_error), tries=4)
    assert 2.0 <= decision.delay() <= 4.0
    decision.after(error(C.server_error), tries=30)
    assert MAX_DELAY / 2 <= decision.delay() <= MAX_DELAY


def test_backoff_has_full_jitter():
    rng = random.Random(1)
    delays = {round(backoff_delay(3, retry_after=None, rng=rng), 6) for _ in range(50)}
    assert len(delays) > 40
    assert all(1.0 <= delay <= 2.0 for delay in delays)
