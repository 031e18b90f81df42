"""Running one leased request to its final result.

The executor routes the request, calls the deployment (`scheduler.dispatch`: its gate, the
timeout, the bookkeeping) and retries what is retryable while the lease is held, as the
retry decision says (`scheduler.retry`): up to ``max_retries`` failures, not counting 429s,
the next deployment of the plan at once, a backoff (obeying ``Retry-After``) once every
deployment was tried, and a deployment whose network setup failed dropped from the plan
without spending a retry. It always records a `RequestResult`; no provider failure escapes
it.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import orjson

from datamill.clock import Clock
from datamill.engine.budgets import BudgetLedger, Reservation
from datamill.engine.outcomes import answered, failed
from datamill.engine.waits import CallWaits
from datamill.errors import ErrorCategory, ProviderError
from datamill.nlp.tokens import estimate_request_tokens, estimate_response_tokens
from datamill.protocol.responses import continue_response
from datamill.providers.base import Endpoint, ProviderCall, ProviderResponse, Usage
from datamill.scheduler.dispatch import Dispatcher, answer
from datamill.scheduler.limits import AdjustableLimit
from datamill.scheduler.pricing import call_cost
from datamill.scheduler.retry import RetryAction, RetryDecision
from datamill.scheduler.router import Attempts, Route, Router
from datamill.storage.database import Database
from datamill.storage.records import LeasedRequest, RequestResult
from datamill.storage.requests import CLOSING_MESSAGES
from datamill.storage.responses import get_response
from datamill.storage.schema import DEFAULT_PROJECT_ID


@dataclass(frozen=True, slots=True)
class ExecutionPolicy:
    """Per-batch knobs: the engine defaults, overridden by the batch's options."""

    endpoint: Endpoint
    max_retries: int
    timeout: float | None  # None: the deployment's own timeout
    project_id: str = DEFAULT_PROJECT_ID  # whose stored responses its lines may continue


# Returns the closing code ("batch_cancelled", "batch_expired") once a batch stops running.
BatchCheck = Callable[[str], str | None]
# Returns once the result is durably recorded.
Recorder = Callable[[RequestResult], Awaitable[None]]


