"""Gateway overhead: what `datamill serve`'s /v1/chat/completions adds to a call, against the
same calls made straight to the mock provider in the same run.

    .venv/bin/python bench/gateway.py [--rate 500] [--seconds 20] [--stream-requests 100000]
                                      [--with-key]

The mock answers at once (0 ms). An open-loop client (aiohttp on uvloop, its own process)
starts one call straight to the mock and one through datamill at every tick of ``rate`` per
second each, so both see the same machine at the same moment. Latency is timed from the
tick (a call that starts late counts its wait), to the whole answer for plain calls and to
the first content chunk for streamed ones (time to first token). ``added_*`` is datamill's
percentile less the direct one. Then ``stream-requests`` streamed calls go through datamill,
32 at a time, on SQLite and on PostgreSQL, and its resident memory is read every tenth of
them: it must stay flat. (On SQLite the page cache, 16 MiB per connection, fills with the
``gateway_calls`` rows written meanwhile, then stops growing; on PostgreSQL that cache is in
the database server.)
Prints one line: ``gateway rate=... direct_p50_ms=... gateway_p50_ms=... added_p50_ms=...
added_p99_ms=... ttft_... sqlite_rss_mb_by_tenth=... sqlite_rss_growth_mb=... postgresql_...``.
``--with-key`` creates a member key before the server starts and sends it with every call
through datamill (keys enforced: each call's key is checked), instead of local mode.
Targets (issue 5): added latency p50 under 1 ms and p99 under 5 ms at 500 requests/s, for
plain calls and for the time to first token; memory flat over 100,000 streamed requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import time
from collections.abc import Iterator

import aiohttp
import orjson

from contenders import _free_port, wait_ready
from datamill_testing.mock_process import MockProviderProcess
from harness import datamill_command, datamill_env, line, mock_provider, process_rss_mb, store

BODY = {"model": "mock-model", "messages": [{"role": "user", "content": "Say something nice."}]}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def timed_call(
    session: aiohttp.ClientSession,
    url: str,
    *,
    stream: bool,
    ticked: float,
    headers: dict[str, str] | None = None,
) -> float:
    """Seconds from ``ticked`` to the answer (or to its first content chunk)."""
    body = {**BODY, "stream": True} if stream else BODY
    sent = {**_JSON, **(headers or {})}
    async with session.post(url, data=orjson.dumps(body), headers=sent) as response:
        if response.status != 200:
            raise SystemExit(f"{url} answered {response.status}: {await response.text()}")
        if not stream:
            await response.read()
            return time.perf_counter() - ticked
        first: float | None = None
        async for raw in response.content:
            if first is None and raw.startswith(b"data: {") and b'"content":"' in raw:
                first = time.perf_counter() - ticked
        if first is None:
            raise SystemExit(f"{url} streamed no content")
        return first


_JSON = {"Content-Type": "application/json"}


async def open_loop(
    direct: str,
    gateway: str,
    *,
    rate: float,
    seconds: float,
    stream: bool,
    headers: dict[str, str] | None = None,
) -> tuple[list[float], list[float]]:
    """Calls at ``rate`` per second to each URL, started on schedule whatever the answers;
    ``headers`` go with the calls through datamill."""
    connector = aiohttp.TCPConnector(limit=0)
    sent = {direct: None, gateway: headers}
    async with aiohttp.ClientSession(connector=connector) as session:
        for url in (direct, gateway):  # warm the connections and the server
            await asyncio.gather(
                *(
                    timed_call(session, url, stream=stream, ticked=0, headers=sent[url])
                    for _ in range(50)
                )
            )
        times: dict[str, list[float]] = {direct: [], gateway: []}
        tasks: list[asyncio.Task[None]] = []

        async def one(url: str, ticked: float) -> None:
            times[url].append(
                await timed_call(session, url, stream=stream, ticked=ticked, headers=sent[url])
            )

        start = time.perf_counter()
        for n in range(int(rate * seconds)):
            tick = start + n / rate
            delay = tick - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            # Alternate which goes first, so neither always has the head start.
            order = (direct, gateway) if n % 2 else (gateway, direct)
            tasks += [asyncio.create_task(one(url, tick)) for url in order]
        await asyncio.gather(*tasks)
    return times[direct], times[gateway]


async def stream_many(gateway: str, requests: int, server_pid: int) -> list[float]:
    """Stream ``requests`` calls through datamill, 32 at a time; its RSS every tenth."""
    samples: list[float] = []
    tenth = max(1, requests // 10)
    done = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(requests):
        queue.put_nowait(n)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def worker() -> None:
            nonlocal done
            while not queue.empty():
                queue.get_nowait()
                await timed_call(session, gateway, stream=True, ticked=time.perf_counter())
                done += 1
                if done % tenth == 0:
                    samples.append(process_rss_mb(server_pid))

        await asyncio.gather(*(worker() for _ in range(32)))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--stream-requests", type=int, default=100_000)
    parser.add_argument("--with-key", action="store_true", help="keys enforced: send a key")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass

    figures: dict[str, object] = {
        "rate": args.rate,
        "seconds": args.seconds,
        "keys": "enforced" if args.with_key else "local mode",
    }
    with mock_provider() as mock:
        direct = f"{mock.base_url}/chat/completions"
        with serving(mock, "sqlite", with_key=args.with_key) as (gateway, _, headers):
            for stream, prefix in ((False, ""), (True, "ttft_")):
                straight, through = asyncio.run(
                    open_loop(
                        direct,
                        gateway,
                        rate=args.rate,
                        seconds=args.seconds,
                        stream=stream,
                        headers=headers,
                    )
                )
                for name, share in (("p50", 0.5), ("p99", 0.99)):
                    mine = percentile(through, share) * 1000
                    theirs = percentile(straight, share) * 1000
                    figures[f"{prefix}direct_{name}_ms"] = theirs
                    figures[f"{prefix}gateway_{name}_ms"] = mine
                    figures[f"{prefix}added_{name}_ms"] = mine - theirs
                figures[f"{prefix}gateway_mean_ms"] = statistics.fmean(through) * 1000
        if args.stream_requests:
            figures["stream_requests"] = args.stream_requests
            for kind in ("sqlite", "postgresql"):
                with serving(mock, kind) as (gateway, pid, _):
                    rss = asyncio.run(stream_many(gateway, args.stream_requests, pid))
                figures[f"{kind}_rss_mb_by_tenth"] = "/".join(f"{value:.0f}" for value in rss)
                figures[f"{kind}_rss_growth_mb"] = rss[-1] - rss[0]
    print(line("gateway", **figures))


@contextlib.contextmanager
def serving(
    mock: MockProviderProcess, kind: str, *, with_key: bool = False
) -> Iterator[tuple[str, int, dict[str, str] | None]]:
    """`datamill serve` (no worker) on a fresh store: its chat URL, its pid, and the headers
    that carry a member key (``with_key``; else None: local mode)."""
    with store(kind) as (url, home):
        port = _free_port()
        env = datamill_env(url, home, mock, DATAMILL_WORKERS="0")
        headers = None
        if with_key:
            made = subprocess.run(
                datamill_command(
                    "keys", "create", "--project", "default", "--role", "member", "--json"
                ),
                env={**os.environ, **env},
                cwd=home,
                capture_output=True,
                check=True,
            )
            headers = {"Authorization": f"Bearer {orjson.loads(made.stdout)['key']}"}
        server = subprocess.Popen(
            datamill_command("serve", "--port", str(port)),
            env={**os.environ, **env, "DATAMILL_LOG_LEVEL": "warning"},
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(f"http://127.0.0.1:{port}/healthz", server, ready="ok")
            yield f"http://127.0.0.1:{port}/v1/chat/completions", server.pid, headers
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
