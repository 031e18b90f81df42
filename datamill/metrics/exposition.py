"""Serving the metrics: the text exposition format, and a small HTTP server for workers.

`GET /metrics` of the API (`api/routes/metrics.py`) and `datamill worker --metrics-port`
(`serve_metrics`) both answer `scrape()`: the process's registry in Prometheus' text format.
The worker's server runs on the worker's own event loop (no thread reads the gates while
the loop changes them) and answers ``GET /metrics`` only.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from datamill.metrics.calls import Metrics
from datamill.metrics.state import StateCollector

log = logging.getLogger("datamill.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
_HEAD_LIMIT = 8192  # bytes of a scrape's request line and headers
_READ_TIMEOUT = 10.0  # seconds a client may take to send them


async def scrape(metrics: Metrics, state: StateCollector, *, store: bool = True) -> bytes:
    """The registry in the text format. With ``store``, the store's gauges are read first
    (at most every couple of seconds); a store that cannot be read leaves them as last read,
    it does not fail the scrape."""
    if store:
        try:
            await state.refresh()
        except Exception:
            log.warning("metrics: could not read the store's gauges", exc_info=True)
    return generate_latest(metrics.registry)


async def serve_metrics(
    metrics: Metrics, state: StateCollector, *, host: str, port: int
) -> asyncio.Server:
    """Serve ``GET /metrics`` on ``host:port`` (the process's own metrics; the store's
    gauges are the API servers')."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            method, _, rest = head.partition(b" ")
            path = rest.partition(b" ")[0].partition(b"?")[0]
            if method not in (b"GET", b"HEAD"):
                status, body, kind = b"405 Method Not Allowed", b"GET only\n", b"text/plain"
            elif path != b"/metrics":
                status, body, kind = b"404 Not Found", b"see /metrics\n", b"text/plain"
            else:
                body = await scrape(metrics, state, store=False)
                status, kind = b"200 OK", CONTENT_TYPE.encode()
            writer.write(
                b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                b"Connection: close\r\n\r\n" % (status, kind, len(body))
            )
            if method != b"HEAD":
                writer.write(body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client that sent no whole request head in time gets nothing
        except ConnectionError:
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port, limit=_HEAD_LIMIT)
