"""Spec code run apart: a spec's templates rendered, and its schema patterns and quality
regexes applied to answers (and task schemas' JSON Schemas to sample contents), in worker
processes with bounded time and memory.

A template that loops for ever or a regex that backtracks for ever (``^(a+)+$`` on a long
``aaa...!``) would hold whatever thread runs it, and a Python thread cannot be stopped. So
this work runs in `ConfinedPool`'s processes, never on the event loop (callers await
`render_all` and `check_all`, which wait in one of the pool's threads):

- each render and each check stage has a deadline (`Limits.seconds`): a timer signal
  interrupts Python code and ``re``'s matcher, and the item fails naming the bound;
- each process's address space is capped (`Limits.memory_mb`): an allocation past it is a
  `MemoryError`, and the item fails naming the bound;
- a call that outlives its items' deadlines (work in C that no signal interrupts) gets its
  process killed and replaced, and every item of the call fails.

Requests and answers travel as JSON lines over the process's stdin and stdout.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import os
import queue
import selectors
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson

from datamill.generation.quality import Rejection, Verdict
from datamill.generation.templates import TemplateProblem


@dataclass(frozen=True, slots=True)
class Limits:
    seconds: float = 1.0  # one render, or one stage (schema, regexes) of one answer's check
    memory_mb: int = 512  # a process's address space beyond its start
    slack: float = 10.0  # a call's own allowance beyond its items' deadlines
    overrun: float = 5.0  # a check call's answers past their deadlines, in all, at most


@dataclass(frozen=True, slots=True)
class RenderItem:
    source: str
    variables: dict[str, Any]
    vary: bool = False  # append the variation line to a template that does not use it


@dataclass(frozen=True, slots=True)
class CheckItem:
    body: dict[str, Any]  # the chat completion answer
    schema: dict[str, Any]
    quality: dict[str, Any]  # `spec.Quality`, dumped


class ConfinedError(Exception):
    """A call whose process died or overran: none of its items has a result."""


class _Process:
    """One worker process, spoken to by one thread at a time."""

    def __init__(self, limits: Limits) -> None:
        # Isolated (-I): neither the working directory (a `datamill` folder there would be
        # imported instead) nor PYTHON* variables; this process's own import path instead.
        paths = [path for path in sys.path if path]
        boot = (
            f"import sys; sys.path[:] = {paths!r}; "
            "from datamill.generation.confined_worker import main; main()"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", boot, str(limits.memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._buffer = b""
        self.ready = False

    def exchange(self, request: bytes, budget: float) -> dict[str, Any]:
        """Send ``request``; its answer, within ``budget`` seconds of sending it."""
        assert self.proc.stdin is not None
        if not self.ready:
            # The first line says the worker has imported what it needs: its start-up
            # (imports on a loaded machine) does not count against the call's deadline.
            self._read_line(time.monotonic() + 120.0)
            self.ready = True
        try:
            self.proc.stdin.write(request)
            self.proc.stdin.flush()
        except OSError:
            raise ConfinedError("the spec's worker process ended") from None
        line = self._read_line(time.monotonic() + budget)
        answer: dict[str, Any] = orjson.loads(line)
        return answer

    def _read_line(self, deadline: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise TimeoutError
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise ConfinedError("the spec's worker process ended")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class ConfinedPool:
    """Up to ``size`` worker processes, started when first needed; a call takes a free one
    (or waits for one). Thread-safe; `close` ends them."""

    def __init__(self, *, size: int = 2, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._idle: queue.Queue[_Process | None] = queue.Queue()
        for _ in range(size):
            self._idle.put(None)  # a slot whose process starts on first use
        self._lock = threading.Lock()
        self._all: set[_Process] = set()
        # One thread per process: callers past them wait on the event loop, not in the
        # loop's default executor, which other work needs.
        self._threads = ThreadPoolExecutor(max_workers=size, thread_name_prefix="confined")

    async def acall(
        self,
        op: str,
        items: list[dict[str, Any]],
        *,
        stages: int,
        shared: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """`call` from the event loop, waiting in one of the pool's threads."""
        work = functools.partial(self.call, op, items, stages=stages, shared=shared)
        return await asyncio.get_running_loop().run_in_executor(self._threads, work)

    def call(
        self,
        op: str,
        items: list[dict[str, Any]],
        *,
        stages: int,
        shared: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Run ``items`` of ``op`` (``render`` or ``check``) in one process; each result
        is ``{"ok": ...}`` or ``{"error": ..., "kind": ...}``. `ConfinedError` when the
        call overran or its process failed."""
        if not items:
            return []
        request = {"op": op, "items": items, "shared": shared, "seconds": self.limits.seconds}
        line = orjson.dumps(request) + b"\n"
        budget = len(items) * stages * self.limits.seconds + self.limits.slack
        process = self._idle.get()
        try:
            if process is None:
                process = _Process(self.limits)
                with self._lock:
                    self._all.add(process)
            answer = process.exchange(line, budget)
        except (TimeoutError, ConfinedError, orjson.JSONDecodeError) as exc:
            if process is not None:
                self._discard(process)
            process = None
            if isinstance(exc, TimeoutError):
                raise ConfinedError(
                    f"the spec's code did not finish within {budget:.3g} s"
                ) from None
            raise ConfinedError(str(exc) or "the spec's worker process failed") from None
        finally:
            self._idle.put(process)
        if "failed" in answer:
            raise ConfinedError(str(answer["failed"]))
        results: list[dict[str, Any]] = answer["results"]
        return results

    def _discard(self, process: _Process) -> None:
        with self._lock:
            self._all.discard(process)
        process.close()

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            processes, self._all = list(self._all), set()
        for process in processes:
            process.close()


_shared: ConfinedPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> ConfinedPool:
    """The process's pool (its workers end with the process)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ConfinedPool()
            atexit.register(_shared.close)
        return _shared


async def render_all(items: list[RenderItem], pool: ConfinedPool | None = None) -> list[str]:
    """Each item's template rendered, in order; `TemplateProblem` for the first that does
    not render (or overruns a bound)."""
    payload = [{"source": i.source, "variables": i.variables, "vary": i.vary} for i in items]
    chosen = pool or shared_pool()
    try:
        results = await chosen.acall("render", payload, stages=1)
    except ConfinedError as exc:
        raise TemplateProblem(f"the template does not render: {exc}") from None
    texts: list[str] = []
    for result in results:
        if "error" in result:
            raise TemplateProblem(str(result["error"]))
        texts.append(str(result["ok"]))
    return texts


async def render_one(item: RenderItem, pool: ConfinedPool | None = None) -> str:
    return (await render_all([item], pool))[0]


async def check_all(
    items: list[CheckItem], pool: ConfinedPool | None = None
) -> list[Verdict | None]:
    """Each answer's verdict from the local filters (`quality.check_candidate`), in order;
    a stage that overruns its deadline rejects the answer (schema or regex) saying so.
    Once `Limits.overrun` seconds of the call have gone to such answers, the rest are None
    (not checked: send them again), so that one spec cannot hold a process for minutes."""
    contexts: dict[bytes, int] = {}
    shared: list[dict[str, Any]] = []
    payload = []
    for item in items:
        key = orjson.dumps([item.schema, item.quality], option=orjson.OPT_SORT_KEYS)
        if key not in contexts:
            contexts[key] = len(shared)
            shared.append({"schema": item.schema, "quality": item.quality})
        payload.append({"context": contexts[key], "body": item.body})
    chosen = pool or shared_pool()
    together = {"contexts": shared, "overrun": chosen.limits.overrun}
    try:
        results = await chosen.acall("check", payload, stages=2, shared=together)
    except ConfinedError as exc:
        # Nothing tells which answer overran: none of this call's is taken.
        return [Verdict(None, Rejection.schema, f"the answers were not checked: {exc}")] * len(
            items
        )
    verdicts: list[Verdict | None] = []
    for result in results:
        found = result["ok"]
        reason = Rejection(found["reason"]) if found["reason"] is not None else None
        verdicts.append(Verdict(found["sample"], reason, found["detail"]))
    return verdicts + [None] * (len(items) - len(verdicts))


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """Where a value fails its JSON Schema (the path into the value) and why."""

    path: tuple[str | int, ...]
    message: str


async def validate_all(
    items: list[tuple[dict[str, Any], Any]], pool: ConfinedPool | None = None
) -> list[SchemaProblem | None]:
    """Each ``(schema, value)``'s first problem, or None when the value passes, checked in
    the pool's processes (a `pattern` can backtrack for ever). A check that overruns its
    deadline is a problem saying so, and so is every item of a call that failed or that
    other overruns cut short."""
    if not items:
        return []
    index: dict[bytes, int] = {}
    schemas: list[dict[str, Any]] = []
    payload = []
    for schema, value in items:
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
        if key not in index:
            index[key] = len(schemas)
            schemas.append(schema)
        payload.append({"schema": index[key], "value": value})
    chosen = pool or shared_pool()
    shared = {"schemas": schemas, "overrun": chosen.limits.overrun}
    try:
        results = await chosen.acall("validate", payload, stages=1, shared=shared)
    except ConfinedError as exc:
        return [SchemaProblem((), f"the content was not checked: {exc}")] * len(items)
    problems: list[SchemaProblem | None] = []
    for result in results:
        found = result["ok"]
        problems.append(
            None if found is None else SchemaProblem(tuple(found["path"]), str(found["message"]))
        )
    unchecked = SchemaProblem((), "the content was not checked: its schema took too long")
    return problems + [unchecked] * (len(items) - len(problems))
