"""Engine test fixtures: a clock tests can move, mock providers with their own config, and
the checks every fault test makes on a finished batch."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import pytest

# The storage fixtures (a store on `store_url`, batches with staged requests), for tests
# that set up claims directly.
from tests.storage.conftest import database, make_batch, open_database  # noqa: F401


class OffsetClock:
    """Real time plus an offset the test controls: ``jump()`` moves the wall clock
    (``now``) forward, as a long wait would, while intervals and sleeps stay real."""

    def __init__(self) -> None:
        self.offset = 0.0

    def jump(self, seconds: float) -> None:
        self.offset += seconds

    def now(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@pytest.fixture
def offset_clock() -> OffsetClock:
    return OffsetClock()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def wait_until(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 30, poll: float = 0.05
) -> None:
    """Poll ``check`` until it is true; generous by default, the machine is shared."""
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 (state lives in the store)
            await asyncio.sleep(poll)


def assert_each_once(
    outputs: list[dict[str, Any]], errors: list[dict[str, Any]], custom_ids: Iterable[str]
) -> None:
    """Every custom_id is in exactly one line of the output and error files together."""
    seen = Counter(line["custom_id"] for line in outputs + errors)
    expected = set(custom_ids)
    assert set(seen) == expected, (
        f"missing {sorted(expected - set(seen))[:10]}, unexpected {sorted(set(seen) - expected)}"
    )
    twice = sorted(custom_id for custom_id, n in seen.items() if n > 1)
    assert not twice, f"in the files more than once: {twice[:10]}"
    for line in outputs:
        assert line["error"] is None
        assert line["response"]["status_code"] == 200
    for line in errors:
        assert line["datamill_category"], line
        assert (line["error"] is None) != (line["response"] is None), line


def error_codes(errors: list[dict[str, Any]]) -> Counter[str]:
    return Counter(line["datamill_category"] for line in errors)
