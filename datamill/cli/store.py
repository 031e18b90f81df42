"""Running a command's work on the store the settings name (`datamill dataset`, `keys`,
`projects`): the same services the API uses, in this process."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from datamill.cli.common import run_async, settings_from_env
from datamill.runtime import Runtime

T = TypeVar("T")


def run_on_store(work: Callable[[Runtime], Coroutine[Any, Any, T]]) -> T:
    """Open the store named by the settings, run ``work`` on it, close it."""
    settings = settings_from_env()

    async def main() -> T:
        runtime = await Runtime.open(settings)
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    return run_async(main())
