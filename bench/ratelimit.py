"""Rate limits: told (rpm in datamill.toml) and untold (learned from headers or from 429s).

    .venv/bin/python bench/ratelimit.py [--requests 6000] [--rpm 3000] [--error-rate 0.05]
        [--case told|told-free-errors|untold-headers|untold-no-headers|untold-CONVENTION ...]

Each case runs ``datamill batch run`` as its own process on a fresh SQLite store against a
fresh mock provider (a token bucket of ``rpm`` with one second of burst, ``error_rate``
injected 500s), and prints one line:
``ratelimit case=C requests=N rpm=R exit=... wall_s=... ratio=... floor_s=... vs_floor=...
calls=... n429=... share_429=... n500=... results=... distinct=... lost=... ok_repeats=...``.
``ratio`` is the process's wall time (start-up, validation and writing the output included)
over the ideal N / rate. ``floor_s`` is the least time the provider needs for the calls it
had to take (every retry of an injected 500 spends the same budget), less its one second of
burst; ``vs_floor`` is the wall time over it. With errors that spend the budget, the floor is
above N / rate (6,000 requests need about 6,320 calls: 1.045x); case ``told-free-errors``
has the mock answer its 500s before its limiter admits the call, as a front end that fails
early does, so that N / rate itself is reachable and the engine alone is measured.
``--concurrency N`` gives datamill's batch run that concurrency (``DATAMILL_CONCURRENCY``, as
``--concurrency`` does), used from its first call instead of a slow start from 64.
``share_429`` is the share of all calls the mock answered 429; ``lost`` counts custom ids
with no result line; ``ok_repeats`` counts requests the mock answered 200 more than once.
Targets (issue 4): told within 1.05x, under 1% 429s; untold within 1.15x, under 3% 429s;
zero lost in every case.

The ``untold-CONVENTION`` cases (issue 12) are the provider as real ones behave: 429s
answered at once while successes take 200 ms, a bare ``Retry-After: 1`` (no
``retry-after-ms``), and the rate-limit headers of one provider's convention
(``datamill_testing.mock_ratelimits``: openai, openai-live, azure, groq, cerebras,
anthropic, openrouter, together, vllm), nothing configured. Same targets as untold.

The peers run the same way on the same mock (cases ``sdk``, ``sdk-told``, ``litellm``,
``litellm-told``; ``-told`` passes them ``--rpm``, applied as that tool's users would, see
bench/peers/README.md). ``failed`` counts requests whose line is an error: for a peer, a
request lost to the provider's limit.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from contenders import LITELLM_PYTHON, peer_command
from datamill_testing.mock_process import MockProviderProcess
from datamill_testing.mock_ratelimits import CONVENTIONS
from harness import (
    PYTHON,
    count_custom_ids,
    datamill_command,
    datamill_env,
    line,
    mock_provider,
    run_process,
    sqlite_url,
    told_env,
    write_chat_input,
)

# ``told-free-errors``: as ``told``, but the mock answers its injected 500s before its rate
# limiter admits the call, so they spend none of the budget and N / rate is reachable.
CONVENTION_CASES = tuple(f"untold-{convention}" for convention in CONVENTIONS)
DATAMILL_CASES = (
    "told",
    "told-free-errors",
    "untold-headers",
    "untold-no-headers",
    *CONVENTION_CASES,
)
# The provider of the untold-CONVENTION cases: slow successes, 429s at once, no ms hint.
SUCCESS_LATENCY_MS = 200.0
PEER_CASES = ("sdk", "sdk-told", "litellm", "litellm-told")
CASES = DATAMILL_CASES + PEER_CASES
_PEER_PYTHON = {"sdk": Path(PYTHON), "litellm": LITELLM_PYTHON}
_PEER_SCRIPT = {"sdk": "sdk_script.py", "litellm": "litellm_router.py"}


def _command(
    case: str, home: Path, mock: MockProviderProcess, source: Path, output: Path, rpm: int
) -> tuple[list[str], dict[str, str] | None]:
    if case in DATAMILL_CASES:
        told = told_env(home, mock, rpm=rpm if case.startswith("told") else None)
        env = datamill_env(sqlite_url(home), home, mock, **told)
        return datamill_command("batch", "run", str(source), "-o", str(output)), env
    peer = case.removesuffix("-told")
    command = peer_command(
        _PEER_PYTHON[peer],
        _PEER_SCRIPT[peer],
        base_url=mock.base_url,
        source=source,
        output=output,
        concurrency=256,
        rpm=rpm if case.endswith("-told") else None,
    )
    return command, None


def _failed_lines(output: Path) -> int:
    if not output.exists():
        return 0
    with output.open("rb") as handle:
        return sum(1 for raw in handle if _failed(orjson.loads(raw)))


def _failed(line: dict[str, Any]) -> bool:
    """OpenAI's line format: an HTTP answer in `response` (any status), `error` otherwise."""
    response = line.get("response") or {}
    return line.get("error") is not None or response.get("status_code", 200) >= 300


