"""Calling one deployment: the one place a provider call goes through.

`Dispatcher.call_deployment` (and `Dispatcher.open_stream`, its sibling for a stream's
opening) passes the deployment's gate (breaker, Retry-After pause, concurrency, rate and
tokens), calls the adapter under the one timeout policy, settles the gate's bookkeeping
(tokens refunded against the usage, the rate learned from the answer's headers and 429s,
the breaker told of a success or a failure), and returns the answer or raises
`ProviderError`, and nothing else but a cancel from outside:

- **Timeout.** An answer is due ``call.timeout`` seconds after the call was sent, and by
  ``deadline`` (monotonic) when the caller gives one: an interactive call counts its wait
  at the gate against its timeout. No answer in time is a ``timeout``.
- **Exceptions.** A `ProviderError` passes as it is; anything else an adapter raises (a bug)
  becomes `AdapterFailed`, a ``server_error``, logged with its traceback.

`call_upstream` applies the same policy to a call that passes no gate (a native batch API's
submit, poll, cancel or download). Which deployment a call goes to, and what a failure does
next, are the router's (`router.py`) and the retry decision's (`retry.py`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar

from datamill.clock import Clock
from datamill.errors import AdapterFailed, ErrorCategory, ProviderError
from datamill.providers.responses import respond, stream_response
from datamill.providers.types import Endpoint, ProviderCall, ProviderResponse, ProviderStream
from datamill.scheduler.deadlines import CallDeadlines
from datamill.scheduler.gate import DeploymentGate, Permit
from datamill.scheduler.router import Route

log = logging.getLogger("datamill.scheduler")
T = TypeVar("T")
A = TypeVar("A", ProviderResponse, ProviderStream)


class GateWaits(Protocol):
    """Where batch calls wait at a gate, so that a closing batch can end their waits
    (`engine.waits.CallWaits`)."""

    async def wait(
        self,
        batch_id: str,
        start: Callable[[], Awaitable[T]],
        *,
        discard: Callable[[T], None] | None = None,
    ) -> T | None: ...


class Dispatcher:
    """Calls deployments for one user of them (the batch executor, the gateway); holds the
    deadlines of their calls out (`deadlines.py`: one watcher task, no timer per call)."""

    __slots__ = ("_clock", "_deadlines", "_waits")

    def __init__(self, clock: Clock, *, waits: GateWaits | None = None) -> None:
        self._clock = clock
        self._deadlines = CallDeadlines(clock)
        self._waits = waits

    async def call_deployment(
        self,
        route: Route,
        call: ProviderCall,
        tokens: int,
        *,
        send: Callable[[Route, ProviderCall], Awaitable[A]],
        batch_id: str | None = None,
        ready: Callable[[], bool] | None = None,
        interactive: bool = False,
        deadline: float | None = None,
        permit: Permit | None = None,
    ) -> A | None:
        """``call`` to ``route``'s deployment, reserving about ``tokens`` tokens: `answer`
        (a whole answer) or `opened` (a stream, once accepted) as ``send`` says.

        A batch call (``batch_id``) waits at the gate as one of its batch's waits; None
        when the batch closed first, or when ``ready()`` says no once the gate let it
        through: then nothing was sent and nothing is left taken at the gate. An
        ``interactive`` call goes ahead of waiting batch calls. A stream keeps its permit
        (taken by the caller and passed as ``permit``, see `open_stream`)."""
        gate = route.handle.gate
        if permit is None:
            if batch_id is not None and self._waits is not None:
                # A cancelled wait leaves nothing taken at the gate; a permit granted as the
                # batch closed is given back.
                permit = await self._waits.wait(
                    batch_id, lambda: gate.acquire(tokens), discard=gate.abandon
                )
                if permit is None:
                    return None
            else:
                permit = await self._admit(gate, tokens, interactive=interactive, deadline=deadline)
        if ready is not None and not ready():
            gate.abandon(permit)
            return None
        seconds = call.timeout if deadline is None else self._left(call, deadline)
        task = self._deadlines.start(seconds)
        error: ProviderError
        try:
            got = await send(route, call)
        except Exception as exc:
            error = self._failure(route, call, task, exc)
        except BaseException:  # a cancel
            if not self._ours(task):
                gate.abandon(permit)
                raise
            error = timed_out(f"from {route.handle.name}", call.timeout)
        else:
            self._expired(task)
            if isinstance(got, ProviderResponse):
                gate.release(permit, error=None, usage=got.usage, hints=got.rate_limits)
            return got
        gate.release(permit, error=error)
        raise error

    async def open_stream(
        self, route: Route, call: ProviderCall, tokens: int, *, deadline: float | None = None
    ) -> tuple[ProviderStream, Permit]:
        """`call_deployment` for an interactive stream: returns once the deployment accepted
        it, with the permit still held: the call is out until the stream ends, and whoever
        relays it hands the permit back (`DeploymentGate.release`) with its outcome."""
        permit = await self._admit(route.handle.gate, tokens, interactive=True, deadline=deadline)
        stream = await self.call_deployment(
            route, call, tokens, send=opened, deadline=deadline, permit=permit
        )
        assert stream is not None  # no batch wait to withdraw
        return stream, permit

    async def aclose(self) -> None:
        await self._deadlines.aclose()

    async def _admit(
        self, gate: DeploymentGate, tokens: int, *, interactive: bool, deadline: float | None
    ) -> Permit:
        if deadline is None:
            return await gate.acquire(tokens, interactive=interactive)
        # The wait at the gate counts against the deadline; past it, a ``timeout`` with
        # nothing taken. (To the millisecond: the error says how long it waited.)
        left = max(round(deadline - self._clock.monotonic(), 3), 0.0)
        return await gate.acquire(tokens, interactive=interactive, timeout=left)

    def _left(self, call: ProviderCall, deadline: float) -> float:
        """How long the call's answer may take from now."""
        return min(call.timeout, deadline - self._clock.monotonic())

    def _failure(
        self, route: Route, call: ProviderCall, task: asyncio.Task[object], exc: Exception
    ) -> ProviderError:
        """What an exception from the adapter means (a bug in it must not kill the caller)."""
        if self._expired(task) or isinstance(exc, TimeoutError):
            return timed_out(f"from {route.handle.name}", call.timeout)
        return as_provider_error(exc, f"{route.handle.name} adapter")

    def _ours(self, task: asyncio.Task[object]) -> bool:
        """Whether a cancel is our deadline's, and no cancel from outside besides (the
        worker stopping, the client leaving: that cancel goes on, the call unanswered)."""
        return self._expired(task) and not task.cancelling()

    def _expired(self, task: asyncio.Task[object]) -> bool:
        """Unregister the call's deadline; True (and the deadline's cancel withdrawn) when
        it had passed."""
        expired = self._deadlines.finish(task)
        if expired:
            task.uncancel()
        return expired


