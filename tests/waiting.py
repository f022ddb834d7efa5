"""The one bounded wait of the test suite: wait for a condition, never sleep to paper over a race."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

WAIT = 20.0  # the longest a test waits for a condition unless it says otherwise
INTERVAL = 0.02  # between two looks at the condition


async def eventually(condition: Callable[[], T | Awaitable[T]], what: str | Callable[[], str], *,
                     timeout: float = WAIT, interval: float = INTERVAL) -> T:
    """The first truthy value of `condition()` (sync or async), looked at every `interval` seconds; after
    `timeout` seconds an AssertionError naming `what` was awaited (a callable `what` is asked then, so it can say
    what was last seen)."""
    try:
        async with asyncio.timeout(timeout) as bound:
            while True:
                result = condition()
                if inspect.isawaitable(result):
                    result = await result
                if result:
                    return result
                await asyncio.sleep(interval)
    except TimeoutError:
        if not bound.expired():
            raise
        awaited = what() if callable(what) else what
        raise AssertionError(f"timed out after {timeout:g}s waiting for {awaited}") from None
