"""The worker process of `confined`: ``python -m datamill.generation.confined_worker MB``.

It caps its own address space at its size at start plus ``MB`` megabytes, says it is ready,
then answers one JSON line per request line until stdin closes. Every render and every
check stage runs under a timer (``SIGALRM``) whose signal ends it with `_Deadline`.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import sys
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import orjson

from datamill.generation.extract import ExtractionError, extract_json
from datamill.generation.quality import (
    Rejection,
    Verdict,
    check_rules,
    check_schema,
    first_schema_error,
)
from datamill.generation.spec import Quality
from datamill.generation.templates import TemplateProblem, render


class _Deadline(BaseException):
    """Raised by the timer's signal: a BaseException, so no ``except Exception`` in a
    template's or a validator's code swallows it."""


_armed = False


def _on_alarm(signum: int, frame: Any) -> None:
    if _armed:
        raise _Deadline


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    global _armed
    _armed = True
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _armed = False


def _cap_memory(megabytes: int) -> None:
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[0])
        size = pages * os.sysconf("SC_PAGE_SIZE") + megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size, size))


def _render(items: list[dict[str, Any]], seconds: float, memory_mb: int) -> list[dict[str, Any]]:
    """Render in order, up to the first failure (a job stops at it anyway)."""
    results: list[dict[str, Any]] = []
    for item in items:
        try:
            with _deadline(seconds):
                text = render(item["source"], item["variables"], vary=item["vary"])
        except TemplateProblem as exc:
            results.append({"error": str(exc), "kind": "problem"})
        except _Deadline:
            message = f"the template does not render within {seconds:g} s"
            results.append({"error": message, "kind": "deadline"})
        except MemoryError:
            message = f"the template does not render within {memory_mb} MB"
            results.append({"error": message, "kind": "memory"})
        else:
            results.append({"ok": text})
            continue
        break
    return results


@lru_cache(maxsize=64)
def _quality(dumped: bytes) -> Quality:
    return Quality.model_validate(orjson.loads(dumped))


def _check(
    item: dict[str, Any], contexts: list[dict[str, Any]], seconds: float, memory_mb: int
) -> tuple[Verdict, bool]:
    """The answer's verdict, and whether a stage ran out of its time."""
    context = contexts[item["context"]]
    try:
        value = extract_json(item["body"])
    except ExtractionError as exc:
        return Verdict(None, Rejection.unparseable, str(exc)), False
    stage = Rejection.schema
    try:
        with _deadline(seconds):
            verdict = check_schema(value, context["schema"])
        if verdict is not None:
            return verdict, False
        stage = Rejection.regex
        quality = _quality(orjson.dumps(context["quality"], option=orjson.OPT_SORT_KEYS))
        with _deadline(seconds):
            return check_rules(value, quality), False
    except _Deadline:
        what = "its schema" if stage is Rejection.schema else "the regex rules"
        detail = f"checking the sample against {what} took over {seconds:g} s"
        return Verdict(None, stage, detail), True
    except MemoryError:
        what = "its schema" if stage is Rejection.schema else "the regex rules"
        detail = f"checking the sample against {what} took over {memory_mb} MB"
        return Verdict(None, stage, detail), False


def _validate(request: dict[str, Any], seconds: float, memory_mb: int) -> list[dict[str, Any]]:
    """Each value against its JSON Schema: ``{"ok": null}`` when it passes, else
    ``{"ok": {"path": [...], "message": ...}}``; past the call's overrun, the rest are left
    out (as `check` does)."""
    schemas = request["shared"]["schemas"]
    overrun_left = float(request["shared"]["overrun"])
    results: list[dict[str, Any]] = []
    for item in request["items"]:
        if overrun_left <= 0:
            break
        try:
            with _deadline(seconds):
                found = first_schema_error(item["value"], schemas[item["schema"]])
        except _Deadline:
            overrun_left -= seconds
            message = f"checking the content against its schema took over {seconds:g} s"
            results.append({"ok": {"path": [], "message": message}})
        except MemoryError:
            message = f"checking the content against its schema took over {memory_mb} MB"
            results.append({"ok": {"path": [], "message": message}})
        except RecursionError:
            message = "the schema refers to itself too deeply to check the content"
            results.append({"ok": {"path": [], "message": message}})
        else:
            problem = None if found is None else {"path": found[0], "message": found[1]}
            results.append({"ok": problem})
    return results


def _handle(request: dict[str, Any], memory_mb: int) -> list[dict[str, Any]]:
    seconds = float(request["seconds"])
    if request["op"] == "render":
        return _render(request["items"], seconds, memory_mb)
    if request["op"] == "validate":
        return _validate(request, seconds, memory_mb)
    contexts = request["shared"]["contexts"]
    # Once the call's answers have overrun this many seconds, the rest are left unchecked
    # (fewer results than items): the caller sends them again, after other callers' turn.
    overrun_left = float(request["shared"]["overrun"])
    results = []
    for item in request["items"]:
        if overrun_left <= 0:
            break
        verdict, overran = _check(item, contexts, seconds, memory_mb)
        overrun_left -= seconds if overran else 0.0
        reason = verdict.reason.value if verdict.reason is not None else None
        results.append(
            {"ok": {"sample": verdict.sample, "reason": reason, "detail": verdict.detail}}
        )
    return results


def main() -> None:
    memory_mb = int(sys.argv[1])
    _cap_memory(memory_mb)
    signal.signal(signal.SIGALRM, _on_alarm)
    out = sys.stdout.buffer
    out.write(b'{"ready":true}\n')
    out.flush()
    for line in sys.stdin.buffer:
        try:
            results = _handle(orjson.loads(line), memory_mb)
            answer = orjson.dumps({"results": results})
        except MemoryError:
            answer = orjson.dumps({"failed": f"the answer took over {memory_mb} MB"})
        out.write(answer + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