async def call_upstream(work: Awaitable[T], *, timeout: float, what: str) -> T:
    """Await ``work``, a call that passes no gate (a native batch API's), under the same
    policy as `Dispatcher.call_deployment`: no answer in ``timeout`` seconds is a
    ``timeout``, an unexpected exception `AdapterFailed`. (These calls are few: a plain
    `asyncio.timeout` bounds them.)"""
    try:
        async with asyncio.timeout(timeout):
            return await work
    except StopAsyncIteration:
        raise
    except TimeoutError:
        raise timed_out(f"to {what}", timeout) from None
    except Exception as exc:
        raise as_provider_error(exc, what) from None


def bounded_upstream(iterator: AsyncIterator[T], *, timeout: float, what: str) -> AsyncIterator[T]:
    """``iterator`` with each item due within ``timeout`` seconds (a stalled download must
    not hold a job forever), failures translated as by `call_upstream`."""

    async def items() -> AsyncIterator[T]:
        source = aiter(iterator)
        try:
            while True:
                try:
                    item = await call_upstream(anext(source), timeout=timeout, what=what)
                except StopAsyncIteration:
                    return
                yield item
        finally:
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()

    return items()


def timed_out(what: str, timeout: float) -> ProviderError:
    return ProviderError(ErrorCategory.timeout, f"no answer {what} in {timeout:g} s")


def as_provider_error(exc: Exception, what: str) -> ProviderError:
    """``exc`` as it is when it is a `ProviderError`; otherwise (a bug) `AdapterFailed`."""
    if isinstance(exc, ProviderError):
        return exc
    log.error("%s raised unexpectedly", what, exc_info=exc)
    return AdapterFailed(f"{what} failed: {exc!r}")


def answer(route: Route, call: ProviderCall) -> Awaitable[ProviderResponse]:
    """What `Dispatcher.call_deployment` sends for a whole answer: the adapter's call for
    the endpoint (not awaited here: no coroutine frame of its own)."""
    provider = route.handle.provider
    if call.endpoint is Endpoint.embeddings:
        return provider.embed(call)
    if call.endpoint is Endpoint.responses:
        return respond(provider, call)
    return provider.complete(call)


def opened(route: Route, call: ProviderCall) -> Awaitable[ProviderStream]:
    """What `Dispatcher.call_deployment` sends for a stream (`Dispatcher.open_stream`)."""
    provider = route.handle.provider
    if call.endpoint is Endpoint.responses:
        return stream_response(provider, call)
    return provider.stream(call)