def run_case(
    case: str, *, requests: int, rpm: int, error_rate: float, concurrency: int | None = None
) -> str | None:
    headers = case != "untold-no-headers"
    free_errors = case == "told-free-errors"
    convention = case.removeprefix("untold-") if case in CONVENTION_CASES else None
    behaviour: dict[str, object] = {}
    if convention is not None:
        behaviour = {
            "ratelimit_convention": convention,
            "latency_ms": SUCCESS_LATENCY_MS,
            "retry_after_ms": False,
        }
    peer = case.removesuffix("-told")
    if peer in _PEER_PYTHON and not _PEER_PYTHON[peer].exists():
        print(f"{case}: {_PEER_PYTHON[peer]} is missing (make peers); skipped", file=sys.stderr)
        return None
    with (
        tempfile.TemporaryDirectory(prefix="datamill-bench-") as tmp,
        mock_provider(
            rpm=rpm,
            error_rate=error_rate,
            errors_spend_budget=not free_errors,
            ratelimit_headers=headers,
            seed=1,
            **behaviour,
        ) as mock,
    ):
        home = Path(tmp)
        source = write_chat_input(home / "input.jsonl", requests)
        output = home / "output.jsonl"
        command, env = _command(case, home, mock, source, output, rpm)
        if concurrency is not None and env is not None:
            env["DATAMILL_CONCURRENCY"] = str(concurrency)  # told: used from the first call
        finished = run_process(command, env=env, cwd=home)
        stats = mock.stats()
        results, distinct = count_custom_ids(output)
        failed = _failed_lines(output)
    if finished.returncode not in (0, 1):
        print(finished.output[-3000:], file=sys.stderr)
    calls = stats["total"]
    rate_limited = stats["by_status"].get("429", 0)
    ideal = requests / (rpm / 60)
    # What the provider had to take (retries of 500s included, unless they were free) at its
    # own rate, less its one second of burst: no engine can finish sooner.
    charged = calls - rate_limited - (stats["by_status"].get("500", 0) if free_errors else 0)
    floor = (charged - rpm / 60) / (rpm / 60)
    return line(
        "ratelimit",
        case=case,
        requests=requests,
        rpm=rpm,
        exit=finished.returncode,
        wall_s=f"{finished.wall:.1f}",
        ratio=finished.wall / ideal,
        floor_s=f"{floor:.1f}",
        vs_floor=finished.wall / floor,
        calls=calls,
        n429=rate_limited,
        share_429=f"{rate_limited / max(calls, 1):.2%}",
        n500=stats["by_status"].get("500", 0),
        results=results,
        distinct=distinct,
        failed=failed,
        lost=requests - distinct,
        ok_repeats=stats["ok_repeats"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--rpm", type=int, default=3000)
    parser.add_argument("--error-rate", type=float, default=0.05)
    parser.add_argument("--case", action="append", choices=CASES, help="default: all")
    parser.add_argument(
        "--concurrency", type=int, help="datamill's DATAMILL_CONCURRENCY (default: untold, 256)"
    )
    args = parser.parse_args()
    for case in args.case or CASES:
        result = run_case(
            case,
            requests=args.requests,
            rpm=args.rpm,
            error_rate=args.error_rate,
            concurrency=args.concurrency,
        )
        if result is not None:
            print(result, flush=True)


if __name__ == "__main__":
    main()
