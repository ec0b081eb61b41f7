"""One way for tests to wait for something that happens elsewhere (a worker, the server, another
process): poll a check until it holds, with a deadline, and say what never happened."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], T | Awaitable[T]],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str | Callable[[], str] = "the condition",
) -> T:
    """Calls `check` (sync or async) until it returns something truthy, and returns that.

    Raises AssertionError naming `what` (a text, or a function giving one at the time, to report the
    last state seen) when `timeout` seconds pass first. An exception from `check` ends the wait at once.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        remaining = deadline - loop.time()
        if remaining <= 0:
            description = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g} s waiting for {description}")
        await asyncio.sleep(min(interval, remaining))