class RequestExecutor:
    def __init__(
        self,
        router: Router,
        clock: Clock,
        *,
        rng: random.Random | None = None,
        database: Database | None = None,
    ) -> None:
        self._router = router
        self._clock = clock
        self._database = database  # where the gateway keeps responses (None: none kept)
        self._rng = rng or random.Random()
        # The calls waiting at a gate or in a backoff: the worker ends those of a batch that
        # closes, and all of them when it stops.
        self.waits = CallWaits()
        self._dispatch = Dispatcher(clock, waits=self.waits)

    async def execute(
        self,
        request: LeasedRequest,
        policy: ExecutionPolicy,
        *,
        calls: AdjustableLimit,
        unrecorded: AdjustableLimit,
        closing: BatchCheck,
        record: Recorder,
        budgets: BudgetLedger | None = None,
    ) -> None:
        """Run ``request`` to its one final result and ``record`` it.

        Two limits: ``calls`` bounds the calls out at the providers, and is held only while
        the call is out; ``unrecorded`` bounds the requests sent whose result is not stored
        yet, and is held from before the call until its result is recorded. After a crash
        the providers see again at most ``unrecorded.limit`` requests, while the next calls
        go out as soon as answers arrive, not once they are committed. ``budgets`` holds
        each call of a budgeted batch until its estimated cost fits (see `budgets.py`)."""
        try:
            body = orjson.loads(request.body)
            model = body["model"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await record(self._failure(request, None, _bad_body(), tries=0))
            return
        plan = self._router.plan(str(model), policy.endpoint)
        if plan is None:
            error = ProviderError(
                ErrorCategory.not_found,
                f"No deployment serves model {model!r} on {policy.endpoint.value}; "
                "add one to datamill.toml or fix the model name",
            )
            await record(self._failure(request, None, error, tries=0))
            return
        raw: bytes | None = request.body
        if policy.endpoint is Endpoint.responses and body.get("previous_response_id"):
            continued = await self._continued(body, policy.project_id)
            if continued is not body:
                body, raw = continued, None
        attempts = Attempts(plan, self._rng)
        built: dict[str, ProviderCall] = {}  # one call body per deployment, built once
        tokens: int | None = None  # estimated when first needed: only a token budget does
        tries = 0
        retries: RetryDecision | None = None  # made at the first failure
        while True:
            code = closing(request.batch_id)
            if code is not None:
                await record(self._closed(request, code, tries))
                return
            await unrecorded.acquire()
            try:
                await calls.acquire()
                try:
                    # Again once a slot is free: a request that queued for one while its
                    # batch was cancelled or expired must not be sent.
                    code = closing(request.batch_id)
                    if code is None:
                        route = attempts.next()
                        call = built.get(route.handle.name)
                        if call is None:
                            call = self._build_call(request, body, route, policy, raw=raw)
                            built[route.handle.name] = call
                        if tokens is None and route.handle.gate.counts_tokens:
                            tokens = sum(_estimate(policy.endpoint)(body))
                        reservation = await self._reserve(
                            budgets, request.batch_id, body, route, policy.endpoint
                        )
                        if reservation is None:
                            code = "budget_exhausted"
                        elif (code := closing(request.batch_id)) is not None:
                            reservation.settle(None)  # closed while it waited: never sent
                        else:
                            tries += 1
                            outcome: ProviderResponse | ProviderError | None = None
                            try:
                                outcome = await self._dispatch.call_deployment(
                                    route,
                                    call,
                                    tokens or 0,
                                    send=answer,
                                    batch_id=request.batch_id,
                                    ready=lambda: closing(request.batch_id) is None,
                                )
                            except ProviderError as exc:
                                # Kept as a value: no traceback holding this frame.
                                outcome = exc.with_traceback(None)
                            finally:
                                cost = _cost(route, outcome)
                                reservation.settle(cost)
                finally:
                    calls.release()
                if code is not None:
                    await record(self._closed(request, code, tries))
                    return
                if outcome is None:
                    # Cancelled or expired while the gate held the call (an open circuit,
                    # a Retry-After pause): it was never sent.
                    code = closing(request.batch_id) or "batch_cancelled"
                    await record(self._closed(request, code, tries - 1))
                    return
                if isinstance(outcome, ProviderResponse):
                    await record(
                        self._success(request, route, outcome, tries, model=str(model), cost=cost)
                    )
                    return
                if retries is None:
                    retries = RetryDecision(attempts, max_retries=policy.max_retries, rng=self._rng)
                action = retries.after(outcome, tries=tries)
                if action is RetryAction.give_up:
                    await record(self._failure(request, route, outcome, tries=tries))
                    return
            finally:
                unrecorded.release()
            if action is RetryAction.back_off and closing(request.batch_id) is None:
                # Every deployment of the plan failed this round: wait before the next one.
                await self._back_off(request.batch_id, retries.delay())

    async def aclose(self) -> None:
        await self._dispatch.aclose()

    async def _back_off(self, batch_id: str, seconds: float) -> None:
        """Sleep before the next round of tries; cut short when the batch closes (the
        caller then finds it closed)."""
        await self.waits.wait(batch_id, lambda: self._clock.sleep(seconds))

    @staticmethod
    async def _reserve(
        budgets: BudgetLedger | None,
        batch_id: str,
        body: dict[str, Any],
        route: Route,
        endpoint: Endpoint,
    ) -> Reservation | None:
        """The call's share of its batch's budget (None: the budget is spent)."""
        if budgets is None or not budgets.budgeted(batch_id):
            return Reservation.free(batch_id)
        prompt, output = _estimate(endpoint)(body)
        usage = Usage(input_tokens=prompt, output_tokens=output)
        return await budgets.admit(batch_id, call_cost(route.handle.config, usage))

    async def _continued(self, body: dict[str, Any], project_id: str) -> dict[str, Any]:
        """A Responses line continuing a response the gateway kept (in the batch's project),
        as one that stands alone, as the gateway sends it; ``body`` itself otherwise: an
        upstream with the API may know the id, and translation refuses it, failing the line
        with ``param`` ``previous_response_id``."""
        previous = body["previous_response_id"]
        if self._database is None or not isinstance(previous, str):
            return body
        stored = await get_response(self._database, previous, project_id=project_id)
        if stored is None:
            return body
        return continue_response(
            body,
            earlier_input=orjson.loads(stored.input),
            earlier_response=orjson.loads(stored.body),
        )

    def _build_call(
        self,
        request: LeasedRequest,
        body: dict[str, object],
        route: Route,
        policy: ExecutionPolicy,
        *,
        raw: bytes | None,
    ) -> ProviderCall:
        """The call of ``request`` to ``route``; ``raw`` is ``body`` as bytes, when it is
        the line's own (None: datamill changed it)."""
        timeout = policy.timeout or route.handle.config.timeout
        if route.upstream_model == body["model"]:
            return ProviderCall(policy.endpoint, body, timeout, raw=raw)
        return ProviderCall(policy.endpoint, {**body, "model": route.upstream_model}, timeout)

    def _success(
        self,
        request: LeasedRequest,
        route: Route,
        response: ProviderResponse,
        tries: int,
        *,
        model: str,
        cost: float | None,
    ) -> RequestResult:
        return answered(
            request,
            request.batch_id,
            response,
            deployment=route.handle.name,
            attempts=tries,
            model=model,
            cost=cost or 0.0,
            now=self._clock.now(),
        )

    def _failure(
        self, request: LeasedRequest, route: Route | None, error: ProviderError, *, tries: int
    ) -> RequestResult:
        return failed(
            request,
            request.batch_id,
            error,
            deployment=route.handle.name if route else None,
            attempts=tries,
            now=self._clock.now(),
        )

    def internal_failure(self, request: LeasedRequest, exc: BaseException) -> RequestResult:
        """The result of a request that hit a bug in datamill itself: final, so a bug cannot
        make a request run forever, and the error line says where to look."""
        error = ProviderError(
            ErrorCategory.server_error,
            f"datamill failed on this request ({type(exc).__name__}: {exc}); "
            "the worker's log has the details",
        )
        return replace(self._failure(request, None, error, tries=0), error_code="internal_error")

    def _closed(self, request: LeasedRequest, code: str, tries: int) -> RequestResult:
        error = ProviderError(ErrorCategory.bad_request, CLOSING_MESSAGES.get(code, code))
        return replace(self._failure(request, None, error, tries=tries), error_code=code)


def _cost(route: Route, outcome: ProviderResponse | ProviderError | None) -> float | None:
    """What an answered call cost (None: no answer with a usage, so nothing)."""
    if isinstance(outcome, ProviderResponse):
        return call_cost(route.handle.config, outcome.usage)
    return None


def _estimate(endpoint: Endpoint) -> Callable[[dict[str, Any]], tuple[int, int]]:
    """How a call's tokens are estimated for token budgets."""
    if endpoint is Endpoint.responses:
        return estimate_response_tokens
    return estimate_request_tokens


def _bad_body() -> ProviderError:
    return ProviderError(
        ErrorCategory.bad_request, "the request body is not a JSON object with a model"
    )
