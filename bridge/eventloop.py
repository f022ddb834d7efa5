"""The event loop `sms-bridge run` runs on: uvloop's when it is installed (the same work for less CPU), else
asyncio's own. Choosing does no I/O: uvloop is only imported."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

EVENT_LOOPS = ("auto", "asyncio", "uvloop")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


class LoopUnavailable(Exception):
    """The event loop asked for cannot be had (uvloop is not installed): `run` prints the message and exits 1."""


def loop_factory(choice: str) -> LoopFactory | None:
    """The factory of `choice`'s event loop (one of EVENT_LOOPS), or None for asyncio's own.

    `auto` is uvloop's when it can be imported, else asyncio's; `uvloop` without it is LoopUnavailable.
    """
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise LoopUnavailable("--loop uvloop: uvloop is not installed; "
                                  "pip install 'smsgateway24-bridge[uvloop]', or run with --loop asyncio") from None
        return None
    return uvloop.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """`uvloop` or `asyncio`: which event loop `loop` is, for the start line of the log."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
